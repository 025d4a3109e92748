'use strict'
// ferrolock public API: a thin layer over the native binding (binding.js, generated).
// The lock logic (waiting, retries, heartbeats, lost detection, fences) lives in Rust; this
// file validates input, adapts callbacks and promises, and turns lock events into an
// EventEmitter.

const { EventEmitter } = require('node:events')
const os = require('node:os')
const { NativeClient, registerTransport } = require('./lib/native.js')
const {
  dynamoSender,
  dynamoStyle,
  redisSender,
  isRedisClient,
  isRedisCluster,
  takeKept,
  unmark,
} = require('./lib/transport.js')

const MAX_MS = 2 ** 31 - 1
const MAX_NAME_BYTES = 1024
const DEFAULTS = { ttl: 30_000, retryDelay: 100, retryJitter: 50, autoExtend: true }
const ACQUIRE_KEYS = [
  'ttl',
  'wait',
  'retryDelay',
  'retryJitter',
  'maxRetries',
  'autoExtend',
  'refreshInterval',
  'owner',
  'data',
  'signal',
  'safeTime',
  // DynamoDB only:
  'replaceData',
  'deleteOnRelease',
  'additionalAttributes',
  'additionalTimeToWait',
]
const DYNAMO_ONLY = ['replaceData', 'deleteOnRelease', 'additionalAttributes', 'additionalTimeToWait']
const REDLOCK_KEYS = ['driftFactor', 'clockDriftMs', 'requestTimeout', 'retryCount', 'retryDelay', 'retryJitter']
const CLIENT_KEYS = ['memory', 'redis', 'redlock', 'dynamodb', 'keyPrefix', 'logger', ...REDLOCK_KEYS]
const DYNAMO_KEYS = [
  'table',
  'region',
  'endpoint',
  'credentials',
  'partitionKey',
  'sortKey',
  'ownerName',
  'leaseDuration',
  'heartbeatPeriod',
  'ttlAttribute',
  'requestTimeout',
  'client',
]
// cirello's and Amazon's defaults: a 20 s lease renewed every 5 s.
const DYNAMO_DEFAULTS = { leaseDuration: 20_000, heartbeatPeriod: 5_000 }
const REDIS_KEYS = ['url', 'host', 'port', 'username', 'password', 'db', 'keyPrefix', 'tls', 'cluster']

// ---- errors ---------------------------------------------------------------------------------

class LockError extends Error {
  constructor(message, code, options) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
}
const errorClass = (name, code) =>
  ({
    [name]: class extends LockError {
      constructor(message, options) {
        super(message, code, options)
      }
    },
  })[name]
const LockNotAcquiredError = errorClass('LockNotAcquiredError', 'ERR_LOCK_NOT_ACQUIRED')
const LockLostError = errorClass('LockLostError', 'ERR_LOCK_LOST')
const InvalidArgumentError = errorClass('InvalidArgumentError', 'ERR_INVALID_ARG')
const BackendUnavailableError = errorClass('BackendUnavailableError', 'ERR_BACKEND_UNAVAILABLE')
const ClientClosedError = errorClass('ClientClosedError', 'ERR_CLIENT_CLOSED')
const AbortedError = errorClass('AbortedError', 'ERR_ABORTED')
const TableNotFoundError = errorClass('TableNotFoundError', 'ERR_TABLE_NOT_FOUND')
const BY_CODE = {
  ERR_TABLE_NOT_FOUND: TableNotFoundError,
  ERR_LOCK_NOT_ACQUIRED: LockNotAcquiredError,
  ERR_LOCK_LOST: LockLostError,
  ERR_INVALID_ARG: InvalidArgumentError,
  ERR_BACKEND_UNAVAILABLE: BackendUnavailableError,
  ERR_CLIENT_CLOSED: ClientClosedError,
  ERR_ABORTED: AbortedError,
}

// The binding rejects with a JSON reason {code, message, cause}: lift it into a typed error.
function lift(err) {
  let parsed
  try {
    parsed = JSON.parse(err && err.message)
  } catch {
    return err
  }
  const Cls = BY_CODE[parsed.code] || LockError
  // An error of the caller's own client object comes back as itself, the cause.
  const original = takeKept(parsed.cause) || takeKept(parsed.message)
  const cause = original || (parsed.cause ? new Error(unmark(parsed.cause)) : undefined)
  const options = cause ? { cause } : undefined
  const message = unmark(parsed.message)
  return Cls === LockError ? new LockError(message, parsed.code, options) : new Cls(message, options)
}
const native = (promise) => promise.catch((err) => Promise.reject(lift(err)))

// ---- validation (before any I/O) -------------------------------------------------------------

const show = (v) => (typeof v === 'string' ? JSON.stringify(v) : typeof v === 'bigint' ? `${v}n` : String(v))
const invalid = (message) => new InvalidArgumentError(message)
const isPlainObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v)

function checkName(name) {
  if (typeof name !== 'string' || name.length === 0)
    throw invalid(`name must be a non-empty string (got ${show(name)})`)
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) throw invalid(`name must be at most ${MAX_NAME_BYTES} bytes`)
}

