'use strict'
// @leverege/lock drop-in: `require('ferrolock/leverege')` is `Lock` (docs/compat/leverege.md).
// A thin adapter over ferrolock's public API: it maps the old settings (Redlock's lockOptions,
// the in-memory retry/delay) onto acquire options and the results onto Redlock 4's shapes. The
// waiting, retries, TTLs and fences stay in the Rust core. README.md ("Migrating from @leverege/lock") lists every
// decision taken where the old README was silent.

const { openClient: createClient } = require('../lib/client.js')
const errors = require('../lib/errors.js')
const { MAX_MS, show, invalid, isPlainObject, checkKeys } = require('../lib/options/shape.js')

const { InvalidArgumentError } = errors

// Redlock 4's defaults (lockOptions of type 'redis').
const REDLOCK_DEFAULTS = { driftFactor: 0.01, retryCount: 10, retryDelay: 200, retryJitter: 100 }
// type 'inMemory': the same counts as Redlock's, no jitter.
const MEMORY_DEFAULTS = { retry: 10, delay: 200 }
// The lease when lock()/lockNs() get no ttl (ferrolock's default ttl).
const DEFAULT_TTL = 30_000
const TYPES = ['redis', 'inMemory']
// Settings allowed at the top level and in lockConfig (lockConfig wins, field by field).
const SETTINGS = ['type', 'namespace', 'connection', 'lockOptions', 'retry', 'delay']

function checkInt(value, what, min) {
  if (!Number.isInteger(value) || value < min || value > MAX_MS) {
    throw invalid(`${what} must be an integer from ${min} to ${MAX_MS} (got ${show(value)})`)
  }
}

// Copies the fields that are not undefined, so `{ retry: undefined }` never hides a value.
const defined = (obj) => Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined))

/** Redlock 4's error: `name` 'LockError', the attempts made, plus ferrolock's stable `code`. */
class LockError extends errors.LockError {
  constructor(message, attempts, code = 'ERR_LOCK_NOT_ACQUIRED', options) {
    super(message, code, options)
    this.attempts = attempts
  }
}

// `lockConfig` as given: an object, or a JSON string (e.g. process.env.LOCK_CONFIG).
function readLockConfig(config) {
  if (config === undefined || config === null) return {}
  let value = config
  if (typeof config === 'string') {
    try {
      value = JSON.parse(config)
    } catch (err) {
      // V8's message quotes the text, which may hold a password: only the position is kept.
      const at = /position (\d+)/.exec(err.message)
      throw invalid(
        `lockConfig is a string but not valid JSON${at ? ` (error at position ${at[1]})` : ''}; ` +
          'its text is not shown as it may hold credentials',
      )
    }
    if (!isPlainObject(value))
      throw invalid('lockConfig: the JSON string must hold an object, e.g. {"type":"inMemory"}')
  }
  checkKeys(value, SETTINGS, 'lockConfig', true)
  return defined(value)
}

// Retries of type 'inMemory': retry n -> n + 1 attempts, any negative number -> forever.
function memorySettings(s) {
  const retry = s.retry === undefined ? MEMORY_DEFAULTS.retry : s.retry
  if (!(Number.isInteger(retry) || retry === Infinity || retry === -Infinity)) {
    throw invalid(`retry must be an integer (negative: retry forever) (got ${show(retry)})`)
  }
  const delay = s.delay === undefined ? MEMORY_DEFAULTS.delay : s.delay
  checkInt(delay, 'delay', 0)
  const forever = retry < 0 || retry === Infinity
  return { retryCount: retry, acquire: { maxRetries: forever ? Infinity : retry, retryDelay: delay, retryJitter: 0 } }
}

