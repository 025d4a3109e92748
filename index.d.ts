// Hand-written typings for the public API in index.js (CommonJS). index.d.mts re-exports them for
// index.mjs (its ESM wrapper). binding.d.ts is generated and describes the native layer only;
// nothing here depends on it.
//
// `module.exports` is a function, dist-lock's factory (`require('ferrolock')(redisClient,
// options)`), carrying the API as properties: hence `export =` of a function merged with a
// namespace. ESM code gets the same names, and its default import (`import ferrolock from
// 'ferrolock'`) is that whole function, exactly what index.mjs exports as default.

// No dependency on @types/node: Buffer, AbortSignal and the EventEmitter methods come from
// lib/host-types.d.ts or are declared here, so a project without Node's typings compiles too.

/// <reference lib="esnext.disposable" />

import type { AbortSignalType, BufferType, EmitterMethods } from './lib/host-types'
import distLock = require('./compat/dist-lock')
import dynamoLock = require('./compat/dynamo-lock')

/**
 * dist-lock 2.0.1's factory: `require('ferrolock')(redisClient, options)` is
 * `require('ferrolock/dist-lock')(redisClient, options)`, so `dist-lock@npm:ferrolock` runs
 * dist-lock code unchanged.
 */
declare function ferrolock(redisClient: distLock.RedisClient, options?: distLock.Options | null): distLock.DistLock

/** Any event name except the `Lock` events (whose listeners are typed); not exported. */
type OtherEvent<E> = E extends ferrolock.LockEventName ? never : E

declare namespace ferrolock {
  // ---- options -----------------------------------------------------------------------------------

  /**
   * A pino-compatible logger; ferrolock calls `logger[level](obj, msg)` with the logger as `this`.
   * Currently only `warn` (lease expiring, lock lost) and `error` (heartbeat failed) are used.
   */
  export interface Logger {
    /** Logs a debug record: structured fields, then a message. */
    debug?(obj: Record<string, unknown>, msg?: string): void
    /** Logs an info record: structured fields, then a message. */
    info?(obj: Record<string, unknown>, msg?: string): void
    /** Logs a warning record: structured fields, then a message. */
    warn?(obj: Record<string, unknown>, msg?: string): void
    /** Logs an error record: structured fields (an `err` among them), then a message. */
    error?(obj: Record<string, unknown>, msg?: string): void
  }

  /** Connection options for one Redis server (Redis >= 6), or a Redis Cluster with `cluster`; connected on first use. */
  export interface RedisOptions {
    /**
     * Redis Cluster: `redis://` URLs of some of its nodes (the others are discovered). Not together
     * with `url`, `host`, `port` or a `db` other than 0; `username`, `password` and `tls` apply to every node.
     */
    cluster?: string[] | undefined
    /** `redis://[user:password@]host[:port][/db]`; default `redis://127.0.0.1:6379` `rediss://` turns TLS on. */
    url?: string | undefined
    /** Host name or address; overrides the URL's host (default `127.0.0.1`). */
    host?: string | undefined
    /** TCP port from 1 to 65535; overrides the URL's port (default 6379). */
    port?: number | undefined
    /** ACL user name; overrides the URL's user. */
    username?: string | undefined
    /** Password; overrides the URL's password and never appears in messages or logs. */
    password?: string | undefined
    /** Database number (a non-negative integer); overrides the URL's path (default 0). */
    db?: number | undefined
    /** Prefix of every Redis key; takes precedence over the client's `keyPrefix` (default `'lock:'`). */
    keyPrefix?: string | undefined
    /** TLS: `true` trusts the system's roots; `{ ca }` trusts this PEM CA instead. Default: off, or on for `rediss://`. */
    tls?: boolean | RedisTlsOptions | undefined
  }

  /** TLS settings of a Redis connection. */
  export interface RedisTlsOptions {
    /** PEM certificate(s) of the CA that signed the server's certificate. */
    ca: string | BufferType
  }

  /** Options shared by every backend. */
  export interface BaseClientOptions {
    /** Prefix of every key in the store (Redis: default `'lock:'`); the memory backend ignores it. */
    keyPrefix?: string | undefined
    /** Where lease warnings and heartbeat failures are logged (pino-compatible); default: nowhere. */
    logger?: Logger | undefined
    /** The most bytes of lock `data` an acquire (or DynamoDB heartbeat or release) may carry; default 1 MiB (1048576). */
    maxDataBytes?: number | undefined
    /**
     * The most ms one request may take (an acquire attempt, `tryAcquire`, `inspect`, `extend`,
     * `release`, a heartbeat), from 1 to 2147483647; default 2000. A request past it fails with
     * `ERR_BACKEND_UNAVAILABLE`. Redlock: per master (default 500; an operation takes at most four).
     * Through your own Redis client object: 10 s unless given.
     */
    requestTimeout?: number | undefined
  }

