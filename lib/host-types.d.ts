// The few Node.js types that ferrolock's public typings mention, without needing @types/node.
//
// Each type is the consumer's own global one when its typings declare it (@types/node, or the DOM
// lib for AbortSignal), found through `typeof globalThis`, so code that has them gets exactly
// Node's Buffer, AbortSignal and Timeout. A project without them still compiles: it gets the small
// structural stand-in declared here. Types only; there is no JavaScript behind this file.

/** The part of an AbortSignal that ferrolock's typings rely on when the consumer has no AbortSignal type. */
export interface AbortSignalStandIn {
  /** True once the signal was aborted. */
  readonly aborted: boolean
  /** Why it was aborted (undefined until then). */
  readonly reason: any
  /** Throws `reason` if the signal was aborted. */
  throwIfAborted(): void
  /** Adds a listener of the 'abort' event. */
  addEventListener(type: 'abort', listener: (event: any) => void, options?: { once?: boolean }): void
  /** Removes a listener of the 'abort' event. */
  removeEventListener(type: 'abort', listener: (event: any) => void): void
}

/** The global `AbortSignal` type (Node's or the DOM's), else `AbortSignalStandIn`. */
export type AbortSignalType = typeof globalThis extends { AbortSignal: { prototype: infer S } } ? S : AbortSignalStandIn

/** Node's `Buffer` when the consumer has @types/node, else `Uint8Array` (Buffer's base class). */
export type BufferType = typeof globalThis extends { Buffer: { isBuffer(obj: any): obj is infer B } } ? B : Uint8Array

/** The part of a timer handle that is usable without Node's typings. */
export interface TimerStandIn {
  /** True while the timer keeps the process alive. */
  hasRef(): boolean
  /** Makes the timer keep the process alive. */
  ref(): this
  /** Lets the process exit while the timer is pending. */
  unref(): this
}

/** What `setInterval` returns (`NodeJS.Timeout` with @types/node), else `TimerStandIn`. */
export type IntervalType = typeof globalThis extends { setInterval(...args: any[]): infer T } ? T : TimerStandIn

/**
 * The methods of Node's EventEmitter that do not depend on the event names, for classes that are
 * EventEmitters at run time; their typings declare these rather than extend `EventEmitter` from
 * 'node:events', which needs @types/node.
 */
export interface EmitterMethods {
  /** Removes every listener, or those of one event. */
  removeAllListeners(event?: string | symbol): this
  /** Sets the listener count above which Node warns of a possible leak (default 10; 0: no limit). */
  setMaxListeners(n: number): this
  /** The listener count above which Node warns of a possible leak. */
  getMaxListeners(): number
  /** Copies of the listeners of an event. */
  listeners(event: string | symbol): ((...args: any[]) => void)[]
  /** Copies of the listeners of an event, including `once` wrappers. */
  rawListeners(event: string | symbol): ((...args: any[]) => void)[]
  /** The number of listeners of an event (of that listener only, when given). */
  listenerCount(event: string | symbol, listener?: (...args: any[]) => void): number
  /** The names of the events that have listeners. */
  eventNames(): (string | symbol)[]
}