function checkMs(value, what, min = 1) {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > MAX_MS) {
    throw invalid(`${what} must be an integer number of milliseconds from ${min} to ${MAX_MS} (got ${show(value)})`)
  }
}

function checkKeys(obj, allowed, what) {
  if (!isPlainObject(obj)) throw invalid(`${what} must be an object (got ${show(obj)})`)
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      const near = allowed.find((a) => a.toLowerCase() === key.toLowerCase())
      throw invalid(`${what}: unknown option ${show(key)}${near ? ` (did you mean ${show(near)}?)` : ''}`)
    }
  }
}

// Whether `v` is made of JSON values only (what DynamoDB attributes can hold here).
function isJsonValue(v, depth = 0) {
  if (depth > 32) return false
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return true
  if (typeof v === 'number') return Number.isFinite(v)
  if (Array.isArray(v)) return v.every((x) => isJsonValue(x, depth + 1))
  if (isPlainObject(v) && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.values(v).every((x) => isJsonValue(x, depth + 1))
  }
  return false
}

// Turns user acquire options into the binding's shape; `tryOnly` forces a single attempt.
// `defaults` are the client's own (DynamoDB: lease, heartbeat period, owner name; Redlock:
// retryCount, retryDelay, retryJitter).
function acquireOptions(options, tryOnly, defaults) {
  const o = options === undefined ? {} : options
  checkKeys(o, ACQUIRE_KEYS, 'options')
  if (defaults.backend !== 'dynamodb') {
    const key = DYNAMO_ONLY.find((k) => o[k] !== undefined)
    if (key) throw invalid(`options.${key} is only supported by the dynamodb backend`)
  }
  const ttl = o.ttl === undefined ? defaults.ttl : o.ttl
  checkMs(ttl, 'options.ttl')
  const retryDelay = o.retryDelay === undefined ? defaults.retryDelay : o.retryDelay
  checkMs(retryDelay, 'options.retryDelay', 0)
  const retryJitter = o.retryJitter === undefined ? defaults.retryJitter : o.retryJitter
  checkMs(retryJitter, 'options.retryJitter', 0)
  let wait
  if (o.additionalTimeToWait !== undefined) {
    // cirello / Amazon: wait until the holder's lease could have run out, plus this.
    checkMs(o.additionalTimeToWait, 'options.additionalTimeToWait', 0)
    if (o.wait !== undefined) throw invalid('options.wait and options.additionalTimeToWait exclude each other')
  }
  if (tryOnly || o.wait === false) wait = 0
  else if (o.wait === undefined || o.wait === true) wait = undefined
  else {
    checkMs(o.wait, 'options.wait', 0)
    wait = o.wait
  }
  let maxRetries
  const retries = o.maxRetries === undefined ? defaults.maxRetries : o.maxRetries
  if (retries !== undefined && retries !== Infinity) {
    if (!Number.isInteger(retries) || retries < 0) {
      throw invalid(`options.maxRetries must be a non-negative integer or Infinity (got ${show(retries)})`)
    }
    maxRetries = retries
  }
  const autoExtend = o.autoExtend === undefined ? defaults.autoExtend : o.autoExtend
  if (typeof autoExtend !== 'boolean') throw invalid(`options.autoExtend must be a boolean (got ${show(autoExtend)})`)
  let refreshInterval = o.refreshInterval
  if (refreshInterval !== undefined) {
    checkMs(refreshInterval, 'options.refreshInterval')
    if (refreshInterval >= ttl) {
      throw invalid(`options.refreshInterval (${refreshInterval}) must be less than options.ttl (${ttl})`)
    }
  } else if (defaults.refreshInterval !== undefined && defaults.refreshInterval < ttl) {
    refreshInterval = defaults.refreshInterval
  }
  if (o.safeTime !== undefined) {
    checkMs(o.safeTime, 'options.safeTime')
    if (o.safeTime >= ttl) throw invalid(`options.safeTime (${o.safeTime}) must be less than options.ttl (${ttl})`)
  }
  for (const key of ['replaceData', 'deleteOnRelease']) {
    if (o[key] !== undefined && typeof o[key] !== 'boolean') {
      throw invalid(`options.${key} must be a boolean (got ${show(o[key])})`)
    }
  }
  let additionalAttributes
  if (o.additionalAttributes !== undefined) {
    if (!isPlainObject(o.additionalAttributes) || !isJsonValue(o.additionalAttributes)) {
      throw invalid('options.additionalAttributes must be a plain object of JSON values')
    }
    additionalAttributes = JSON.stringify(o.additionalAttributes)
  }
  if (o.owner !== undefined && (typeof o.owner !== 'string' || Buffer.byteLength(o.owner) > MAX_NAME_BYTES)) {
    throw invalid(`options.owner must be a string of at most ${MAX_NAME_BYTES} bytes (got ${show(o.owner)})`)
  }
  checkData(o.data, 'options.data', defaults.backend)
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw invalid(`options.signal must be an AbortSignal (got ${show(o.signal)})`)
  }
  return {
    signal: o.signal,
    native: {
      ttl,
      wait,
      retryDelay,
      retryJitter,
      maxRetries,
      autoExtend,
      refreshInterval,
      owner: o.owner === undefined ? defaults.owner : o.owner,
      data: o.data,
      safeTime: o.safeTime,
      replaceData: o.replaceData,
      deleteOnRelease: o.deleteOnRelease,
      additionalAttributes,
      additionalTimeToWait: tryOnly || o.wait === false ? undefined : o.additionalTimeToWait,
    },
  }
}
const DEFAULT_OWNER = `${os.hostname()}:${process.pid}`

