// Typings of `require('ferrolock/leverege')`: @leverege/lock's `Lock` on ferrolock.
import { ErrorCode, LockError as FerrolockError, LockErrorOptions, RedisOptions } from '../index'

declare namespace Lock {
  /** Redlock's settings (type 'redis'); the defaults are Redlock 4's. */
  interface LockOptions {
    /** Clock drift allowance as a fraction of the ttl, 0 to < 0.5 (default 0.01); used with several masters. */
    driftFactor?: number | undefined
    /** Retries after the first attempt before a LockError (default 10); -1: retry forever. */
    retryCount?: number | undefined
    /** Ms between attempts (default 200). */
    retryDelay?: number | undefined
    /** Most ms added to or taken from `retryDelay` at random (default 100). */
    retryJitter?: number | undefined
  }

  /** An ioredis or node_redis client (0.x-3 `send_command`, 4+ `sendCommand`): used as is, never closed. */
  type RedisClientObject =
    { call(...args: any[]): any } | { send_command(...args: any[]): any } | { sendCommand(...args: any[]): any }

  /** One Redis server: `{ host, port, ... }`, a `redis://` URL, or a client object. */
  type RedisServer = string | Omit<RedisOptions, 'cluster'> | RedisClientObject

  /** A Redis server, or an array of independent masters (Redlock; one element: that server). */
  type Connection = RedisServer | RedisServer[]

  /** The settings that may also come grouped in `lockConfig`. */
  interface Settings {
    /** 'redis' (between processes) or 'inMemory' (this instance only); required here or in lockConfig. */
    type?: 'redis' | 'inMemory' | undefined
    /** Prefix of lockNs() keys: `namespace + ':' + key`. */
    namespace?: string | undefined
    /** type 'redis': the server(s); default `127.0.0.1:6379`. */
    connection?: Connection | undefined
    /** type 'redis': Redlock's options. */
    lockOptions?: LockOptions | undefined
    /** type 'inMemory': retries after the first attempt (default 10); negative: retry forever. */
    retry?: number | undefined
    /** type 'inMemory': ms between attempts (default 200). */
    delay?: number | undefined
  }

  /** Options of `Lock.create`: the settings, and `lockConfig` (an object or a JSON string), which wins. */
  interface CreateOptions extends Settings {
    /** The same settings grouped, e.g. `process.env.LOCK_CONFIG` (JSON); its fields win over the top-level ones. */
    lockConfig?: Settings | string | undefined
  }

  /** A ttl in ms, or `{ ttl }`; default 30000. */
  type TtlOrOptions = number | { ttl?: number | undefined }

  /** A held lock. */
  class LockHandle {
    private constructor()
    /** The key as locked: `key`, or `namespace:key` for lockNs(). */
    readonly resource: string
    /** The random value that proves this acquisition. */
    readonly value: string
    /** ferrolock's fencing token: grows with every acquisition of the key. */
    readonly fence: bigint
    /** Epoch ms when the lease ends as this process counts it; 0 once unlocked. */
    readonly expiration: number
    /** Releases the lock; rejects a LockError when it was not held any more. */
    unlock(): Promise<void>
    /** Sets the lease to `ttl` ms from now and resolves this same handle; rejects a LockError once expired. */
    extend(ttl: number): Promise<LockHandle>
  }

  /** Redlock 4's error: `name` 'LockError', `attempts` made, and ferrolock's `code`. */
  class LockError extends FerrolockError {
    constructor(message: string, attempts?: number, code?: ErrorCode, options?: LockErrorOptions)
    /** Attempts made (acquire), 0 (extend after expiry) or undefined (unlock). */
    readonly attempts: number | undefined
  }
}

/**
 * @leverege/lock's `Lock`: `Lock.create(options)`, then `lock`, `lockNs`, `destroy`. `Lock.LockError`
 * and `Lock.LockHandle` are its error and handle classes.
 */
declare class Lock {
  /** Same as `new Lock(options)`; throws an InvalidArgumentError on bad settings. */
  static create(options: Lock.CreateOptions): Lock
  constructor(options: Lock.CreateOptions)
  /** 'redis' or 'inMemory'. */
  readonly type: 'redis' | 'inMemory'
  /** The namespace of lockNs(), if any. */
  readonly namespace: string | undefined
  /** Locks `key` as is; rejects a LockError after retryCount + 1 attempts. */
  lock(key: string, ttlOrOptions?: Lock.TtlOrOptions): Promise<Lock.LockHandle>
  /** Locks `namespace + ':' + key`. */
  lockNs(key: string, ttlOrOptions?: Lock.TtlOrOptions): Promise<Lock.LockHandle>
  /** Releases held locks, rejects waiting calls, closes the connections this instance opened. */
  destroy(): Promise<void>
}

export = Lock
