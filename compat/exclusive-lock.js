'use strict'
// Drop-in for @logdna/exclusive-lock 2.0.0: `require('ferrolock/exclusive-lock')` is its
// `ExclusiveLock` class (docs/compat/exclusive-lock.md), same options, errors, events and Redis layout
// (a string at `slug(key_prefix):slug(name)` holding `lock_contents`, SET PX NX then PEXPIRE).
// Every command goes through the caller's client, looked up on `this.cache_connection` at call
// time, because callers replace `pexpire`, `del`, `multi` and `exec` in their tests.
// Differences from the original, all after a lock was lost or for bad input (docs/compat/README.md,
// known unsafe behaviours): release() deletes only a key that still holds our contents; a PEXPIRE reply of 0
// is a lost lock; a refresh failure without an 'error' listener warns instead of crashing;
// logger methods are optional; non-positive timings are refused.

const { EventEmitter } = require('node:events')
const { instantiation_options } = require('../lib/schemas/index.js')
const { MAX_MS } = require('../lib/options/shape.js')

// A snapshot, as ajv compiles the schema once when the original module loads.
const SCHEMA = structuredClone(instantiation_options)
const REQUIRED_MIN_MS_DIFF = 500

const noop = () => {}
// The default logger, like abstract-logging: every level does nothing.
const abstractLogging = { fatal: noop, error: noop, warn: noop, info: noop, debug: noop, trace: noop }

const slug = (s) => s.replace(/[\s\W]+/g, '-')

const einval = (err, extra) => Object.assign(err, { code: 'EINVAL' }, extra)

// ---- validation: the subset of JSON schema draft-07 the schema uses, with ajv 8's defaults
// (first error only, a property set to `undefined` is absent) and ajv 8's messages.

const TYPES = {
  object: (v) => v !== null && typeof v === 'object' && !Array.isArray(v),
  string: (v) => typeof v === 'string',
  number: (v) => typeof v === 'number' && Number.isFinite(v),
}

/** The first error ajv 8 reports for `data`, as `{instancePath, message}`, or null. */
function firstError(schema, data, instancePath = '') {
  const error = (message) => ({ instancePath, message })
  if (schema.type !== undefined && !TYPES[schema.type](data)) return error(`must be ${schema.type}`)
  // ajv counts code points, not UTF-16 units
  if (typeof data === 'string' && schema.minLength !== undefined && [...data].length < schema.minLength) {
    return error(`must NOT have fewer than ${schema.minLength} characters`)
  }
  if (!TYPES.object(data)) return null
  // ajv's keyword order for objects: required, dependencies, properties (each in declared order)
  for (const prop of schema.required ?? []) {
    if (data[prop] === undefined) return error(`must have required property '${prop}'`)
  }
  for (const [prop, deps] of Object.entries(schema.dependencies ?? {})) {
    if (data[prop] !== undefined && deps.some((dep) => data[dep] === undefined)) {
      const noun = deps.length === 1 ? 'property' : 'properties'
      return error(`must have ${noun} ${deps.join(', ')} when property ${prop} is present`)
    }
  }
  for (const [prop, sub] of Object.entries(schema.properties ?? {})) {
    if (data[prop] === undefined) continue
    const err = firstError(sub, data[prop], `${instancePath}/${prop}`)
    if (err) return err
  }
  return null
}

// ---- client flavours

// node_redis 4+ spells it pExpire (and takes SET options as an object); ioredis spells it pexpire.
const isNodeRedis4 = (c) => typeof c.pExpire === 'function' && typeof c.pexpire !== 'function'

// node_redis <= 3 (and node_redis 4 in legacyMode) answer through callbacks: the original
// resolved `false` there yet wrote the key, so no working code can depend on it.
function hasCallbackApi(c) {
  try {
    // ioredis has a send_command alias too, but not node_redis's snake_case offline_queue
    const nodeRedis3 = typeof c.send_command === 'function' && 'offline_queue' in c
    return nodeRedis3 || (c.options != null && c.options.legacyMode === true)
  } catch {
    return false // a throwing getter: not node_redis
  }
}

const describe = (err) => (err instanceof Error ? err.message : String(err))

class ExclusiveLock extends EventEmitter {
  #key_prefix
  #hold = 0 // counts acquisitions, so a late PEXPIRE reply never ends a newer hold
  #releasing = null
  #written = null // the contents SET wrote for the current hold

