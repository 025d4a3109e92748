// Types of `ferrolock/exclusive-lock`: the `ExclusiveLock` class of @logdna/exclusive-lock 2.0.0
// (see docs/compat/exclusive-lock.md).

// No dependency on @types/node: the timer type comes from ../lib/host-types.d.ts, and the class
// lists EventEmitter's methods (the event-independent ones through EmitterMethods) instead of
// extending `EventEmitter` from 'node:events'; at run time it is an EventEmitter.
import type { EmitterMethods, IntervalType } from '../lib/host-types'

declare namespace ExclusiveLock {
  /** A pino-like logger. Every method is optional: only those present are called. */
  interface Logger {
    error?(...args: any[]): unknown
    warn?(...args: any[]): unknown
    info?(...args: any[]): unknown
    debug?(...args: any[]): unknown
    trace?(...args: any[]): unknown
  }

  /**
   * A promise-based Redis client: ioredis 5 (`set`, `pexpire`, `get`, `del`,
   * `multi().get().pttl().exec()`) or node_redis 4+ (`set`, `pExpire`, `get`, `del`,
   * `multi().get().pTTL().exec()`). Methods are looked up on this object at each call.
   * node_redis <= 3 and node_redis 4 `legacyMode` clients (callbacks) are refused.
   */
  interface CacheConnection {
    set(...args: any[]): Promise<unknown>
    [method: string]: any
  }

  interface BaseOptions {
    /** Required, at least 1 character; slugified into the key. */
    name: string
    cache_connection: CacheConnection
    /** Default: a logger that does nothing (like abstract-logging). */
    log?: Logger
    /** The stored value. Default `'1'`: give each instance its own (e.g. the pod name). */
    lock_contents?: string
    /** Default `'exclusive-lock'`; slugified. The key is `<key_prefix>:<name>`. */
    key_prefix?: string
    /** Unknown options are ignored. */
    [option: string]: unknown
  }

  /**
   * `lock_ttl_ms` (default 3000) and `lock_refresh_ms` (default 1000) come together, positive,
   * with `lock_ttl_ms - lock_refresh_ms >= 500` and `lock_refresh_ms <= 2147483647`.
   */
  type Options = BaseOptions &
    ({ lock_ttl_ms?: undefined; lock_refresh_ms?: undefined } | { lock_ttl_ms: number; lock_refresh_ms: number })

  /** What `inspect()` finds at the key (`lock_ttl_ms` is -1 for a key without TTL). */
  interface InspectResult {
    lock_ttl_ms: number | undefined
    lock_contents: string | undefined
  }

  interface RefreshedEvent {
    key: string
    lock_ttl_ms: number
  }

  /** A constructor error: `code` is always `'EINVAL'`. */
  interface ValidationError extends Error {
    code: 'EINVAL'
    /** Schema errors only (message `'Input validation failed'`): ajv 8's first error. */
    errors?: Array<{ instancePath: string; message: string }>
    /** RangeErrors only. */
    meta?: { lock_ttl_ms: number; lock_refresh_ms: number; diff?: number }
  }

  /** Emitted as 'error' when a refresh finds the key gone (PEXPIRE replied 0). */
  interface LockLostError extends Error {
    code: 'ERR_LOCK_LOST'
  }
}

declare class ExclusiveLock {
  /** @throws {ExclusiveLock.ValidationError} `Error`, `TypeError` or `RangeError`, `code: 'EINVAL'` */
  constructor(options: ExclusiveLock.Options)

  log: ExclusiveLock.Logger
  cache_connection: ExclusiveLock.CacheConnection
  /** The slugified name. */
  name: string
  lock_ttl_ms: number
  lock_refresh_ms: number
  lock_contents: string
  acquired: boolean
  /** While true, refresh ticks are skipped. */
  is_refreshing: boolean
  /** The refresh interval while the lock is held (keeps the process alive), else null. */
  refresh_timer: IntervalType | null
  /** `<slug(key_prefix)>:<slug(name)>` */
  readonly key: string
  readonly [Symbol.toStringTag]: 'ExclusiveLock'

  /** Resolves true if this instance holds the lock (also when it already did: no command then). */
  acquire(): Promise<boolean>
  /** Releases if held (deleting the key only if it still holds `lock_contents`); otherwise a no-op. */
  release(): Promise<undefined>
  /** The lock as stored, whoever holds it; null when there is no key. */
  inspect(): Promise<ExclusiveLock.InspectResult | null>

  on(event: 'acquired' | 'released', listener: (key: string) => void): this
  on(event: 'refreshed', listener: (payload: ExclusiveLock.RefreshedEvent) => void): this
  on(event: 'error', listener: (err: Error) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
  once(event: 'acquired' | 'released', listener: (key: string) => void): this
  once(event: 'refreshed', listener: (payload: ExclusiveLock.RefreshedEvent) => void): this
  once(event: 'error', listener: (err: Error) => void): this
  once(event: string | symbol, listener: (...args: any[]) => void): this
  off(event: 'acquired' | 'released', listener: (key: string) => void): this
  off(event: 'refreshed', listener: (payload: ExclusiveLock.RefreshedEvent) => void): this
  off(event: 'error', listener: (err: Error) => void): this
  off(event: string | symbol, listener: (...args: any[]) => void): this
  addListener(event: string | symbol, listener: (...args: any[]) => void): this
  prependListener(event: string | symbol, listener: (...args: any[]) => void): this
  prependOnceListener(event: string | symbol, listener: (...args: any[]) => void): this
  removeListener(event: string | symbol, listener: (...args: any[]) => void): this
  emit(event: string | symbol, ...args: any[]): boolean
}
/** The rest of EventEmitter's methods (removeAllListeners, listeners, listenerCount, ...). */
interface ExclusiveLock extends EmitterMethods {}

export = ExclusiveLock
