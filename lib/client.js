'use strict'
// The lock client: acquire, tryAcquire, using, inspect, DynamoDB's table methods, close. Each
// call crosses into Rust once; results come back through the completion queue (lib/ops.js).
// Also what index.js and compat/ share to make one: openClient, and redisNative for the compat
// entries' own client objects.

const os = require('node:os')
const { NativeClient, immediateAcquire } = require('./native.js')
const { LockNotAcquiredError, LockLostError, ClientClosedError, AbortedError, lift } = require('./errors.js')
const { settle, splitCallback } = require('./callbacks.js')
const { show, invalid, isPlainObject, shape, checkName } = require('./options/shape.js')
const { acquireOptions, packed, packedArgs, packedFence, HANDLE, FENCE, EVENTS } = require('./options/acquire.js')
const { redisOptions, nativeRedis, redlockOptions } = require('./options/redis.js')
const { dynamoOptions, nativeDynamo } = require('./options/dynamodb.js')
const { fileOptions } = require('./options/file.js')
const { isRedisCluster } = require('./transport.js')
const { Lock, kClientClosed } = require('./lock.js')
const ops = require('./ops.js')

const REDLOCK_KEYS = ['driftFactor', 'clockDriftMs', 'retryCount', 'retryDelay', 'retryJitter', 'restartQuarantine']
const checkClient = shape({
  memory: 'any',
  redis: 'any',
  redlock: 'any',
  dynamodb: 'any',
  file: 'any',
  keyPrefix: 'string',
  logger: 'any',
  driftFactor: 'number',
  clockDriftMs: 'number',
  requestTimeout: 'number',
  retryCount: 'number',
  retryDelay: 'number',
  retryJitter: 'number',
  restartQuarantine: 'quarantine',
  maxDataBytes: 'number',
  memoryWarning: 'boolean',
})
const checkTableOptions = shape({
  readCapacity: 'number',
  writeCapacity: 'number',
  tags: 'object',
  ttl: 'boolean',
  timeout: 'number',
})
// Who holds a lock when no owner is given.
const DEFAULT_OWNER = `${os.hostname()}:${process.pid}`

class Client {
  #native
  #logger
  #closed = false
  #locks = new Set() // Lock objects not over yet, to end them on close()
  #forget = (lock) => this.#locks.delete(lock)
  #lockShared = null // what every Lock of this client shares (made on first use)

  #owner // the owner name of locks acquired without one (undefined: the token)
  #immediate // the native client's number for the immediate calls (0: its store has none)
  #table // DynamoDB: the lock table's name
  #capabilities // what the store can do: { binaryData, dynamoOptions, tables, immediate }

  /** Made by createClient() over a native client whose locks default to `owner`. */
  constructor(nativeClient, logger, owner, table) {
    this.#native = nativeClient
    this.#logger = logger
    this.#owner = owner
    this.#table = table
    this.#capabilities = nativeClient.capabilities
    this.#immediate = this.#capabilities.immediate ? nativeClient.immediateId : 0
  }

  /** 'memory', 'file', 'redis', 'redis-cluster', 'redlock' or 'dynamodb'. */
  get backend() {
    return this.#native.kind
  }