  constructor(opts) {
    super()
    opts = opts ?? {}
    this.log = opts.log || abstractLogging

    const problem = firstError(SCHEMA, opts)
    if (problem) {
      const err = einval(new Error('Input validation failed'), { errors: [problem] })
      this.#log('error', err)
      throw err
    }
    const {
      name,
      cache_connection,
      lock_ttl_ms = 3000,
      lock_refresh_ms = 1000,
      lock_contents = '1',
      key_prefix = 'exclusive-lock',
    } = opts

    if (typeof cache_connection.set !== 'function') {
      throw einval(new TypeError('A valid cache_connection to a cache store is required'))
    }
    if (hasCallbackApi(cache_connection)) {
      throw einval(
        new TypeError(
          'cache_connection has the callback API of node_redis <= 3 (or node_redis 4 legacyMode), ' +
            'which is not supported: pass an ioredis client or a node_redis 4+ client',
        ),
      )
    }
    const diff = lock_ttl_ms - lock_refresh_ms
    if (diff < REQUIRED_MIN_MS_DIFF) {
      throw einval(new RangeError(`lock_refresh_ms must be at least ${REQUIRED_MIN_MS_DIFF}ms less than lock_ttl_ms`), {
        meta: { lock_ttl_ms, lock_refresh_ms, diff },
      })
    }
    // Not in the original: a timing <= 0 made a 1 ms refresh loop and a SET that Redis refuses;
    // so did a refresh interval above the timer maximum (Node runs such an interval every 1 ms).
    if (!(lock_ttl_ms > 0)) {
      throw einval(new RangeError('lock_ttl_ms must be a positive number of milliseconds'), {
        meta: { lock_ttl_ms, lock_refresh_ms },
      })
    }
    if (!(lock_refresh_ms > 0 && lock_refresh_ms <= MAX_MS)) {
      throw einval(new RangeError(`lock_refresh_ms must be a positive number of milliseconds, at most ${MAX_MS}`), {
        meta: { lock_ttl_ms, lock_refresh_ms },
      })
    }

    this.cache_connection = cache_connection
    this.name = slug(name)
    this.lock_ttl_ms = lock_ttl_ms
    this.lock_refresh_ms = lock_refresh_ms
    this.lock_contents = lock_contents
    this.#key_prefix = slug(key_prefix)
    this.acquired = false
    this.is_refreshing = false
    this.refresh_timer = null
  }

  get [Symbol.toStringTag]() {
    return 'ExclusiveLock'
  }

  get key() {
    return `${this.#key_prefix}:${this.name}`
  }

  async acquire() {
    const key = this.key
    if (this.acquired) {
      this.#log('warn', '%s lock is already acquired', key)
      return true
    }
    const c = this.cache_connection
    const contents = this.lock_contents
    const reply = isNodeRedis4(c)
      ? await c.set(key, contents, { PX: this.lock_ttl_ms, NX: true })
      : await c.set(key, contents, 'PX', this.lock_ttl_ms, 'NX')
    // `!this.acquired`: a concurrent acquire() of this instance may have won meanwhile
    if (reply && !this.acquired) {
      this.acquired = true
      this.#hold++
      this.#written = contents
      // Not unref'd: a held lock keeps the process alive, as in the original.
      this.refresh_timer = setInterval(() => {
        this.#refresh().catch((err) => this.#warn(err, key)) // only a throwing 'error' listener
      }, this.lock_refresh_ms)
      const { lock_contents, lock_refresh_ms, lock_ttl_ms } = this
      this.#log('info', { lock_contents, lock_refresh_ms, lock_ttl_ms }, '%s lock acquired', key)
      this.emit('acquired', key)
    }
    return this.acquired
  }