// Lock data: a string anywhere; a Buffer on the memory and dynamodb backends.
function checkData(data, what, backend) {
  if (data === undefined || typeof data === 'string') return
  const bytes = backend === 'memory' || backend === 'dynamodb'
  if (Buffer.isBuffer(data) && bytes) return
  const allowed = bytes ? 'a string or a Buffer' : 'a string'
  throw invalid(`${what} must be ${allowed} (got ${Buffer.isBuffer(data) ? 'a Buffer' : show(data)})`)
}

// DynamoDB options. Messages never repeat credentials.
function dynamoOptions(d) {
  checkKeys(d, DYNAMO_KEYS, 'options.dynamodb')
  if (typeof d.table !== 'string') throw invalid(`options.dynamodb.table must be a string (got ${show(d.table)})`)
  // A client object of the caller's (aws-sdk v2 DynamoDB, @aws-sdk/client-dynamodb v3) brings
  // its own region, endpoint and credentials: every request goes through it.
  if (d.client !== undefined) {
    if (!dynamoStyle(d.client)) {
      throw invalid('options.dynamodb.client must be an aws-sdk DynamoDB or @aws-sdk/client-dynamodb client')
    }
    const own = ['region', 'endpoint', 'credentials'].find((k) => d[k] !== undefined)
    if (own) throw invalid(`options.dynamodb.${own}: the client object brings its own; do not also give it`)
  }
  for (const key of ['region', 'partitionKey', 'ttlAttribute', 'ownerName']) {
    if (d[key] !== undefined && (typeof d[key] !== 'string' || d[key] === '')) {
      throw invalid(`options.dynamodb.${key} must be a non-empty string`)
    }
  }
  if (d.endpoint !== undefined) {
    let url
    try {
      url = new URL(d.endpoint)
    } catch {
      throw invalid('options.dynamodb.endpoint must be an http:// or https:// URL')
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw invalid('options.dynamodb.endpoint must be an http:// or https:// URL')
    }
  }
  let creds = {}
  if (d.credentials !== undefined) {
    // Other keys are allowed: AWS SDK credential objects carry more (expiration, accountId, ...).
    if (!isPlainObject(d.credentials)) throw invalid('options.dynamodb.credentials must be an object')
    const { accessKeyId, secretAccessKey, sessionToken } = d.credentials
    if (typeof accessKeyId !== 'string' || !accessKeyId || typeof secretAccessKey !== 'string' || !secretAccessKey) {
      throw invalid('options.dynamodb.credentials needs non-empty accessKeyId and secretAccessKey strings')
    }
    if (sessionToken !== undefined && typeof sessionToken !== 'string') {
      throw invalid('options.dynamodb.credentials.sessionToken must be a string')
    }
    creds = { accessKeyId, secretAccessKey, sessionToken }
  }
  let sortKey = {}
  if (d.sortKey !== undefined) {
    checkKeys(d.sortKey, ['name', 'value'], 'options.dynamodb.sortKey')
    if (typeof d.sortKey.name !== 'string' || typeof d.sortKey.value !== 'string') {
      throw invalid('options.dynamodb.sortKey needs { name, value } strings')
    }
    sortKey = { sortKeyName: d.sortKey.name, sortKeyValue: d.sortKey.value }
  }
  const leaseDuration = d.leaseDuration === undefined ? DYNAMO_DEFAULTS.leaseDuration : d.leaseDuration
  checkMs(leaseDuration, 'options.dynamodb.leaseDuration')
  const heartbeatPeriod = d.heartbeatPeriod === undefined ? DYNAMO_DEFAULTS.heartbeatPeriod : d.heartbeatPeriod
  checkMs(heartbeatPeriod, 'options.dynamodb.heartbeatPeriod', 0)
  if (heartbeatPeriod >= leaseDuration) {
    throw invalid(
      `options.dynamodb.heartbeatPeriod (${heartbeatPeriod}) must be less than options.dynamodb.leaseDuration (${leaseDuration})`,
    )
  }
  if (d.requestTimeout !== undefined) checkMs(d.requestTimeout, 'options.dynamodb.requestTimeout')
  const native = {
    table: d.table,
    region: d.region,
    endpoint: d.endpoint,
    ...creds,
    partitionKey: d.partitionKey,
    ...sortKey,
    ttlAttribute: d.ttlAttribute,
    requestTimeout: d.requestTimeout,
    clientObject: d.client,
  }
  // heartbeatPeriod 0: no automatic heartbeats (cirello); call lock.sendHeartbeat() yourself.
  const defaults = {
    backend: 'dynamodb',
    ttl: leaseDuration,
    refreshInterval: heartbeatPeriod || undefined,
    autoExtend: heartbeatPeriod > 0,
    owner: d.ownerName === undefined ? DEFAULT_OWNER : d.ownerName,
  }
  return { native, defaults }
}