// Redlock's lockOptions: retryCount n -> n + 1 attempts, -1 -> forever; the delay between
// attempts is retryDelay ± a random part of retryJitter, as Redlock draws it (ferrolock adds
// 0..retryJitter, so the range is shifted down).
function redisSettings(s) {
  const given = s.lockOptions === undefined ? {} : s.lockOptions
  checkKeys(given, Object.keys(REDLOCK_DEFAULTS), 'lockOptions', true)
  const o = { ...REDLOCK_DEFAULTS, ...defined(given) }
  const { driftFactor, retryCount, retryDelay, retryJitter } = o
  if (!(typeof driftFactor === 'number' && driftFactor >= 0 && driftFactor < 0.5)) {
    throw invalid(`lockOptions.driftFactor must be a number from 0 to less than 0.5 (got ${show(driftFactor)})`)
  }
  if (!(retryCount === Infinity || (Number.isInteger(retryCount) && retryCount >= -1))) {
    throw invalid(`lockOptions.retryCount must be an integer from -1 (retry forever) up (got ${show(retryCount)})`)
  }
  checkInt(retryDelay, 'lockOptions.retryDelay', 0)
  checkInt(retryJitter, 'lockOptions.retryJitter', 0)
  const low = Math.max(0, retryDelay - retryJitter)
  const forever = retryCount === -1 || retryCount === Infinity
  return {
    retryCount,
    driftFactor,
    acquire: {
      maxRetries: forever ? Infinity : retryCount,
      retryDelay: low,
      retryJitter: Math.min(retryDelay + retryJitter - low, MAX_MS),
    },
  }
}

// ferrolock client options for `connection`: { host, port, ... }, a redis:// URL, { url }, an
// ioredis / node_redis client object (ferrolock sends its commands through it), or an array of
// those (several masters: Redlock). Keys are the names as given (no prefix), like Redlock's.
function clientOptions(connection, driftFactor) {
  const conn = connection === undefined ? {} : connection
  const one = (c, what) => {
    if (typeof c !== 'string' && !isPlainObject(c)) {
      throw invalid(`${what} must be { host, port }, a redis:// URL, { url } or a Redis client (got ${show(c)})`)
    }
    return c
  }
  if (!Array.isArray(conn)) return { redis: one(conn, 'connection'), keyPrefix: '' }
  if (conn.length === 0) throw invalid('connection: the array lists no Redis server')
  const list = conn.map((c, i) => one(c, `connection[${i}]`))
  if (list.length === 1) return { redis: list[0], keyPrefix: '' }
  return { redlock: list, driftFactor, keyPrefix: '' }
}

// Creates the client, naming `connection` in ferrolock's messages instead of its own option names.
function openClient(options) {
  try {
    return createClient(options)
  } catch (err) {
    if (err.code !== 'ERR_INVALID_ARG') throw err
    const message = err.message
      .replace(/options\.redlock\[(\d+)\]/g, 'connection[$1]')
      .replace(/options\.redlock/g, 'connection')
      .replace(/options\.redis/g, 'connection')
    throw new InvalidArgumentError(message, { cause: err })
  }
}

// The ttl of lock(key, ttlOrOptions): a number of ms or { ttl }.
function ttlOf(ttlOrOptions) {
  if (ttlOrOptions === undefined) return DEFAULT_TTL
  if (!isPlainObject(ttlOrOptions)) return ttlOrOptions // a number; ferrolock validates it
  checkKeys(ttlOrOptions, ['ttl'], 'lock options', true)
  return ttlOrOptions.ttl === undefined ? DEFAULT_TTL : ttlOrOptions.ttl
}

let instances = 0

/** A held lock (Redlock's `Lock`): `unlock()`, `extend(ms)`. */
class LockHandle {
  #lock
  #done = false // unlocked (or the lock found gone): Redlock sets expiration to 0 then

  constructor(lock, resource) {
    this.#lock = lock
    /** The key as locked: `key`, or `namespace:key` for lockNs. */
    this.resource = resource
    /** The random value that proves this acquisition (ferrolock's token). */
    this.value = lock.token
    /** ferrolock's fencing token (a bigint that grows with every acquisition of the key). */
    this.fence = lock.fence
  }

  /** Epoch ms when the lease ends as this process counts it; 0 once unlocked. */
  get expiration() {
    return this.#done ? 0 : this.#lock.expiresAt
  }