  /** Options of the in-process memory backend, the default; all memory clients of a process share one store. */
  export interface MemoryClientOptions extends BaseClientOptions {
    /** Selects the in-process memory backend (the default); only `true` is accepted. */
    memory?: true | undefined
    /**
     * In a node cluster worker or under PM2 cluster mode (`NODE_APP_INSTANCE`), a memory client emits one
     * process warning per process (`FerrolockWarning`, code `FERROLOCK_MEMORY_NOT_SHARED`): its locks exclude
     * nothing across processes. `false` silences it. Default `true`.
     */
    memoryWarning?: boolean | undefined
    /** Not allowed together with `memory`. */
    redis?: undefined
    /** Not allowed together with `memory`. */
    dynamodb?: undefined
    redlock?: undefined
    file?: undefined
  }

  /**
   * A Redis client object of yours; ferrolock sends every command through its methods, looked up
   * at each call: ioredis 5 `Redis` or `Cluster` (`call`), node_redis 0.x-3 (`send_command`,
   * callback API) or node_redis 4+ (`sendCommand`). ferrolock never closes it.
   */
  export type RedisClientObject =
    | { call(command: string, ...args: any[]): unknown }
    | { send_command(command: string, args: any[], callback: (err: Error | null, reply: unknown) => void): unknown }
    | { sendCommand(args: string[]): Promise<unknown> }

  /** Options of the Redis backend: one server, or a Redis Cluster (`{ cluster: [...] }`). */
  export interface RedisClientOptions extends BaseClientOptions {
    /** A `redis://` URL or connection options of one Redis server, `{ cluster: [urls] }`, or your own client object. */
    redis: string | RedisOptions | RedisClientObject
    /** Not allowed together with `redis`. */
    memory?: undefined
    /** Not allowed together with `redis`. */
    dynamodb?: undefined
    redlock?: undefined
    file?: undefined
  }

  /** Static AWS credentials; never shown in messages or logs. */
  export interface AwsCredentials {
    accessKeyId: string
    secretAccessKey: string
    sessionToken?: string | undefined
  }

  /**
   * Options of the DynamoDB backend. What is not given (region, credentials, endpoint) comes from
   * the standard AWS chain: environment variables (incl. `AWS_ENDPOINT_URL_DYNAMODB`), shared
   * config and credentials files, `AWS_PROFILE`.
   */
  export interface DynamoOptions {
    /** The lock table: 3 to 255 characters of `a-z A-Z 0-9 _ - .`. */
    table: string
    /** AWS region, e.g. `'eu-west-1'`. */
    region?: string | undefined
    /** Endpoint URL, e.g. `'http://127.0.0.1:8000'` for a local server. */
    endpoint?: string | undefined
    /** Static credentials. */
    credentials?: AwsCredentials | undefined
    /** Partition key attribute name (default `'key'`); holds the lock name. */
    partitionKey?: string | undefined
    /** For tables with a sort key: its attribute name and the value every lock record uses. */
    sortKey?: { name: string; value: string } | undefined
    /** Default owner name of this client's locks (default `hostname:pid`). */
    ownerName?: string | undefined
    /** Default lease in ms, the acquire `ttl` default (default 20000). */
    leaseDuration?: number | undefined
    /** Automatic heartbeat period in ms, below `leaseDuration` (default 5000); 0: no automatic heartbeats. */
    heartbeatPeriod?: number | undefined
    /** Attribute for DynamoDB's TTL cleanup (epoch seconds, lease + 24 h from this host's clock). */
    ttlAttribute?: string | undefined
    /** Per-request timeout in ms (default 2000). */
    requestTimeout?: number | undefined
    /**
     * Your own client object: an aws-sdk v2 `AWS.DynamoDB`, or an `@aws-sdk/client-dynamodb` v3
     * `DynamoDB` or `DynamoDBClient`. Every request goes through it, with its credentials, region
     * and endpoint (do not give `region`, `endpoint` or `credentials` then).
     */
    client?: DynamoClientObject | undefined
  }

  /** A DynamoDB client object of yours (see `DynamoOptions.client`). */
  export type DynamoClientObject =
    | { getItem(...args: any[]): unknown; updateItem(...args: any[]): unknown }
    | { send(command: any, ...rest: any[]): Promise<unknown> }