  /** Acquires `name`, waiting by default. Rejects ERR_LOCK_NOT_ACQUIRED at the deadline. */
  acquire(name, options, callback) {
    // The common call, (name) or (name, options): no callback to find among the arguments.
    if (callback === undefined && typeof options !== 'function' && typeof name !== 'function') {
      return this.#acquire(name, options, false)
    }
    const { args, callback: cb } = splitCallback([...arguments], 2)
    return settle(cb, () => this.#acquire(args[0], args[1], false))
  }

  /** One attempt: a Lock, or null when another owner holds it. */
  tryAcquire(name, options, callback) {
    if (callback === undefined && typeof options !== 'function' && typeof name !== 'function') {
      return this.#acquire(name, options, true)
    }
    const { args, callback: cb } = splitCallback([...arguments], 2)
    return settle(cb, () => this.#acquire(args[0], args[1], true))
  }

  // The promise of acquire (`tryOnly`: of tryAcquire). Where the store can (memory, file), a
  // free lock is taken inside this call and the promise returned is already resolved; bad
  // input rejects it before any work.
  #acquire(name, options, tryOnly) {
    let opts
    try {
      checkName(name)
      opts = acquireOptions(options, this.#capabilities, tryOnly)
      const signal = opts === undefined ? undefined : opts.signal
      if (this.#closed || (signal && signal.aborted)) {
        this.#native.check(name, opts, tryOnly) // bad input is reported first
        if (this.#closed) throw new ClientClosedError('the lock client is closed')
        throw new AbortedError(`acquiring lock "${name}" was aborted`)
      }
      if (this.#capabilities.immediate) {
        const lock = this.#acquireNow(name)
        if (lock !== undefined) return lock !== null || tryOnly ? Promise.resolve(lock) : notAcquired(name)
      }
    } catch (err) {
      return Promise.reject(lift(err))
    }
    // The options as read once (`opts`, a plain object), never the caller's object again.
    return this.#acquireLater(name, opts, opts === undefined ? undefined : opts.signal, tryOnly)
  }

  // One attempt at once with the options acquireOptions packed: the Lock, null when it is held
  // and that was the one attempt, undefined when the caller must wait. The binding checks ranges.
  #acquireNow(name) {
    const token = immediateAcquire(this.#immediate, name, packed, packedArgs.owner, packedArgs.data)
    if (typeof token !== 'string') return token
    // The binding's owner, as it chose it: the option, else the client's, else the token.
    const owner = packedArgs.owner !== undefined ? packedArgs.owner : this.#owner !== undefined ? this.#owner : token
    return this.#made(packed[HANDLE], name, token, owner, packedFence[FENCE], packed[EVENTS] === 1)
  }

  // Acquires through the I/O thread: waits, or asks a store over the network.
  async #acquireLater(name, opts, signal, tryOnly) {
    const native = this.#native
    let id
    const onAbort = () => native.cancel(id)
    let grant
    try {
      grant = await ops.submit((op) => {
        id = op
        if (signal) {
          native.prepare(op) // registered now: an abort right after this call is not missed
          signal.addEventListener('abort', onAbort, { once: true })
        }
        native.acquire(op, name, opts, tryOnly)
      })
    } finally {
      if (signal) signal.removeEventListener('abort', onAbort)
    }
    if (grant) return this.#made(grant.handle, name, grant.token, grant.owner, grant.fence, grant.events)
    if (tryOnly) return null
    throw new LockNotAcquiredError(`lock "${name}" is held by another owner`)
  }

  // The Lock of a lock the binding keeps under `handle`.
  #made(handle, name, token, owner, fence, events) {
    const shared =
      this.#lockShared ||
      (this.#lockShared = {
        native: this.#native,
        immediate: this.#immediate,
        logger: this.#logger,
        onOver: this.#forget,
        capabilities: this.#capabilities,
      })
    const lock = new Lock(handle, name, token, owner, fence, events, shared)
    this.#locks.add(lock)
    return lock
  }

  /**
   * Acquires `name`, runs `fn(signal, lock)` with auto-extend on, and always releases. Rejects
   * ERR_LOCK_LOST if the lock was lost while `fn` ran (the signal was aborted then).
   */
  using(name, options, fn, callback) {
    if (typeof options === 'function') return this.using(name, undefined, options, fn)
    return settle(callback, async () => {
      if (typeof fn !== 'function') throw invalid(`fn must be a function (got ${show(fn)})`)
      if (isPlainObject(options) && options.autoExtend === false) {
        throw invalid('options.autoExtend: using() always auto-extends the lock while fn runs')
      }
      // Auto-extend even where the client's default is off (DynamoDB with heartbeatPeriod 0).
      const opts =
        isPlainObject(options) && options.autoExtend === undefined ? { ...options, autoExtend: true } : options
      const lock = await this.acquire(name, opts === undefined ? { autoExtend: true } : opts)
      let result
      try {
        result = await fn(lock.signal, lock)
      } finally {
        if (!lock.lost) await lock.release().catch(() => {})
      }
      if (lock.lost) throw new LockLostError(`lock "${name}" was lost while in use`)
      return result
    })
  }