// A redis:// or rediss:// URL, parsed; `what` names it in messages, which never repeat the URL
// (it may hold a password).
function parseRedisUrl(value, what) {
  let url
  try {
    url = new URL(value)
  } catch {
    throw invalid(`${what}: invalid Redis URL (expected redis://[user:password@]host[:port][/db])`)
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw invalid(`${what}: unsupported URL scheme ${show(url.protocol)} (expected redis: or rediss:)`)
  }
  if (!url.hostname) throw invalid(`${what}: the Redis URL has no host`)
  return url
}

// Redis options: a URL string or an object (`cluster`: node URLs of a Redis Cluster).
// A caller's client object (ioredis Redis or Cluster, node_redis 0.x-3 or 4+) is used as is:
// every command goes through its own methods.
function redisOptions(redis, keyPrefix, what = 'options.redis') {
  if (isRedisClient(redis)) {
    if (keyPrefix !== undefined && typeof keyPrefix !== 'string') throw invalid('options.keyPrefix must be a string')
    // ioredis would prefix the lock key and its companions (`{key}:fence`) into different slots.
    if (isRedisCluster(redis) && redis.options && redis.options.keyPrefix) {
      throw invalid(
        `${what}: an ioredis Cluster with its own keyPrefix cannot be used; give keyPrefix to ferrolock instead`,
      )
    }
    return { keyPrefix, clientObject: redis, clientCluster: isRedisCluster(redis) }
  }
  let opts = redis
  if (typeof redis === 'string') opts = { url: redis }
  checkKeys(opts, REDIS_KEYS, what)
  if (opts.url !== undefined) parseRedisUrl(opts.url, what)
  if (opts.cluster !== undefined) {
    if (!Array.isArray(opts.cluster) || opts.cluster.length === 0) {
      throw invalid(`${what}.cluster must be a non-empty array of node URLs`)
    }
    if (opts.url !== undefined || opts.host !== undefined || opts.port !== undefined) {
      throw invalid(`${what}: give either cluster (node URLs) or url/host/port, not both`)
    }
    if (opts.db !== undefined && opts.db !== 0) throw invalid(`${what}.db: a Redis Cluster has only database 0`)
    opts.cluster.forEach((node, i) => {
      if (typeof node !== 'string') throw invalid(`${what}.cluster[${i}] must be a URL string`)
      const url = parseRedisUrl(node, `${what}.cluster[${i}]`)
      if (url.pathname.length > 1 && url.pathname !== '/0') {
        throw invalid(`${what}.cluster[${i}]: a Redis Cluster has only database 0`)
      }
    })
  }
  for (const key of ['host', 'username', 'password']) {
    if (opts[key] !== undefined && typeof opts[key] !== 'string') throw invalid(`${what}.${key} must be a string`)
  }
  if (opts.port !== undefined && !(Number.isInteger(opts.port) && opts.port > 0 && opts.port < 65536)) {
    throw invalid(`${what}.port must be an integer from 1 to 65535 (got ${show(opts.port)})`)
  }
  if (opts.db !== undefined && !(Number.isInteger(opts.db) && opts.db >= 0)) {
    throw invalid(`${what}.db must be a non-negative integer (got ${show(opts.db)})`)
  }
  const prefix = opts.keyPrefix !== undefined ? opts.keyPrefix : keyPrefix
  if (prefix !== undefined && typeof prefix !== 'string') throw invalid('options.keyPrefix must be a string')
  // tls: true (system roots) or { ca } (PEM of a private CA); a rediss:// URL implies TLS.
  let tlsCa
  if (opts.tls !== undefined && typeof opts.tls !== 'boolean') {
    checkKeys(opts.tls, ['ca'], `${what}.tls`)
    const { ca } = opts.tls
    if (!(typeof ca === 'string' || Buffer.isBuffer(ca))) throw invalid(`${what}.tls.ca must be a PEM string or Buffer`)
    tlsCa = String(ca)
  }
  return { ...opts, keyPrefix: prefix, tls: opts.tls !== undefined && opts.tls !== false, tlsCa }
}

// Native options: a client object becomes a registered send function (the transport seam);
// `prefer` names the command method to use first (see lib/transport.js).
function nativeRedis(opts, prefer) {
  if (!opts.clientObject) return opts
  const { clientObject, ...rest } = opts
  return { ...rest, client: registerTransport(redisSender(clientObject, prefer)) }
}

// Where a client object connects, `host:port/db`, when it says: ioredis (`options`), node_redis
// 3 (`address`, `selected_db`) or 4 (`options.url` / `options.socket`, `options.database`).
function clientAddress(c) {
  try {
    const o = c.options || {}
    if (typeof o.path === 'string') return `${o.path}/${o.db || 0}`
    if (typeof o.host === 'string' && o.port) return `${o.host.toLowerCase()}:${o.port}/${o.db || 0}`
    if (typeof c.address === 'string') return `${c.address.toLowerCase()}/${c.selected_db || 0}`
    if (typeof o.url === 'string') {
      const url = new URL(o.url)
      const db = o.database ?? (url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0)
      return `${url.hostname.toLowerCase()}:${url.port || 6379}/${db}`
    }
    if (o.socket && typeof o.socket.host === 'string') {
      return `${o.socket.host.toLowerCase()}:${o.socket.port || 6379}/${o.database || 0}`
    }
  } catch {}
  return undefined // unknown: only the same object twice is caught
}

