// Types of `ferrolock/dynamo-lock`: the main export of dynamo-lock 0.1.3 (see docs/compat/dynamo-lock.md).

/** A DynamoDB AttributeValue as aws-sdk v2 and @aws-sdk/client-dynamodb v3 shape it. */
export interface AttributeValue {
  S?: string
  N?: string
  [type: string]: unknown
}

/** Callback of a `db` method: aws-sdk-v2 style `(err, data)`. */
export type DbCallback = (err: any, data?: any) => void

/**
 * Any object with callback-style methods (aws-sdk v2 `AWS.DynamoDB`, @aws-sdk/client-dynamodb v3
 * `DynamoDB`, a mock). `getItem` and `putItem` suffice for `getLock`. A method may also return a
 * promise: its fulfilment with a value (not `undefined`) or its rejection answers like the callback;
 * the first answer counts.
 */
export interface DynamoLockCallbackDb {
  getItem?(params: Record<string, any>, callback: DbCallback): unknown
  putItem?(params: Record<string, any>, callback: DbCallback): unknown
  createTable?(params: Record<string, any>, callback: DbCallback): unknown
  deleteTable?(params: Record<string, any>, callback: DbCallback): unknown
}

/**
 * A bare @aws-sdk/client-dynamodb v3 `DynamoDBClient`: commands go through `send`, built with the
 * command classes of the `@aws-sdk/client-dynamodb` the client comes from (it must be loaded or
 * resolvable from the application).
 */
export interface DynamoLockSendDb {
  send(command: any, callback: DbCallback): unknown
}

export interface CreateClientParams {
  /**
   * aws-sdk v2 style configuration (`accessKeyId`, `secretAccessKey`, `sessionToken`, `region`,
   * `endpoint`, ...) for the client ferrolock builds when `db` is not given; otherwise the AWS
   * environment (AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ..., AWS_REGION).
   * Defaults to `{}`, written into these params; `apiVersion: '2012-08-10'` is written into it.
   */
  awsConfig?: Record<string, any>
  /** The DynamoDB client to use, as is. */
  db?: DynamoLockCallbackDb | DynamoLockSendDb | object
  /**
   * ferrolock only: a lock counts as held until `expiresOn + clockSkewMs` (readers' clocks may be
   * behind the writer's). A finite number >= 0, default 0 (the original's rule).
   */
  clockSkewMs?: number
}

/**
 * Outcome callback. Errors are strings: `'ERROR'`, `'TABLE_EXISTS'`, or
 * `'Lock expires on <expiresOn> currently its <now>'`; success is `(null, 'SUCCESS')`.
 */
export type LockCallback = (err: string | null, result?: 'SUCCESS' | null) => void

export interface LockerClient {
  /** The table of the locks, read at each call. */
  lockTableName: string
  /** The DynamoDB client, read at each call (ferrolock's adapter when none was given). */
  db: DynamoLockCallbackDb | DynamoLockSendDb | any
  /**
   * Takes `lockName` for `timeoutMillis` ms if it is free or expired; never waits. Calls back
   * `(null, 'SUCCESS')`, `('Lock expires on <N> currently its <now>')` or `('ERROR')` (also for a
   * non-string or empty name, and a timeout that is not a finite positive number or numeric string).
   */
  getLock(lockName: string, timeoutMillis: number | string, callback: LockCallback): void
  /** Creates the lock table (`name` string hash key), not waiting for ACTIVE: `'SUCCESS'`, `'TABLE_EXISTS'` or `'ERROR'`. */
  createLockTable(callback: (err: 'TABLE_EXISTS' | 'ERROR' | null, result: 'SUCCESS' | null) => void): void
  /** Deletes the lock table: `(null, 'SUCCESS')` or `('ERROR')`, once. */
  deleteLockTable(callback: (err: 'ERROR' | null, result?: 'SUCCESS') => void): void
}

/** Throws the string `'You need to include a value for lockTableName'`. */
export function createClient(lockTableName?: undefined, params?: CreateClientParams | null): never
/** A lock client for the table `lockTableName`. */
export function createClient(lockTableName: string, params?: CreateClientParams | null): LockerClient