  /** Reads a lock without changing it: { owner, remainingTtl, fence, data } or null. */
  inspect(name, callback) {
    return settle(callback, async () => {
      checkName(name)
      if (this.#closed) throw new ClientClosedError('the lock client is closed')
      const info = await ops.submit((op) => this.#native.inspect(op, name))
      if (!info) return null
      const remainingTtl = info.remainingTtl === undefined ? null : info.remainingTtl
      return { owner: info.owner, remainingTtl, fence: info.fence, data: info.data === undefined ? null : info.data }
    })
  }

  /**
   * DynamoDB: reads the record of `name`, released or not: { owner, data, fence, leaseDuration,
   * released, expired, recordVersionNumber, attributes } or null. `expired` is this client's view:
   * it saw the same record version for a whole lease.
   */
  get(name, callback) {
    return settle(callback, async () => {
      checkName(name)
      this.#dynamoOnly('get')
      const r = await ops.submit((op) => this.#native.get(op, name))
      if (!r) return null
      return {
        owner: r.owner,
        data: r.data === undefined ? null : r.data,
        fence: r.fence,
        leaseDuration: r.leaseDuration,
        released: r.released,
        expired: r.expired,
        recordVersionNumber: r.recordVersionNumber,
        attributes: JSON.parse(r.attributes),
      }
    })
  }

  /**
   * DynamoDB: creates the lock table and resolves once it is ACTIVE: { table, created }, where created
   * is false when the table existed already. Options: readCapacity + writeCapacity (provisioned;
   * default on-demand), tags ({ key: value }), ttl (enable DynamoDB TTL on `ttlAttribute`), timeout.
   */
  createLockTable(...input) {
    const { args, callback } = splitCallback(input, 1)
    return settle(callback, async () => {
      const o = args[0] === undefined ? {} : args[0]
      checkTableOptions(o, 'createLockTable options')
      let tags
      if (o.tags !== undefined) {
        tags = Object.entries(o.tags)
        if (tags.some(([, v]) => typeof v !== 'string')) {
          throw invalid('createLockTable options.tags values must be strings')
        }
      }
      this.#dynamoOnly('createLockTable')
      const created = await ops.submit((op) =>
        this.#native.createLockTable(op, {
          readCapacity: o.readCapacity,
          writeCapacity: o.writeCapacity,
          tags,
          ttl: o.ttl,
          timeout: o.timeout,
        }),
      )
      return { table: this.#table, created }
    })
  }

  /** DynamoDB: deletes the lock table and resolves once it is gone: { table, deleted } (false: there was none). */
  deleteLockTable(callback) {
    return settle(callback, async () => {
      this.#dynamoOnly('deleteLockTable')
      const deleted = await ops.submit((op) => this.#native.deleteLockTable(op, undefined))
      return { table: this.#table, deleted }
    })
  }

  #dynamoOnly(method) {
    if (!this.#capabilities.tables) throw invalid(`${method}() is only available on a dynamodb client`)
    if (this.#closed) throw new ClientClosedError('the lock client is closed')
  }

  /** Rejects pending acquires (ERR_CLIENT_CLOSED), releases every held lock, closes connections. */
  close(callback) {
    return settle(callback, async () => {
      this.#closed = true
      await ops.submit((op) => this.#native.close(op))
      for (const lock of this.#locks) lock[kClientClosed]() // deleting while iterating a Set is safe
    })
  }

  /** Counters for leak checks: acquires pending, locks held, names subscribed. */
  stats() {
    const { pending, held, watched } = this.#native.stats()
    return { pending, held, watched }
  }
}

/**
 * A client over the options of createClient() (an object or undefined): the backend it names,
 * memory by default. Throws ERR_INVALID_ARG before any I/O.
 */
function openClient(options) {
  const o = options === undefined ? {} : options
  checkClient(o, 'options')
  if (o.logger !== undefined && (o.logger === null || typeof o.logger !== 'object')) {
    throw invalid('options.logger must be a logger object (pino-compatible)')
  }
  if (o.memory !== undefined && o.memory !== true) throw invalid('options.memory must be true when given')
  const others = [o.redis, o.redlock, o.dynamodb, o.file]
  if (o.memoryWarning !== undefined && others.some((b) => b !== undefined)) {
    throw invalid('options.memoryWarning applies to the memory backend only')
  }
  const chosen = ['memory', 'file', 'redis', 'redlock', 'dynamodb'].filter((b) => o[b] !== undefined)
  if (chosen.length > 1) throw invalid(`options: choose one backend (got ${chosen.join(' and ')})`)
  if (o.redlock === undefined) {
    const extra = REDLOCK_KEYS.find((k) => o[k] !== undefined)
    if (extra) throw invalid(`options.${extra} applies to the redlock backend only`)
  }
  // requestTimeout bounds every request (Redlock: per master, in its own options below).
  const defaults = { owner: DEFAULT_OWNER, maxDataBytes: o.maxDataBytes, requestTimeout: o.requestTimeout }
  if (o.dynamodb !== undefined) {
    if (o.keyPrefix !== undefined) throw invalid('options.keyPrefix does not apply to the dynamodb backend')
    const d = dynamoOptions(o.dynamodb)
    if (o.requestTimeout !== undefined) {
      if (d.native.requestTimeout !== undefined) {
        throw invalid('options.requestTimeout: give it once (here or as options.dynamodb.requestTimeout)')
      }
      d.native.requestTimeout = o.requestTimeout
    }
    if (d.ownerName !== undefined) defaults.owner = d.ownerName
    const native = wrapNative(() => NativeClient.dynamodb(ops.queue(), nativeDynamo(d.native), defaults))
    return new Client(native, o.logger, defaults.owner, d.native.table)
  }
  let native
  if (o.redlock !== undefined) {
    const { masters, ...r } = redlockOptions(o)
    const { retryCount, retryDelay, retryJitter } = o
    native = wrapNative(() =>
      NativeClient.redlock(
        ops.queue(),
        { ...r, masters: masters.map((m) => nativeRedis(m)) },
        { ...defaults, requestTimeout: undefined, retryCount, retryDelay, retryJitter },
      ),
    )
  } else if (o.file !== undefined) {
    if (o.keyPrefix !== undefined) throw invalid('options.keyPrefix does not apply to the file backend')
    const f = fileOptions(o.file)
    native = wrapNative(() => NativeClient.file(ops.queue(), f, defaults))
  } else if (o.redis !== undefined) {
    const r = redisOptions(o.redis, o.keyPrefix)
    native = wrapNative(() => NativeClient.redis(ops.queue(), nativeRedis(r), defaults))
  } else {
    native = wrapNative(() => NativeClient.memory(ops.queue(), defaults))
    if (o.memoryWarning !== false) warnIfNotShared()
  }
  return new Client(native, o.logger, defaults.owner)
}

// The memory backend excludes within one process only. Where the app is evidently one of several
// processes of the same code (a node cluster worker, PM2 cluster mode), say so, once per process.
let warnedNotShared = false
function warnIfNotShared() {
  if (warnedNotShared) return
  const worker = require('node:cluster').isWorker
  const pm2 = process.env.NODE_APP_INSTANCE !== undefined
  if (!worker && !pm2) return
  warnedNotShared = true
  process.emitWarning(
    `ferrolock: the memory backend excludes only within one process, and this is ${
      worker ? 'a node cluster worker' : 'one instance of a PM2 cluster'
    }: every process has locks of its own. Use the file backend (createClient({ file: dir })) to exclude the ` +
      'processes of one host, or the Redis backend (createClient({ redis })), Redlock or DynamoDB across hosts. ' +
      'createClient({ memoryWarning: false }) silences this.',
    { type: 'FerrolockWarning', code: 'FERROLOCK_MEMORY_NOT_SHARED' },
  )
}

function notAcquired(name) {
  return Promise.reject(new LockNotAcquiredError(`lock "${name}" is held by another owner`))
}

// Runs a native factory, lifting its error into a typed one.
function wrapNative(make) {
  try {
    return make()
  } catch (err) {
    throw lift(err)
  }
}

/**
 * For the compat entries: the promise methods (claim, extendToken, releaseToken) of a native
 * client over a caller's Redis client object; `prefer` names its command method to use first.
 */
function redisNative(clientObject, keyPrefix, prefer) {
  const opts = { keyPrefix, clientObject, clientCluster: isRedisCluster(clientObject) }
  return ops.promised(wrapNative(() => NativeClient.redis(ops.queue(), nativeRedis(opts, prefer))))
}

module.exports = { Client, openClient, redisNative }