// Where a Redlock master lives, `host:port/db`, to refuse the same master twice.
function masterAddress(opts) {
  if (opts.clientObject) return clientAddress(opts.clientObject) || opts.clientObject
  const url = opts.url !== undefined ? new URL(opts.url) : undefined
  const host = (opts.host ?? (url && url.hostname) ?? '127.0.0.1').toLowerCase()
  const port = opts.port ?? (url && url.port ? Number(url.port) : 6379)
  const db = opts.db ?? (url && url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0)
  return `${host}:${port}/${db}`
}

// Redlock: at least 2 distinct masters (1 is refused: use `redis`; 3 or 5 tolerate 1 or 2
// failures), each a URL or single-server options, plus the quorum settings.
function redlockOptions(o) {
  if (!Array.isArray(o.redlock)) throw invalid('options.redlock must be an array of master URLs or options')
  if (o.redlock.length < 2) {
    throw invalid(
      `options.redlock must list at least 2 masters (got ${o.redlock.length}); for one server use options.redis`,
    )
  }
  const seen = new Map()
  const masters = o.redlock.map((master, i) => {
    const what = `options.redlock[${i}]`
    if (typeof master !== 'string' && !isPlainObject(master)) {
      throw invalid(`${what} must be a redis:// URL, connection options or a Redis client object`)
    }
    if (isRedisClient(master) ? isRedisCluster(master) : master.cluster !== undefined) {
      throw invalid(`${what}: a Redlock master is one server, not a cluster`)
    }
    const opts = redisOptions(master, undefined, what)
    const address = masterAddress(opts)
    if (seen.has(address)) {
      const shown = typeof address === 'string' ? address : 'client object'
      throw invalid(`${what}: the same master (${shown}) is already options.redlock[${seen.get(address)}]`)
    }
    seen.set(address, i)
    return opts
  })
  const { driftFactor, clockDriftMs, requestTimeout } = o
  if (
    driftFactor !== undefined &&
    !(typeof driftFactor === 'number' && Number.isFinite(driftFactor) && driftFactor >= 0 && driftFactor < 0.5)
  ) {
    throw invalid(`options.driftFactor must be a number from 0 to less than 0.5 (got ${show(driftFactor)})`)
  }
  if (clockDriftMs !== undefined) checkMs(clockDriftMs, 'options.clockDriftMs', 0)
  if (requestTimeout !== undefined) checkMs(requestTimeout, 'options.requestTimeout')
  if (o.keyPrefix !== undefined && typeof o.keyPrefix !== 'string') throw invalid('options.keyPrefix must be a string')
  return { masters, driftFactor, clockDriftMs, requestTimeout, keyPrefix: o.keyPrefix }
}

// Client-wide acquire defaults (Redlock's retryCount, retryDelay, retryJitter).
function clientDefaults(o) {
  const defaults = { ...DEFAULTS, maxRetries: undefined }
  if (o.retryDelay !== undefined) {
    checkMs(o.retryDelay, 'options.retryDelay', 0)
    defaults.retryDelay = o.retryDelay
  }
  if (o.retryJitter !== undefined) {
    checkMs(o.retryJitter, 'options.retryJitter', 0)
    defaults.retryJitter = o.retryJitter
  }
  if (o.retryCount !== undefined) {
    if (!(o.retryCount === Infinity || (Number.isInteger(o.retryCount) && o.retryCount >= 0))) {
      throw invalid(`options.retryCount must be a non-negative integer or Infinity (got ${show(o.retryCount)})`)
    }
    defaults.maxRetries = o.retryCount
  }
  return defaults
}

// ---- callbacks and promises ------------------------------------------------------------------

// Runs `task` (an async function) and either returns its promise or, when a callback is given,
// delivers the outcome to it and returns undefined. A callback that is not a function throws.
function settle(callback, task) {
  if (callback === undefined) return task()
  if (typeof callback !== 'function') {
    const err = new TypeError(`callback must be a function (got ${show(callback)})`)
    err.code = 'ERR_INVALID_ARG'
    throw err
  }
  task().then(
    (value) => process.nextTick(callback, null, value),
    (err) => process.nextTick(callback, err),
  )
}

// Splits (a, [b], [callback]) style arguments: a trailing function is the callback.
function splitCallback(args, arity) {
  const list = [...args]
  if (list.length > arity) return { args: list.slice(0, arity), callback: list[arity] }
  if (list.length > 0 && typeof list[list.length - 1] === 'function') {
    return { args: list.slice(0, -1), callback: list[list.length - 1] }
  }
  return { args: list, callback: undefined }
}

// Splits ([options], [callback]): a lone argument that is not an options object is the callback
// (so a callback that is not a function still throws at once).
function optionsThenCallback(input) {
  if (input.length === 1 && input[0] !== undefined && !isPlainObject(input[0])) {
    return { options: undefined, callback: input[0] }
  }
  return { options: input[0], callback: input[1] }
}