  async release() {
    if (!this.acquired) return
    // Concurrent calls share one release: one GET/DEL, one 'released'.
    this.#releasing ??= this.#release().finally(() => {
      this.#releasing = null
    })
    return this.#releasing
  }

  async inspect() {
    const c = this.cache_connection
    const key = this.key
    let entries // ioredis shape: [[err, value], [err, pttl]]
    if (isNodeRedis4(c)) {
      let replies // plain values
      try {
        replies = await c.multi().get(key).pTTL(key).exec()
      } catch (err) {
        // MultiErrorReply: report the failing command's own error, as with ioredis
        if (!Array.isArray(err?.replies)) throw err
        replies = err.replies
      }
      entries = Array.from(replies ?? [], (r) => (r instanceof Error ? [r] : [null, r]))
    } else {
      entries = (await c.multi().get(key).pttl(key).exec()) ?? []
    }
    const entry = (i) => (Array.isArray(entries[i]) ? entries[i] : [])
    const [getErr, lock_contents] = entry(0)
    const [pttlErr, lock_ttl_ms] = entry(1)
    for (const err of [getErr, pttlErr]) {
      if (err) {
        this.#log('error', { err }, 'Could not inspect lock %s', key)
        throw err
      }
    }
    if (lock_contents === null) return null
    return { lock_ttl_ms, lock_contents }
  }

  async #release() {
    clearInterval(this.refresh_timer)
    this.refresh_timer = null
    const key = this.key
    try {
      const c = this.cache_connection
      // Delete only our own key: after an expiry another instance may hold it. Without `get`
      // (a stub) this cannot be checked, and the original's plain DEL is sent. A new holder
      // could still take the key between GET and DEL if ours expires in that instant.
      const current = typeof c.get === 'function' ? await c.get(key) : undefined
      if (current === null || (current !== undefined && String(current) !== this.#written)) {
        this.#log('warn', '%s lock had expired or was held by another instance: not deleted', key)
      } else {
        await c.del(key)
        this.#log('info', '%s lock removed', key)
      }
      this.emit('released', key)
    } finally {
      this.acquired = false
    }
  }

  async #refresh() {
    if (this.is_refreshing) return
    this.is_refreshing = true
    let refreshing = true // this call still owns is_refreshing
    const key = this.key
    const hold = this.#hold
    try {
      const c = this.cache_connection
      // Renew only our own key: after an expiry another instance may hold it, and a plain
      // PEXPIRE would renew its lock for it. Without `get` (a stub) this cannot be checked.
      // (Instances sharing `lock_contents`, default '1', cannot be told apart.)
      const current = typeof c.get === 'function' ? await c.get(key) : undefined
      // A release began while GET was in flight: send nothing more, so that nothing goes
      // through the caller's connection once release() resolved (they may quit() it then).
      if (this.#releasing || !this.acquired || hold !== this.#hold) return
      if (current !== undefined && current !== null && String(current) !== this.#written) {
        if (this.acquired && hold === this.#hold) this.#lost(key, 'another instance holds it now')
        return
      }
      const reply = isNodeRedis4(c) ? await c.pExpire(key, this.lock_ttl_ms) : await c.pexpire(key, this.lock_ttl_ms)
      if (reply === 0 || reply === false) {
        // The key is gone: nothing to delete. A reply for an earlier hold changes nothing.
        if (this.acquired && hold === this.#hold) this.#lost(key)
        return
      }
      this.#log('trace', '%s lock refreshed to %sms', key, this.lock_ttl_ms)
      this.emit('refreshed', { key, lock_ttl_ms: this.lock_ttl_ms })
    } catch (err) {
      // The PEXPIRE settled: like the original, is_refreshing is false again before the
      // release below emits 'released'.
      this.is_refreshing = refreshing = false
      this.#fail(err, key)
      try {
        await this.release() // the instance property: callers replace it
      } catch (releaseErr) {
        this.#fail(releaseErr, key)
      }
    } finally {
      if (refreshing) this.is_refreshing = false
    }
  }

  #lost(key, why = 'it expired or was deleted before it could be refreshed') {
    clearInterval(this.refresh_timer)
    this.refresh_timer = null
    this.acquired = false
    const err = new Error(`lock ${key} was lost: ${why}`)
    err.code = 'ERR_LOCK_LOST'
    this.#fail(err, key)
  }

  // An asynchronous failure: the 'error' event if someone listens, else a log and a warning
  // (an 'error' event without a listener would throw from the timer and end the process).
  #fail(err, key) {
    if (this.listenerCount('error') > 0) this.emit('error', err)
    else this.#warn(err, key)
  }

  #warn(err, key) {
    this.#log('error', { err }, 'exclusive-lock %s: %s', key, describe(err))
    const options = { type: 'ExclusiveLockWarning', detail: "No 'error' listener on this ExclusiveLock." }
    if (err && typeof err.code === 'string') options.code = err.code
    process.emitWarning(`exclusive-lock ${key}: ${describe(err)}`, options)
  }

  // Logger methods are optional: only those that exist are called.
  #log(level, ...args) {
    const log = this.log
    if (log != null && typeof log[level] === 'function') log[level](...args)
  }
}

module.exports = ExclusiveLock