  /** Releases the lock; rejects a LockError when it was not held any more (expired, unlocked). */
  async unlock() {
    this.#done = true
    if (await this.#lock.release()) return
    throw new LockError(`Unable to fully release the lock on resource "${this.resource}".`, undefined, 'ERR_LOCK_LOST')
  }

  /**
   * Sets the lease to `ttl` ms from now and resolves this same handle (use the returned one, as
   * the README says; the old one is the same object). Rejects once the lock expired or is gone.
   */
  async extend(ttl) {
    const expired = () =>
      new LockError(
        `Cannot extend lock on resource "${this.resource}" because the lock has already expired.`,
        0,
        'ERR_LOCK_LOST',
      )
    const ms = isPlainObject(ttl) ? ttl.ttl : ttl
    if (this.expiration <= Date.now() || this.#lock.lost) throw expired()
    if (await this.#lock.extend(ms)) return this
    this.#done = true
    throw expired()
  }
}

class Lock {
  #client
  #scope // prefix of every key in the shared memory store: one per inMemory instance
  #retryCount
  #acquire

  /** `Lock.create(options)`: the same as `new Lock(options)`. */
  static create(options) {
    return new Lock(options)
  }

  constructor(options) {
    const o = options === undefined ? {} : options
    checkKeys(o, [...SETTINGS, 'lockConfig'], 'Lock.create options', true)
    const { lockConfig, ...top } = o
    const s = { ...defined(top), ...readLockConfig(lockConfig) }
    if (!TYPES.includes(s.type)) {
      throw invalid(`type must be 'redis' or 'inMemory' (got ${show(s.type)}); give it in the options or in lockConfig`)
    }
    if (s.namespace !== undefined && (typeof s.namespace !== 'string' || s.namespace === '')) {
      throw invalid(`namespace must be a non-empty string (got ${show(s.namespace)})`)
    }
    /** 'redis' or 'inMemory'. */
    this.type = s.type
    /** The namespace of lockNs(), or undefined. */
    this.namespace = s.namespace
    if (s.type === 'inMemory') {
      const m = memorySettings(s)
      this.#retryCount = m.retryCount
      this.#acquire = m.acquire
      // Every memory client of a process shares one store; the README's in-memory lock locks
      // "on the instance", so each instance keeps its keys apart.
      this.#scope = `\0leverege/${++instances}/`
      this.#client = createClient()
    } else {
      const r = redisSettings(s)
      this.#retryCount = r.retryCount
      this.#acquire = r.acquire
      this.#scope = ''
      this.#client = openClient(clientOptions(s.connection, r.driftFactor))
    }
  }

  /** Locks `key` as it is (not namespaced) for `ttl` ms (a number or { ttl }; default 30000). */
  lock(key, ttlOrOptions) {
    return this.#lock(key, key, ttlOrOptions)
  }

  /** Locks `namespace + ':' + key`. */
  lockNs(key, ttlOrOptions) {
    if (this.namespace === undefined) {
      return Promise.reject(invalid('lockNs() needs a namespace: Lock.create({ namespace, ... })'))
    }
    return this.#lock(key, `${this.namespace}:${key}`, ttlOrOptions)
  }

  async #lock(key, resource, ttlOrOptions) {
    if (typeof key !== 'string' || key === '') throw invalid(`key must be a non-empty string (got ${show(key)})`)
    const options = { ...this.#acquire, ttl: ttlOf(ttlOrOptions), wait: true, autoExtend: false }
    let lock
    try {
      lock = await this.#client.acquire(this.#scope + resource, options)
    } catch (err) {
      if (err.code !== 'ERR_LOCK_NOT_ACQUIRED') throw err
      // Only a finite retry count ends this way, after retryCount + 1 attempts.
      const attempts = this.#retryCount + 1
      throw new LockError(`Exceeded ${this.#retryCount} attempts to lock the resource "${resource}".`, attempts)
    }
    return new LockHandle(lock, resource)
  }

  /**
   * Releases every lock this instance holds, rejects its waiting lock() calls and closes the
   * connections it opened (never a Redis client object passed in). Idempotent.
   */
  destroy() {
    return this.#client.close()
  }
}

Lock.LockError = LockError
Lock.LockHandle = LockHandle

module.exports = Lock
