'use strict'
// Drop-in for dist-lock 2.0.1: `require('ferrolock/dist-lock')` (and `require('ferrolock')`
// itself) is its factory, `distLock(redisClient, options)` (docs/compat/dist-lock.md). Same call
// shapes, messages, results and Redis layout (a hash at keyPrefix + name with `id` and
// `owner`, expiring by PEXPIRE), so old and new processes exclude each other.
//
// Each attempt is decided in Rust (`claim`, `extendToken`, `releaseToken` of lib/client.js),
// whose scripts go through the caller's own client object, looked up at call time. This file
// keeps dist-lock's observable contract in JS: argument checks, the fixed-delay retry loop,
// the lock objects and the callbacks.
//
// Differences from the original (docs/compat/README.md): a ttl or extension Redis would refuse,
// or one that is not positive, is refused before any I/O; callbacks of release/extend are
// optional (errors then become process warnings); one `error` listener per client object
// instead of `connect` and `error` listeners per factory call; node_redis 4 clients work.

const crypto = require('node:crypto')

const { isRedisClient } = require('../lib/transport.js')
const { redisNative } = require('../lib/client.js')
const { deliver } = require('../lib/callbacks.js')
const { MAX_MS } = require('../lib/options/shape.js')

const DEFAULTS = { ttl: 30000, retryDelay: 50, maxRetries: -1, keyPrefix: 'lock:' }
const ID_LENGTH = 25
const BASE36 = '0123456789abcdefghijklmnopqrstuvwxyz'
// Keep client objects we listen on: one `error` listener each, however many factories.
const listening = new WeakSet()
const ignoreError = () => {}

const { kClientCause, lift } = require('../lib/errors.js')

/** A lock id like dist-lock's cuids: 'c' and 24 lowercase base36 characters, from a CSPRNG. */
function newId() {
  let id = 'c'
  while (id.length < ID_LENGTH) {
    for (const byte of crypto.randomBytes(32)) {
      // 252 = 7 * 36: no modulo bias
      if (byte < 252 && id.length < ID_LENGTH) id += BASE36[byte % 36]
    }
  }
  return id
}

/** The integer Redis's PEXPIRE would read from `value` (as the client sends it), else NaN. */
function redisInteger(value) {
  if (typeof value !== 'number' && typeof value !== 'string') return NaN
  const text = String(value)
  return /^-?(0|[1-9]\d{0,17})$/.test(text) ? Number(text) : NaN
}

// Why Redis would refuse `value` as milliseconds, or why we do (`what` names it), else null.
function msError(value, what) {
  const ms = redisInteger(value)
  if (Number.isNaN(ms)) return new Error('ERR value is not an integer or out of range')
  if (ms <= 0) return new Error(`${what} must be a positive integer`)
  if (ms > MAX_MS) return new Error(`${what} must be at most ${MAX_MS} (about 24.8 days)`)
  return null
}

const nameError = () => new Error('resourceName is required and must be a string')
const badName = (name) => !name || typeof name !== 'string'
const badId = (id) => !id || typeof id !== 'string'

function notAFunction() {
  return new TypeError('callback is not a function')
}

// The callback of release/extend/releaseLock/extendLock: optional (undefined or null), else a
// function. Without one, an error becomes a process warning (dist-lock threw from the reply
// handler: an uncaught exception).
function optional(callback) {
  if (callback === undefined || callback === null) {
    return (err) => {
      if (err) process.emitWarning(err instanceof Error ? err : String(err))
    }
  }
  if (typeof callback !== 'function') throw notAFunction()
  return callback
}

// The error to hand the caller: its own client's error object when that failed, as dist-lock
// did; otherwise ferrolock's typed error (e.g. a client that never answered).
function fromNative(err) {
  const lifted = lift(err)
  return lifted && lifted[kClientCause] ? lifted.cause : lifted
}

// Settles `promise` into `callback(err, value)` on a later tick, outside the promise chain, so
// an exception thrown by the callback is uncaught, as it was from the client's reply handler.
const settle = (promise, callback) => deliver(promise, callback, fromNative)

// HMGET key id owner through the caller's client: callback API (node_redis <= 3, node_redis 4
// legacy mode, ioredis), else node_redis 4's hmGet promise.
function hmget(redis, key, callback) {
  if (typeof redis.send_command === 'function' || typeof redis.hmget === 'function') {
    return redis.hmget(key, 'id', 'owner', callback)
  }
  let pending
  try {
    pending = Promise.resolve(redis.hmGet(key, ['id', 'owner']))
  } catch (err) {
    pending = Promise.reject(err)
  }
  pending.then(
    (result) => process.nextTick(callback, null, result),
    (err) => process.nextTick(callback, err),
  )
}

/**
 * dist-lock's factory: `{acquire, getAcquiredLock, releaseLock, extendLock}` over `redis` (a
 * node_redis 0.12 to 4 or ioredis client). Defaults are written into `options`, which is read
 * again at every call.
 */