  /** Options of the DynamoDB backend (`keyPrefix` does not apply). */
  export interface DynamoClientOptions {
    dynamodb: DynamoOptions
    logger?: Logger | undefined
    /** The most bytes of lock `data` an acquire, heartbeat or release may carry; default 1 MiB (1048576). */
    maxDataBytes?: number | undefined
    /** The most ms one request may take (default 2000); the same as `dynamodb.requestTimeout` (give one of them). */
    requestTimeout?: number | undefined
    /** Not allowed together with `dynamodb`. */
    memory?: undefined
    /** Not allowed together with `dynamodb`. */
    redis?: undefined
    /** Not allowed together with `dynamodb`. */
    redlock?: undefined
    /** Not allowed together with `dynamodb`. */
    keyPrefix?: undefined
    file?: undefined
  }

  /** A JSON value, as stored in DynamoDB additional attributes. */
  export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }

  /** One Redlock master: a URL, connection options of a single server (no `cluster`), or your own client object of one server. */
  export type RedlockMaster = string | Omit<RedisOptions, 'cluster'> | RedisClientObject

  /** Options of the Redlock backend: a quorum over independent Redis masters. */
  export interface RedlockClientOptions extends BaseClientOptions {
    /**
     * The masters, at least 2 and all distinct (3 or 5 tolerate 1 or 2 failures); a lock needs a
     * majority of them. One master is refused: use `redis`.
     */
    redlock: RedlockMaster[]
    /** Clock drift allowance as a fraction of the ttl, from 0 to less than 0.5 (default 0.01). */
    driftFactor?: number | undefined
    /** Fixed drift allowance in ms added to `driftFactor × ttl` (default 2). */
    clockDriftMs?: number | undefined
    /**
     * How long in ms a master that restarted (its `run_id` changed since this client last
     * connected) grants no vote, so that locks it forgot cannot be granted twice. Default: the
     * longest ttl this client has asked for; give at least the longest ttl any client of these
     * masters uses. `false` turns the quarantine off.
     */
    restartQuarantine?: number | false | undefined
    /** Timeout in ms of one request to one master; a master that does not answer in time counts as down (default 500). */
    requestTimeout?: number | undefined
    /** Default `maxRetries` of this client's acquires (default `Infinity`). */
    retryCount?: number | undefined
    /** Default `retryDelay` of this client's acquires in ms (default 100). */
    retryDelay?: number | undefined
    /** Default `retryJitter` of this client's acquires in ms (default 50). */
    retryJitter?: number | undefined
    /** Not allowed together with `redlock`. */
    memory?: undefined
    /** Not allowed together with `redlock`. */
    redis?: undefined
    /** Not allowed together with `redlock`. */
    dynamodb?: undefined
    file?: undefined
  }

  /**
   * Options of the file backend: locks shared by the processes of one host through files in a local
   * directory, with no server (see docs/file.md). Network file systems (NFS, SMB) are refused.
   */
  export interface FileOptions {
    /** The lock directory; created on first use if missing. Relative paths are resolved against the current directory. */
    dir: string
    /** Mode of the directory when ferrolock creates it (default `0o700`: this user only). */
    mode?: number | undefined
    /** fsync every record write, so fences also survive a power loss (default `false`: they survive any process crash). */
    fsync?: boolean | undefined
  }

  /** Options of the file backend (`keyPrefix` does not apply). */
  export interface FileClientOptions {
    /** The lock directory, or `{ dir, mode, fsync }`. */
    file: string | FileOptions
    logger?: Logger | undefined
    /** The most bytes of lock `data` an acquire may carry; default 1 MiB (1048576). */
    maxDataBytes?: number | undefined
    /** Not allowed together with `file`. */
    memory?: undefined
    /** Not allowed together with `file`. */
    redis?: undefined
    /** Not allowed together with `file`. */
    redlock?: undefined
    /** Not allowed together with `file`. */
    dynamodb?: undefined
    /** Not allowed together with `file`. */
    keyPrefix?: undefined
  }

  /** Options of `createClient`: one backend, memory (the default), file, redis (one server or a cluster), redlock or dynamodb. */
  export type ClientOptions =
    MemoryClientOptions | FileClientOptions | RedisClientOptions | RedlockClientOptions | DynamoClientOptions

  /** Options of `acquire`, `tryAcquire` and `using`: durations are integer ms, and `undefined` means the default. */
  export interface AcquireOptions {
    /** Lease length in ms, from 1 to 2^31 - 1; the lock expires unless it is extended (default 30000; DynamoDB: the client's `leaseDuration`). */
    ttl?: number | undefined
    /**
     * How long to wait while another owner holds the lock: `true` until acquired (the default),
     * `false` a single attempt, or a deadline in ms (0 is a single attempt); `tryAcquire` ignores it.
     */
    wait?: boolean | number | undefined
    /** Pause in ms between attempts while waiting, from 0 (default 100); a release wakes waiters sooner. */
    retryDelay?: number | undefined
    /** Random extra pause in ms, from 0 up to this value, added to each `retryDelay` (default 50). */
    retryJitter?: number | undefined
    /** Retries after the first attempt before rejecting `ERR_LOCK_NOT_ACQUIRED`: a non-negative integer or `Infinity` (the default). */
    maxRetries?: number | undefined
    /** Renews the lease in the background every `refreshInterval` until release (default true; DynamoDB: `heartbeatPeriod > 0`). */
    autoExtend?: boolean | undefined
    /** Interval in ms between automatic renewals, less than `ttl` (default a third of `ttl`; DynamoDB: the client's `heartbeatPeriod` when below `ttl`). */
    refreshInterval?: number | undefined
    /** Owner name stored with the lock, at most 1024 bytes (default `hostname:pid`; DynamoDB: the client's `ownerName`). */
    owner?: string | undefined
    /** Data stored with the lock and shown by `inspect`: a string, or a Buffer (memory, file and dynamodb) (default none). */
    data?: string | BufferType | undefined
    /** Cancels the wait when aborted: the acquire rejects with `ERR_ABORTED` (a held lock is unaffected). */
    signal?: AbortSignalType | undefined
    /**
     * Emit 'expiring' once less than this many ms of the lease are left without a renewal (default
     * one refresh interval). Also watches locks without auto-extend: they emit 'lost' when the lease ends.
     */
    safeTime?: number | undefined
    /** DynamoDB: overwrite the data a released or expired record kept (default: keep it). */
    replaceData?: boolean | undefined
    /** DynamoDB: delete the record on release instead of marking it released (fences then restart). */
    deleteOnRelease?: boolean | undefined
    /** DynamoDB: more attributes to store in the record (not the table's own or ferrolock's names). */
    additionalAttributes?: { [key: string]: JsonValue } | undefined
    /** DynamoDB: wait until the holder's lease (as first seen) could have run out, plus this many ms, then give up (cirello, Amazon); excludes `wait`. */
    additionalTimeToWait?: number | undefined
  }

  /** Options of `sendHeartbeat` (DynamoDB). */
  export interface DataOptions {
    /** DynamoDB: the data to store now (heartbeat) or leave in the released record (release). */
    data?: string | BufferType | undefined
  }

  /** Options of `release` (DynamoDB). */
  export interface ReleaseOptions extends DataOptions {
    /** DynamoDB: delete the record (`true`) or keep it marked released (`false`); default: `deleteOnRelease` of the acquire. */
    delete?: boolean | undefined
  }

  /** Options of `createLockTable` (DynamoDB). */
  export interface CreateTableOptions {
    /** Provisioned read capacity units; with `writeCapacity`. Default: on-demand billing. */
    readCapacity?: number | undefined
    /** Provisioned write capacity units; with `readCapacity`. */
    writeCapacity?: number | undefined
    /** Table tags. */
    tags?: { [key: string]: string } | undefined
    /** Turn on DynamoDB TTL for the client's `ttlAttribute`. */
    ttl?: boolean | undefined
    /** Give up waiting for ACTIVE after this many ms (default 300000). */
    timeout?: number | undefined
  }

  /** The result of `createLockTable`. */
  export interface CreateTableResult {
    table: string
    /** False when the table existed already. */
    created: boolean
  }

  /** The result of `deleteLockTable`. */
  export interface DeleteTableResult {
    table: string
    /** False when there was no such table. */
    deleted: boolean
  }

  /** A DynamoDB lock record, released or not, as returned by `get`. */
  export interface LockRecord {
    owner: string
    data: string | BufferType | null
    fence: bigint
    /** The holder's lease in ms. */
    leaseDuration: number
    released: boolean
    /** This client saw the same record version for a whole lease: the holder stopped heartbeating. */
    expired: boolean
    recordVersionNumber: string
    /** Attributes other than the table's keys and ferrolock's own. */
    attributes: { [key: string]: JsonValue }
  }

  // ---- callbacks ---------------------------------------------------------------------------------

  /**
   * A Node-style callback, called `(err)` on failure and `(null, value)` on success; in an
   * unannotated callback, checking `err` narrows `value`: `(err, lock) => { if (err) return; lock.fence }`.
   * Annotated, the value is optional (`lock?: Lock`) because it is undefined on failure.
   */
  export type Callback<T> = (...args: [err: Error, value: undefined] | [err: null, value: T]) => void

  /**
   * A callback that only looks at the error (null on success). Every method accepts one besides
   * `Callback`, since TypeScript does not match a one-parameter function against a tuple union;
   * `value` is `unknown` so that a callback typing its second parameter must fit `Callback`.
   */
  export type DoneCallback = (err: Error | null, value?: unknown) => void

  /** The function `using` runs while it holds the lock; `signal` is aborted if the lock is lost. */
  export type UsingFunction<T> = (signal: AbortSignalType, lock: Lock) => T | PromiseLike<T>

  // ---- results -----------------------------------------------------------------------------------

  /** A read-only view of a lock, as returned by `inspect`. */
  export interface LockInfo {
    /** The holder's owner name. */
    owner: string
    /** Milliseconds left on the lease, or null when the store does not know. DynamoDB: the holder's lease as written in its record (a reader cannot tell how long ago it was renewed). */
    remainingTtl: number | null
    /** The fencing token of the current acquisition. */
    fence: bigint
    /** The stored data (a string, or a Buffer when given as one), or null. */
    data: string | BufferType | null
  }

  /** Counters for leak checks, as returned by `stats`. */
  export interface ClientStats {
    /** Acquires in progress (waiting or on their way to the store). */
    pending: number
    /** Locks this client holds. */
    held: number
    /** Lock names this client watches for release notifications. */
    watched: number
  }

  /** The backend a client talks to. */
  export type Backend = 'memory' | 'file' | 'redis' | 'redis-cluster' | 'redlock' | 'dynamodb'

  // ---- Lock --------------------------------------------------------------------------------------

  /** The events of a `Lock` and their listener arguments. */
  export interface LockEvents {
    /** Emitted once, after the acquiring call returned (listeners attached right away see it). */
    acquired: []
    /** The lease was renewed for another `ttl` ms. */
    refreshed: [info: { ttl: number }]
    /** Renewals are failing and less than one refresh interval (`remaining` ms) is left. */
    expiring: [info: { remaining: number }]
    /** The lock is no longer ours (expired, deleted or taken over); `signal` is aborted with `err`. */
    lost: [err: LockLostError]
    /** The lock was released; `signal` is aborted. */
    released: []
    /** A renewal failed (recoverable); emitted only when a listener exists, so it never crashes the process. */
    error: [err: BackendUnavailableError]
  }

  /** A name of one of the `Lock` events. */
  export type LockEventName = keyof LockEvents

  /**
   * A held lock, obtained from `acquire`, `tryAcquire` or `using` (it cannot be constructed).
   * Supports `await using` (released on scope exit). At run time it is a Node.js `EventEmitter`;
   * its typings list EventEmitter's methods themselves, so they need no @types/node (and a Lock
   * still fits where Node's typings expect an EventEmitter, e.g. `events.once(lock, 'released')`).
   */
  // The interface merged below adds EventEmitter methods that the run-time class has (it extends EventEmitter).
  // oxlint-disable-next-line typescript/no-unsafe-declaration-merging
  export class Lock {
    private constructor()
    /** The resource name. */
    readonly name: string
    /** The random token (uuid v4) that proves this acquisition. */
    readonly token: string
    /** The owner name stored with the lock. */
    readonly owner: string
    /** The fencing token: strictly increases with every acquisition of this name on the backend. */
    readonly fence: bigint
    /** True once the lock was lost (expired, deleted, taken over, or its release not confirmed); turns true with `signal.aborted`. */
    get lost(): boolean
    /** Epoch ms when the lease ends as this process counts it (now, once the lock is over). */
    get expiresAt(): number
    /** Aborted when the lock is lost (reason: a `LockLostError`) or released (code `ERR_LOCK_RELEASED`). */
    get signal(): AbortSignalType

    /** Sets the lease to `ttl` ms from now; resolves false (and emits 'lost') if it is no longer ours. */
    extend(ttl: number): Promise<boolean>
    /** Sets the lease to `ttl` ms from now; passes false (and emits 'lost') if it is no longer ours. */
    extend(ttl: number, callback: Callback<boolean>): void
    /** Sets the lease to `ttl` ms from now, calling `callback` with the error or null. */
    extend(ttl: number, callback: DoneCallback): void
    /** Renews the lease for its current ttl now (a manual heartbeat); `{ data }` replaces the data (DynamoDB). False if no longer ours. */
    sendHeartbeat(options?: DataOptions): Promise<boolean>
    /** Like `sendHeartbeat()`, passing the outcome to `callback`. */
    sendHeartbeat(callback: Callback<boolean>): void
    /** Like `sendHeartbeat(options)`, passing the outcome to `callback`. */
    sendHeartbeat(options: DataOptions | undefined, callback: Callback<boolean>): void
    /** Like `sendHeartbeat()`, calling `callback` with the error or null. */
    sendHeartbeat(callback: DoneCallback): void
    /**
     * Releases the lock if it is still ours: resolves true, or false when it was already gone; `{ data }` stays in a DynamoDB record.
     * If it rejects (the server did not confirm), the lock is lost for its holder all the same and its key expires by its lease;
     * calling it again retries the delete.
     */
    release(options?: ReleaseOptions): Promise<boolean>
    /** Releases the lock if it is still ours: passes true, or false when it was already gone. */
    release(callback: Callback<boolean>): void
    /** Like `release(options)`, passing the outcome to `callback`. */
    release(options: ReleaseOptions | undefined, callback: Callback<boolean>): void
    /** Releases the lock if it is still ours, calling `callback` with the error or null. */
    release(callback: DoneCallback): void
    /** Releases the lock; called by `await using`. */
    [Symbol.asyncDispose](): Promise<void>

    /** Adds a listener for a lock event. */
    on<E extends LockEventName>(event: E, listener: (...args: LockEvents[E]) => void): this
    /** Adds a listener for any other event. */
    on<E extends string | symbol>(event: OtherEvent<E>, listener: (...args: any[]) => void): this
    /** Adds a listener for a lock event (same as `on`). */
    addListener<E extends LockEventName>(event: E, listener: (...args: LockEvents[E]) => void): this
    /** Adds a listener for any other event (same as `on`). */
    addListener<E extends string | symbol>(event: OtherEvent<E>, listener: (...args: any[]) => void): this
    /** Adds a listener for a lock event, first in line. */
    prependListener<E extends LockEventName>(event: E, listener: (...args: LockEvents[E]) => void): this
    /** Adds a listener for any other event, first in line. */
    prependListener<E extends string | symbol>(event: OtherEvent<E>, listener: (...args: any[]) => void): this
    /** Adds a one-time listener for a lock event. */
    once<E extends LockEventName>(event: E, listener: (...args: LockEvents[E]) => void): this
    /** Adds a one-time listener for any other event. */
    once<E extends string | symbol>(event: OtherEvent<E>, listener: (...args: any[]) => void): this
    /** Adds a one-time listener for a lock event, first in line. */
    prependOnceListener<E extends LockEventName>(event: E, listener: (...args: LockEvents[E]) => void): this
    /** Adds a one-time listener for any other event, first in line. */
    prependOnceListener<E extends string | symbol>(event: OtherEvent<E>, listener: (...args: any[]) => void): this
    /** Removes a listener of a lock event. */
    off<E extends LockEventName>(event: E, listener: (...args: LockEvents[E]) => void): this
    /** Removes a listener of any other event. */
    off<E extends string | symbol>(event: OtherEvent<E>, listener: (...args: any[]) => void): this
    /** Removes a listener of a lock event (same as `off`). */
    removeListener<E extends LockEventName>(event: E, listener: (...args: LockEvents[E]) => void): this
    /** Removes a listener of any other event (same as `off`). */
    removeListener<E extends string | symbol>(event: OtherEvent<E>, listener: (...args: any[]) => void): this
    /** Calls the listeners of a lock event; true if there were any. */
    emit<E extends LockEventName>(event: E, ...args: LockEvents[E]): boolean
    /** Calls the listeners of any other event; true if there were any. */
    emit<E extends string | symbol>(event: OtherEvent<E>, ...args: any[]): boolean
  }
  /** The rest of EventEmitter's methods (removeAllListeners, listeners, listenerCount, ...). */
  export interface Lock extends EmitterMethods {}

  // ---- Client ------------------------------------------------------------------------------------

  /**
   * A lock client over one backend, made by `createClient` (it cannot be constructed). Every async
   * method returns a Promise, or takes a Node-style callback as its last argument and returns void.
   */
  export class Client {
    private constructor()
    /** The backend this client talks to: `'memory'`, `'file'`, `'redis'`, `'redis-cluster'`, `'redlock'` or `'dynamodb'`. */
    get backend(): Backend

    /** Acquires `name`, waiting as `options.wait` says; rejects `ERR_LOCK_NOT_ACQUIRED` if it gives up. */
    acquire(name: string, options?: AcquireOptions): Promise<Lock>
    /** Acquires `name` with the default options and passes the lock to `callback`. */
    acquire(name: string, callback: Callback<Lock>): void
    /** Acquires `name` and passes the lock (or `ERR_LOCK_NOT_ACQUIRED`) to `callback`. */
    acquire(name: string, options: AcquireOptions | undefined, callback: Callback<Lock>): void
    /** Acquires `name`, calling `callback` with the error or null (the lock is then not available). */
    acquire(name: string, callback: DoneCallback): void
    /** Acquires `name`, calling `callback` with the error or null (the lock is then not available). */
    acquire(name: string, options: AcquireOptions | undefined, callback: DoneCallback): void

    /** Makes one attempt, never waiting: resolves the lock, or null when another owner holds it. */
    tryAcquire(name: string, options?: AcquireOptions): Promise<Lock | null>
    /** Makes one attempt with the default options and passes the lock or null to `callback`. */
    tryAcquire(name: string, callback: Callback<Lock | null>): void
    /** Makes one attempt and passes the lock, or null when another owner holds it, to `callback`. */
    tryAcquire(name: string, options: AcquireOptions | undefined, callback: Callback<Lock | null>): void
    /** Makes one attempt, calling `callback` with the error or null (the lock is then not available). */
    tryAcquire(name: string, callback: DoneCallback): void
    /** Makes one attempt, calling `callback` with the error or null (the lock is then not available). */
    tryAcquire(name: string, options: AcquireOptions | undefined, callback: DoneCallback): void

    /**
     * Acquires `name`, runs `fn(signal, lock)`, always releases, and resolves what `fn` returned;
     * rejects `ERR_LOCK_LOST` if the lock was lost while `fn` ran.
     */
    using<T>(name: string, fn: UsingFunction<T>): Promise<T>
    /** Like `using(name, fn)`, passing the outcome to `callback`. */
    using<T>(name: string, fn: UsingFunction<T>, callback: Callback<T>): void
    /** Like `using(name, fn)` with acquire options; the lock is always auto-extended (`autoExtend: false` rejects ERR_INVALID_ARG). */
    using<T>(name: string, options: AcquireOptions | undefined, fn: UsingFunction<T>): Promise<T>
    /** Like `using(name, options, fn)`, passing the outcome to `callback`. */
    using<T>(name: string, options: AcquireOptions | undefined, fn: UsingFunction<T>, callback: Callback<T>): void
    /** Like `using(name, fn)`, calling `callback` with the error or null. */
    using<T>(name: string, fn: UsingFunction<T>, callback: DoneCallback): void
    /** Like `using(name, options, fn)`, calling `callback` with the error or null. */
    using<T>(name: string, options: AcquireOptions | undefined, fn: UsingFunction<T>, callback: DoneCallback): void

    /** Reads a lock without changing it: resolves its info, or null when nobody holds it. */
    inspect(name: string): Promise<LockInfo | null>
    /** Reads a lock without changing it and passes its info, or null, to `callback`. */
    inspect(name: string, callback: Callback<LockInfo | null>): void
    /** Reads a lock, calling `callback` with the error or null. */
    inspect(name: string, callback: DoneCallback): void

    /** DynamoDB: reads the record of `name`, released or not, with consistent reads; null when there is none. */
    get(name: string): Promise<LockRecord | null>
    /** Like `get(name)`, passing the record or null to `callback`. */
    get(name: string, callback: Callback<LockRecord | null>): void
    /** DynamoDB: creates the lock table and resolves once it is ACTIVE (`created: false` when it existed). */
    createLockTable(options?: CreateTableOptions): Promise<CreateTableResult>
    /** Like `createLockTable(options)`, passing the result to `callback`. */
    createLockTable(options: CreateTableOptions | undefined, callback: Callback<CreateTableResult>): void
    /** Like `createLockTable()`, passing the result to `callback`. */
    createLockTable(callback: Callback<CreateTableResult>): void
    /** DynamoDB: deletes the lock table and resolves once it is gone (`deleted: false` when there was none). */
    deleteLockTable(): Promise<DeleteTableResult>
    /** Like `deleteLockTable()`, passing the result to `callback`. */
    deleteLockTable(callback: Callback<DeleteTableResult>): void

    /**
     * Rejects pending acquires (`ERR_CLIENT_CLOSED`), stops heartbeats, releases every held lock (in batches: one
     * pipelined write per Redis server) and closes connections, within about one `requestTimeout`. A lock whose
     * delete was confirmed emits `released`, any other `lost`; nothing is sent once this resolved.
     */
    close(): Promise<void>
    /** Like `close()`, calling `callback` when done. */
    close(callback: DoneCallback): void

    /** Counters for leak checks: acquires pending, locks held, names watched. */
    stats(): ClientStats
  }

  /**
   * Creates a lock client: the in-process memory backend with no options (or `{ memory: true }`),
   * the processes of one host through a lock directory with `{ file: dir | { dir, mode, fsync } }`,
   * one Redis server with `{ redis: url | options }`, a Redis Cluster with `{ redis: { cluster: urls } }`,
   * Redlock over independent masters with `{ redlock: urls }`, or a DynamoDB table with
   * `{ dynamodb: { table, ... } }`. Throws `ERR_INVALID_ARG` on bad options.
   */
  export function createClient(options?: ClientOptions): Client
  /**
   * A `redis://` or `rediss://` URL first (the habit of ioredis users): one Redis server, the same as
   * `createClient({ redis: url, ...options })`. A DynamoDB table name cannot contain `:` or `/`, so
   * no dynamo-lock call is taken for this one. A URL typed only as `string` matches the dynamo-lock
   * signature below in TypeScript: pass it as `{ redis: url }` then.
   */
  export function createClient(url: `redis://${string}` | `rediss://${string}`, options?: BaseClientOptions): Client
  /**
   * Any other string first: dynamo-lock's `createClient(lockTableName, params)` (see `ferrolock/dynamo-lock`),
   * so `dynamo-lock@npm:ferrolock` runs dynamo-lock code unchanged.
   */
  export function createClient<Name extends string>(
    lockTableName: Name extends `redis://${string}` | `rediss://${string}` ? never : Name,
    params?: dynamoLock.CreateClientParams | null,
  ): dynamoLock.LockerClient

  // ---- errors ------------------------------------------------------------------------------------

  /** The stable `code` of every ferrolock error (`ERR_LOCK_RELEASED` is only the reason of a released lock's signal). */
  export type ErrorCode =
    | 'ERR_LOCK_NOT_ACQUIRED'
    | 'ERR_LOCK_LOST'
    | 'ERR_INVALID_ARG'
    | 'ERR_BACKEND_UNAVAILABLE'
    | 'ERR_CLIENT_CLOSED'
    | 'ERR_ABORTED'
    | 'ERR_TABLE_NOT_FOUND'
    | 'ERR_LOCK_RELEASED'

  /** Options of the error constructors (like ES2022 `ErrorOptions`, which older `lib` settings lack). */
  export interface LockErrorOptions {
    /** The underlying error. */
    cause?: unknown
  }

  /** The base class of every ferrolock error; `name` is the class name and `cause` the backend's own error, if any. */
  export class LockError extends Error {
    /** Creates an error with a message and one of the stable codes. */
    constructor(message: string, code: ErrorCode, options?: LockErrorOptions)
    /** A stable machine-readable code: `switch (err.code)` over `ErrorCode` is checked, a misspelt case does not compile. */
    readonly code: ErrorCode
    /**
     * The backend's own error, when there is one. An error of your own client object whose texts hold a secret comes
     * as a masked copy (same prototype); your original is at `cause[Symbol.for('ferrolock.original')]`.
     */
    cause?: unknown
  }

  /** The lock was not acquired: held by another owner past the wait deadline, `maxRetries` or a single attempt. */
  export class LockNotAcquiredError extends LockError {
    /** Creates the error with its code. */
    constructor(message?: string, options?: LockErrorOptions)
    /** Always `'ERR_LOCK_NOT_ACQUIRED'`. */
    readonly code: 'ERR_LOCK_NOT_ACQUIRED'
  }

  /** The lock was lost: its lease expired, or it was deleted or taken over by another owner. */
  export class LockLostError extends LockError {
    /** Creates the error with its code. */
    constructor(message?: string, options?: LockErrorOptions)
    /** Always `'ERR_LOCK_LOST'`. */
    readonly code: 'ERR_LOCK_LOST'
  }

  /** Bad input (name, option, URL), reported before any I/O. */
  export class InvalidArgumentError extends LockError {
    /** Creates the error with its code. */
    constructor(message?: string, options?: LockErrorOptions)
    /** Always `'ERR_INVALID_ARG'`. */
    readonly code: 'ERR_INVALID_ARG'
  }

  /** The backend could not be reached or failed; its own error is the `cause`. */
  export class BackendUnavailableError extends LockError {
    /** Creates the error with its code. */
    constructor(message?: string, options?: LockErrorOptions)
    /** Always `'ERR_BACKEND_UNAVAILABLE'`. */
    readonly code: 'ERR_BACKEND_UNAVAILABLE'
  }

  /** The client was closed before or while the call ran. */
  export class ClientClosedError extends LockError {
    /** Creates the error with its code. */
    constructor(message?: string, options?: LockErrorOptions)
    /** Always `'ERR_CLIENT_CLOSED'`. */
    readonly code: 'ERR_CLIENT_CLOSED'
  }

  /** The acquire was cancelled through `options.signal`. */
  export class AbortedError extends LockError {
    /** Creates the error with its code. */
    constructor(message?: string, options?: LockErrorOptions)
    /** Always `'ERR_ABORTED'`. */
    readonly code: 'ERR_ABORTED'
  }

  /** The DynamoDB lock table does not exist (reported at once, never by waiting). */
  export class TableNotFoundError extends LockError {
    /** Creates the error with its code. */
    constructor(message?: string, options?: LockErrorOptions)
    /** Always `'ERR_TABLE_NOT_FOUND'`. */
    readonly code: 'ERR_TABLE_NOT_FOUND'
  }

  // Every member of this ambient namespace is an export; helpers that are not (OtherEvent) live outside it.
}

export = ferrolock
