// Typings of exclusive-lock's schema module (lib/schemas/index.js).

/** A property of the instantiation options schema. */
export interface SchemaProperty {
  type: 'string' | 'object' | 'number'
  minLength?: number
  description: string
}

/** JSON Schema (draft-07) of `new ExclusiveLock(options)`. */
export declare const instantiation_options: {
  $schema: string
  type: 'object'
  $id: string
  dependencies: Record<string, string[]>
  properties: Record<string, SchemaProperty>
  required: string[]
}
