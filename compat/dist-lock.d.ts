// Types of `ferrolock/dist-lock`: the factory of dist-lock 2.0.1 (see docs/compat/dist-lock.md).

/**
 * Creates a lock manager over a Redis client: node_redis 0.12 to 3 or ioredis (`send_command`,
 * `hmget`), or node_redis 4+ (`sendCommand`, `hmGet`; a connected client). Every command goes
 * through the client's own methods, looked up at each call.
 *
 * The defaults (`ttl` 30000, `retryDelay` 50, `maxRetries` -1, `keyPrefix` `'lock:'`) are
 * written into `options` where a property is `undefined`; `options` is read again at every call.
 * @throws TypeError when `redisClient` is no Redis client.
 */
declare function distLock(redisClient: distLock.RedisClient, options?: distLock.Options | null): distLock.DistLock

declare namespace distLock {
  interface Options {
    /** Milliseconds after which a lock releases itself (PEXPIRE). Default 30000. */
    ttl?: number
    /** Milliseconds between acquisition attempts, no jitter. Default 50. */
    retryDelay?: number
    /**
     * Retries after the first attempt: `n >= 0` allows `n` (so `n + 1` attempts), `-1` retries
     * until acquired, any other negative number none. Default -1.
     */
    maxRetries?: number
    /** Prefix of the lock's key: the key is `keyPrefix + resourceName`. Default `'lock:'`. */
    keyPrefix?: string
  }

  /** node_redis 0.12 to 3 (ioredis too): the callback API, `send_command(name, args, cb)`. */
  interface CallbackRedisClient {
    send_command(...args: any[]): unknown
    hmget(...args: any[]): unknown
    on?(...args: any[]): unknown
  }

  /** ioredis (Redis or Cluster): `call(name, args, cb)` and the callback API. */
  interface IORedisClient {
    call(...args: any[]): unknown
    hmget(...args: any[]): unknown
    on?(...args: any[]): unknown
  }

  /** node_redis 4+: the promise API, `sendCommand([name, ...args])` and `hmGet(key, fields)`. */
  interface PromiseRedisClient {
    sendCommand(...args: any[]): unknown
    hmGet(...args: any[]): unknown
    on?(...args: any[]): unknown
  }

  type RedisClient = CallbackRedisClient | IORedisClient | PromiseRedisClient

  /** Answers `true` when the lock was ours and was released or extended, else `false`. */
  type ResultCallback = (err: Error | null, result?: boolean) => void

  /** A lock found by `getAcquiredLock`: whoever has its id may release or extend it. */
  interface LockDetails {
    /** The Redis key: `keyPrefix + resourceName`. */
    key: string
    /** The lock's unique id: 25 characters, lowercase base36, starting with `c`. */
    id: string
    /** Who acquired it (`''` when no owner was given). */
    owner: string
    /** Releases the lock if it still has this id. Without a callback, errors become process warnings. */
    release(callback?: ResultCallback): void
    /**
     * Sets the lock's TTL to `milliseconds` from now (a positive integer) if it still has this
     * id. Without a callback, errors become process warnings.
     */
    extend(milliseconds: number, callback?: ResultCallback): void
  }

  /** A lock this process acquired. */
  interface Lock extends LockDetails {
    /** The attempt that succeeded, from 1. */
    acquiredOnAttempt: number
    /** `(acquiredOnAttempt - 1) * retryDelay`. */
    acquireDelay: number
  }

  /** `lock` is `false` when the lock could not be acquired within `maxRetries`. */
  type AcquireCallback = (err: Error | null, lock?: Lock | false) => void

  interface DistLock {
    /**
     * Acquires `resourceName`, retrying every `retryDelay` ms as `maxRetries` allows. Argument
     * errors are called back before `acquire` returns; a missing callback throws a TypeError.
     */
    acquire(resourceName: string, owner: string, callback: AcquireCallback): void
    acquire(resourceName: string, callback: AcquireCallback): void
    /** The current lock of `resourceName`, or `null` when there is none. */
    getAcquiredLock(resourceName: string, callback: (err: Error | null, lock?: LockDetails | null) => void): void
    /** Releases the lock of `resourceName` if its id is `id`. */
    releaseLock(resourceName: string, id: string, callback?: ResultCallback): void
    /** Sets the TTL of the lock of `resourceName` to `milliseconds` from now if its id is `id`. */
    extendLock(resourceName: string, id: string, milliseconds: number, callback?: ResultCallback): void
  }
}

export = distLock