module.exports = function distLock(redis, options) {
  // node_redis 0.12-3 and ioredis send through send_command, node_redis 4 through sendCommand
  // (in legacy mode its `v4.sendCommand`): lib/transport.js picks, at each call.
  if (!isRedisClient(redis)) {
    throw new TypeError('redisClient must be a Redis client (node_redis or ioredis) with send_command or sendCommand')
  }
  if (!options || (typeof options !== 'object' && typeof options !== 'function')) options = {}
  for (const [name, value] of Object.entries(DEFAULTS)) {
    // Reflect.set: a frozen options object keeps its values (the defaults apply at read time).
    if (options[name] === undefined) Reflect.set(options, name, value)
  }
  const read = (name) => (options[name] === undefined ? DEFAULTS[name] : options[name])

  // dist-lock kept the client from crashing on connection errors (its script loader listened
  // for them); keep that, with one listener per client object however many factories.
  if (typeof redis.on === 'function' && !listening.has(redis)) {
    listening.add(redis)
    redis.on('error', ignoreError)
  }

  // One native client per key prefix (the option may change between calls).
  const natives = new Map()
  const nativeFor = (prefix) => {
    let native = natives.get(prefix)
    if (!native) {
      native = redisNative(redis, prefix, 'send_command')
      natives.set(prefix, native)
    }
    return native
  }
  // Runs `op(native)` for the lock `name` under the current prefix: its key and a promise.
  const run = (name, op) => {
    const key = read('keyPrefix') + name
    let pending
    try {
      pending = op(nativeFor(key.slice(0, key.length - name.length)))
    } catch (err) {
      pending = Promise.reject(err)
    }
    return { key, pending }
  }

  const api = {}

  // The lock object: own keys in dist-lock's order.
  const lockObject = (name, key, id, owner) => ({
    key,
    id,
    owner,
    release: (callback) => {
      api.releaseLock(name, id, callback)
    },
    extend: (milliseconds, callback) => {
      api.extendLock(name, id, milliseconds, callback)
    },
  })

  // One attempt with a fresh id: callback(err, lock | false), always on a later tick.
  const tryToAcquire = (name, owner, callback) => {
    const id = newId()
    const ttl = read('ttl')
    const invalid = msError(ttl, 'ttl')
    if (invalid) return process.nextTick(callback, invalid)
    const { key, pending } = run(name, (native) => native.claim(name, id, owner, redisInteger(ttl)))
    settle(pending, (err, fence) => {
      if (err) return callback(err)
      callback(null, fence === null ? false : lockObject(name, key, id, owner))
    })
  }

  api.acquire = function acquire(resourceName, owner, callback) {
    if (badName(resourceName)) {
      if (typeof callback !== 'function') throw notAFunction()
      return callback(nameError())
    }
    if (typeof owner === 'function') {
      callback = owner
      owner = ''
    }
    if (typeof callback !== 'function') throw notAFunction()
    if (typeof owner !== 'string') return callback(new Error('owner must be a string'))

    let attempt = 0
    const attemptAcquire = () => {
      attempt += 1
      tryToAcquire(resourceName, owner, (err, lock) => {
        if (err) return callback(err)
        if (lock) {
          lock.acquiredOnAttempt = attempt
          lock.acquireDelay = (attempt - 1) * read('retryDelay')
          return callback(null, lock)
        }
        // dist-lock's rule: -1 retries until acquired, n >= 0 allows n retries, any other
        // negative none. A fixed delay, no jitter.
        const maxRetries = read('maxRetries')
        if (maxRetries === -1 || attempt <= maxRetries) return setTimeout(attemptAcquire, read('retryDelay'))
        callback(null, false)
      })
    }
    attemptAcquire()
  }

  api.getAcquiredLock = function getAcquiredLock(resourceName, callback) {
    if (typeof callback !== 'function') throw notAFunction()
    if (badName(resourceName)) return callback(nameError())
    const key = read('keyPrefix') + resourceName
    hmget(redis, key, (err, result) => {
      if (err) return callback(err)
      if (result[0] === null) return callback(null, null)
      callback(null, lockObject(resourceName, key, result[0], result[1]))
    })
  }

  api.releaseLock = function releaseLock(resourceName, id, callback) {
    const done = optional(callback)
    if (badName(resourceName)) return done(nameError())
    if (badId(id)) return done(new Error('id is required and must be a string'))
    settle(run(resourceName, (native) => native.releaseToken(resourceName, id)).pending, done)
  }

  api.extendLock = function extendLock(resourceName, id, milliseconds, callback) {
    const done = optional(callback)
    if (badName(resourceName)) return done(nameError())
    if (badId(id)) return done(new Error('id is required and must be a string'))
    if (!milliseconds || typeof milliseconds !== 'number') {
      return done(new Error('milliseconds is required and must be a number'))
    }
    const invalid = msError(milliseconds, 'milliseconds')
    if (invalid) return void process.nextTick(done, invalid)
    settle(run(resourceName, (native) => native.extendToken(resourceName, id, milliseconds)).pending, done)
  }

  return api
}