const call = (logger, level, obj, msg) => logger && typeof logger[level] === 'function' && logger[level](obj, msg)

// ---- Lock ----------------------------------------------------------------------------------------

const asyncDispose = Symbol.asyncDispose || Symbol.for('nodejs.asyncDispose')
const kClientClosed = Symbol('clientClosed')

class Lock extends EventEmitter {
  #native
  #logger
  #controller = null // made on first use of `signal`: most locks never need one
  #over = false
  #endReason = null // the abort reason once the lock is over

  #onOver
  #backend

  constructor(nativeLock, logger, pump, onOver, backend) {
    super()
    this.#native = nativeLock
    this.#logger = logger
    this.#onOver = onOver
    this.#backend = backend
    this.name = nativeLock.name
    this.token = nativeLock.token
    this.owner = nativeLock.owner
    this.fence = nativeLock.fence
    // 'acquired' comes first, once the caller had a chance to attach listeners. The event pump
    // starts after it; only heartbeats (and the session monitor of `safeTime`) produce events
    // on their own, so without either there is nothing to pump.
    setImmediate(() => {
      this.emit('acquired')
      if (pump) this.#pump()
    })
  }

  /** True once the lock was lost (expired, deleted or taken over). */
  get lost() {
    return this.#native.lost
  }
  /** Epoch ms when the lease ends as this process counts it (now, once the lock is over). */
  get expiresAt() {
    return Date.now() + this.#native.validFor
  }
  /** Aborted when the lock is lost or released. */
  get signal() {
    if (!this.#controller) {
      this.#controller = new AbortController()
      if (this.#over) this.#controller.abort(this.#endReason)
    }
    return this.#controller.signal
  }

  async #pump() {
    let ack = 0
    for (;;) {
      let ev
      try {
        ev = await this.#native.nextEvent(ack)
      } catch {
        ev = null
      }
      if (!ev) return
      // release() may have ended the lock already: nothing is reported after that.
      if (this.#over && ev.kind !== 'probe') continue
      try {
        this.#deliver(ev)
      } catch (err) {
        // A listener threw: surface it like any listener error, but keep the heartbeat going.
        process.nextTick(() => {
          throw err
        })
      }
      if (ev.kind === 'probe') ack = ev.probe // answered by the next nextEvent call
    }
  }

  #deliver(ev) {
    switch (ev.kind) {
      case 'refreshed':
        this.emit('refreshed', { ttl: ev.ttl })
        break
      case 'expiring':
        call(this.#logger, 'warn', { lock: this.name, remaining: ev.remaining }, 'ferrolock: lease expiring')
        this.emit('expiring', { remaining: ev.remaining })
        break
      case 'error': {
        const original = takeKept(ev.message)
        const err = new BackendUnavailableError(
          `heartbeat of lock "${this.name}" failed: ${unmark(ev.message)}`,
          original ? { cause: original } : undefined,
        )
        call(this.#logger, 'error', { lock: this.name, err }, 'ferrolock: heartbeat failed')
        // Recoverable: only reported to those who listen, never crashes the process.
        if (this.listenerCount('error') > 0) this.emit('error', err)
        break
      }
      case 'lost':
        this.#finish('lost', ev.reason)
        break
      case 'released':
        this.#finish('released')
        break
    }
  }

  // Called by Client#close after the native side released everything.
  [kClientClosed]() {
    if (this.lost) this.#finish('lost', 'the lock was already gone when the client closed')
    else this.#finish('released')
  }

  // Ends the lock once: aborts the signal and emits 'lost' or 'released'.
  #finish(kind, reason) {
    if (this.#over) return
    this.#over = true
    this.#onOver(this)
    if (kind === 'lost') {
      const err = new LockLostError(`lock "${this.name}" was lost: ${reason}`)
      call(this.#logger, 'warn', { lock: this.name, fence: String(this.fence) }, err.message)
      this.#endReason = err
      if (this.#controller) this.#controller.abort(err)
      this.emit('lost', err)
    } else {
      this.#endReason = new LockError(`lock "${this.name}" was released`, 'ERR_LOCK_RELEASED')
      if (this.#controller) this.#controller.abort(this.#endReason)
      this.emit('released')
    }
  }

  /** Sets the lease to `ttl` ms from now. Resolves false (and emits 'lost') if it is no longer ours. */
  extend(ttl, callback) {
    return settle(callback, async () => {
      checkMs(ttl, 'ttl')
      return this.#renewed(await native(this.#native.extend(ttl, undefined)))
    })
  }

  /**
   * Renews the lease for its current ttl now (a manual heartbeat, e.g. with `heartbeatPeriod: 0`).
   * `{ data }` also replaces the stored data (DynamoDB). Resolves false (and emits 'lost') if it is no longer ours.
   */
  sendHeartbeat(...input) {
    const { options, callback } = optionsThenCallback(input)
    return settle(callback, async () => {
      const { data } = this.#dataOption(options, 'sendHeartbeat')
      return this.#renewed(await native(this.#native.extend(undefined, data)))
    })
  }

  #renewed(ok) {
    if (!ok) this.#finish('lost', 'the lock was deleted or taken by another owner')
    return ok
  }

  // `{ data }` of sendHeartbeat and release (and `{ delete }` of release).
  #dataOption(options, method) {
    const o = options === undefined ? {} : options
    checkKeys(o, method === 'release' ? ['data', 'delete'] : ['data'], `${method} options`)
    checkData(o.data, `${method} options.data`, this.#backend)
    if (o.delete !== undefined && typeof o.delete !== 'boolean')
      throw invalid('release options.delete must be a boolean')
    if ((o.data !== undefined || o.delete !== undefined) && this.#backend !== 'dynamodb') {
      throw invalid(`${method} options are only supported by the dynamodb backend`)
    }
    return o
  }

  /**
   * Releases the lock if it is still ours: true, or false when it was already gone. DynamoDB:
   * `{ data }` leaves data in the released record; `{ delete }` overrides `deleteOnRelease`.
   */
  release(...input) {
    const { options, callback } = optionsThenCallback(input)
    return settle(callback, async () => {
      const { data, delete: del } = this.#dataOption(options, 'release')
      const ok = await native(this.#native.release(data, del))
      if (ok) this.#finish('released')
      else this.#finish('lost', 'the lock was already gone when it was released')
      return ok
    })
  }

  async [asyncDispose]() {
    await this.release()
  }
}

// ---- Client --------------------------------------------------------------------------------

let nextRequest = 0

class Client {
  #native
  #logger
  #closed = false
  #locks = new Set() // Lock objects not over yet, to end them on close()
  #forget = (lock) => this.#locks.delete(lock)

  #defaults

  constructor(nativeClient, logger, defaults) {
    this.#native = nativeClient
    this.#logger = logger
    this.#defaults = defaults
  }

  /** 'memory', 'redis', 'redis-cluster', 'redlock' or 'dynamodb'. */
  get backend() {
    return this.#native.kind
  }

  /** Acquires `name`, waiting by default. Rejects ERR_LOCK_NOT_ACQUIRED at the deadline. */
  acquire(...input) {
    const { args, callback } = splitCallback(input, 2)
    return settle(callback, async () => {
      const lock = await this.#acquire(args[0], args[1], false)
      if (!lock) throw new LockNotAcquiredError(`lock "${args[0]}" is held by another owner`)
      return lock
    })
  }

  /** One attempt: a Lock, or null when another owner holds it. */
  tryAcquire(...input) {
    const { args, callback } = splitCallback(input, 2)
    return settle(callback, () => this.#acquire(args[0], args[1], true))
  }

  async #acquire(name, options, tryOnly) {
    checkName(name)
    const { signal, native: opts } = acquireOptions(options, tryOnly, this.#defaults)
    if (this.#closed) throw new ClientClosedError('the lock client is closed')
    if (signal && signal.aborted) throw new AbortedError(`acquiring lock "${name}" was aborted`)
    const id = (nextRequest = (nextRequest % 0xfffffffe) + 1)
    const onAbort = () => this.#native.cancel(id)
    if (signal) {
      this.#native.prepare(id) // registered now: an abort right after this call is not missed
      signal.addEventListener('abort', onAbort, { once: true })
    }
    try {
      const nativeLock = await native(this.#native.acquire(name, opts, id))
      if (!nativeLock) return null
      const pump = opts.autoExtend || opts.safeTime !== undefined
      const lock = new Lock(nativeLock, this.#logger, pump, this.#forget, this.#defaults.backend)
      this.#locks.add(lock)
      return lock
    } finally {
      if (signal) signal.removeEventListener('abort', onAbort)
    }
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
      const info = await native(this.#native.inspect(name))
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
      const r = await native(this.#native.get(name))
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
      checkKeys(o, ['readCapacity', 'writeCapacity', 'tags', 'ttl', 'timeout'], 'createLockTable options')
      for (const key of ['readCapacity', 'writeCapacity']) {
        if (o[key] !== undefined && !(Number.isInteger(o[key]) && o[key] > 0)) {
          throw invalid(`createLockTable options.${key} must be a positive integer (got ${show(o[key])})`)
        }
      }
      if ((o.readCapacity === undefined) !== (o.writeCapacity === undefined)) {
        throw invalid('createLockTable options.readCapacity and options.writeCapacity go together')
      }
      let tags
      if (o.tags !== undefined) {
        checkKeys(o.tags, Object.keys(o.tags), 'createLockTable options.tags')
        tags = Object.entries(o.tags)
        if (tags.some(([, v]) => typeof v !== 'string'))
          throw invalid('createLockTable options.tags values must be strings')
      }
      if (o.ttl !== undefined && typeof o.ttl !== 'boolean')
        throw invalid('createLockTable options.ttl must be a boolean')
      if (o.timeout !== undefined) checkMs(o.timeout, 'createLockTable options.timeout')
      this.#dynamoOnly('createLockTable')
      const created = await native(
        this.#native.createLockTable({
          readCapacity: o.readCapacity,
          writeCapacity: o.writeCapacity,
          tags,
          ttl: o.ttl,
          timeout: o.timeout,
        }),
      )
      return { table: this.#defaults.table, created }
    })
  }

  /** DynamoDB: deletes the lock table and resolves once it is gone: { table, deleted } (false: there was none). */
  deleteLockTable(callback) {
    return settle(callback, async () => {
      this.#dynamoOnly('deleteLockTable')
      const deleted = await native(this.#native.deleteLockTable(undefined))
      return { table: this.#defaults.table, deleted }
    })
  }

  #dynamoOnly(method) {
    if (this.#defaults.backend !== 'dynamodb') throw invalid(`${method}() is only available on a dynamodb client`)
    if (this.#closed) throw new ClientClosedError('the lock client is closed')
  }

  /** Rejects pending acquires (ERR_CLIENT_CLOSED), releases every held lock, closes connections. */
  close(callback) {
    return settle(callback, async () => {
      this.#closed = true
      await this.#native.close()
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
 * Creates a lock client. No options (or { memory: true }): the in-process memory backend.
 * { redis: 'redis://host:port' | { host, port, password, db, ... } }: one Redis server;
 * { redis: { cluster: [urls] } }: a Redis Cluster; { redlock: [urls] }: Redlock over masters.
 * Instead of URLs or options, a Redis client object of your own (ioredis Redis or Cluster,
 * node_redis): ferrolock sends every command through its methods.
 */
function createClient(options) {
  // A string first: dynamo-lock's createClient(lockTableName, params) (the drop-in).
  if (typeof options === 'string') return require('./compat/dynamo-lock.js').createClient(...arguments)
  const o = options === undefined ? {} : options
  checkKeys(o, CLIENT_KEYS, 'options')
  if (o.logger !== undefined && (o.logger === null || typeof o.logger !== 'object')) {
    throw invalid('options.logger must be a logger object (pino-compatible)')
  }
  if (o.memory !== undefined && o.memory !== true) throw invalid('options.memory must be true when given')
  const chosen = ['memory', 'redis', 'redlock', 'dynamodb'].filter((b) => o[b] !== undefined)
  if (chosen.length > 1) throw invalid(`options: choose one backend (got ${chosen.join(' and ')})`)
  if (o.redlock === undefined) {
    const extra = REDLOCK_KEYS.find((k) => o[k] !== undefined)
    if (extra) throw invalid(`options.${extra} applies to the redlock backend only`)
  }
  if (o.keyPrefix !== undefined && typeof o.keyPrefix !== 'string') throw invalid('options.keyPrefix must be a string')
  const base = { ...clientDefaults(o), owner: DEFAULT_OWNER }
  let nativeClient
  let defaults
  if (o.dynamodb !== undefined) {
    if (o.keyPrefix !== undefined) throw invalid('options.keyPrefix does not apply to the dynamodb backend')
    const d = dynamoOptions(o.dynamodb)
    defaults = { ...base, ...d.defaults, table: d.native.table }
    nativeClient = wrapNative(() => {
      const { clientObject, ...rest } = d.native
      const client = clientObject ? registerTransport(dynamoSender(clientObject)) : undefined
      return NativeClient.dynamodb({ ...rest, client })
    })
  } else if (o.redlock !== undefined) {
    const r = redlockOptions(o)
    defaults = { ...base, backend: 'redlock' }
    nativeClient = wrapNative(() => NativeClient.redlock({ ...r, masters: r.masters.map((m) => nativeRedis(m)) }))
  } else if (o.redis !== undefined) {
    const r = redisOptions(o.redis, o.keyPrefix)
    defaults = { ...base, backend: r.cluster || r.clientCluster ? 'redis-cluster' : 'redis' }
    nativeClient = wrapNative(() => NativeClient.redis(nativeRedis(r)))
  } else {
    defaults = { ...base, backend: 'memory' }
    nativeClient = wrapNative(() => NativeClient.memory())
  }
  return new Client(nativeClient, o.logger, defaults)
}

// Runs a native factory, lifting its error into a typed one.
function wrapNative(make) {
  try {
    return make()
  } catch (err) {
    throw lift(err)
  }
}

// For the compat entries (compat/*.js) only: a native client over a caller's Redis client object,
// and the error lifting. Not a public API.
const internal = {
  redisNative(clientObject, keyPrefix, prefer) {
    const opts = { keyPrefix, clientObject, clientCluster: isRedisCluster(clientObject) }
    return wrapNative(() => NativeClient.redis(nativeRedis(opts, prefer)))
  },
  lift,
}

/**
 * The main export is also dist-lock's factory, `require('ferrolock')(redisClient, options)`, so
 * `npm install dist-lock@npm:ferrolock` runs dist-lock code unchanged (see compat/dist-lock.js).
 */
function ferrolock(redisClient, options) {
  return require('./compat/dist-lock.js')(redisClient, options)
}

// Named exports as plain assignments, so Node's ESM import of this file sees each name.
module.exports = ferrolock
module.exports.createClient = createClient
module.exports.Client = Client
module.exports.Lock = Lock
module.exports.LockError = LockError
module.exports.LockNotAcquiredError = LockNotAcquiredError
module.exports.LockLostError = LockLostError
module.exports.InvalidArgumentError = InvalidArgumentError
module.exports.BackendUnavailableError = BackendUnavailableError
module.exports.ClientClosedError = ClientClosedError
module.exports.AbortedError = AbortedError
module.exports.TableNotFoundError = TableNotFoundError
module.exports._internal = internal
