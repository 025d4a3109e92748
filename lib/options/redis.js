'use strict'
// Redis and Redlock client options: their shapes, the one Redis URL parser, and the transport
// seam for a caller's own client object. Ranges (port, db, timeouts, drift) and the rules
// between options are Rust's.

const { registerRedis, isRedisClient, isRedisCluster } = require('../transport.js')
const { show, invalid, isPlainObject, checkKeys, shape } = require('./shape.js')

const checkRedis = shape({
  url: 'string',
  host: 'string',
  port: 'number',
  username: 'string',
  password: 'string',
  db: 'number',
  keyPrefix: 'string',
  tls: 'any',
  cluster: 'any',
})

/**
 * A redis:// or rediss:// URL, parsed; `what` names it in messages, which never repeat the
 * URL (it may hold a password).
 */
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

// `host:port/db` of a parsed URL, with the given host, port and db in its place.
function address(url, host, port, db) {
  const h = (host ?? (url && url.hostname) ?? '127.0.0.1').toLowerCase()
  const p = port ?? (url && url.port ? Number(url.port) : 6379)
  const d = db ?? (url && url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0)
  return `${h}:${p}/${d}`
}

/**
 * Redis options: a URL string or an object (`cluster`: node URLs of a Redis Cluster). A
 * caller's client object (ioredis Redis or Cluster, node_redis 0.x-3 or 4+) is used as is:
 * every command goes through its own methods.
 */
function redisOptions(redis, keyPrefix, what = 'options.redis') {
  if (isRedisClient(redis)) {
    // ioredis would prefix the lock key and its companions (`{key}:fence`) into different slots.
    if (isRedisCluster(redis) && redis.options && redis.options.keyPrefix) {
      throw invalid(
        `${what}: an ioredis Cluster with its own keyPrefix cannot be used; give keyPrefix to ferrolock instead`,
      )
    }
    return { keyPrefix, clientObject: redis, clientCluster: isRedisCluster(redis) }
  }
  const opts = typeof redis === 'string' ? { url: redis } : redis
  checkRedis(opts, what)
  const url = opts.url === undefined ? undefined : parseRedisUrl(opts.url, what)
  if (opts.cluster !== undefined) {
    if (!Array.isArray(opts.cluster) || opts.cluster.length === 0) {
      throw invalid(`${what}.cluster must be a non-empty array of node URLs`)
    }
    opts.cluster.forEach((node, i) => {
      if (typeof node !== 'string') throw invalid(`${what}.cluster[${i}] must be a URL string`)
      parseRedisUrl(node, `${what}.cluster[${i}]`)
    })
  }
  // tls: true (system roots) or { ca } (PEM of a private CA); a rediss:// URL implies TLS.
  let tlsCa
  if (opts.tls !== undefined && typeof opts.tls !== 'boolean') {
    checkKeys(opts.tls, ['ca'], `${what}.tls`)
    const { ca } = opts.tls
    if (!(typeof ca === 'string' || Buffer.isBuffer(ca))) throw invalid(`${what}.tls.ca must be a PEM string or Buffer`)
    tlsCa = String(ca)
  }
  return {
    ...opts,
    keyPrefix: opts.keyPrefix !== undefined ? opts.keyPrefix : keyPrefix,
    tls: opts.tls !== undefined && opts.tls !== false,
    tlsCa,
    address: address(url, opts.host, opts.port, opts.db),
  }
}

/**
 * Native options: a client object becomes a registered send function (the transport seam);
 * `prefer` names the command method to use first (see lib/transport.js).
 */
function nativeRedis(opts, prefer) {
  const { clientObject, address: _, ...rest } = opts
  if (!clientObject) return rest
  return { ...rest, client: registerRedis(clientObject, prefer) }
}

// Where a client object connects, `host:port/db`, when it says: ioredis (`options`), node_redis
// 3 (`address`, `selected_db`) or 4 (`options.url` / `options.socket`, `options.database`).
function clientAddress(c) {
  try {
    const o = c.options || {}
    if (typeof o.path === 'string') return `${o.path}/${o.db || 0}`
    if (typeof o.host === 'string' && o.port) return `${o.host.toLowerCase()}:${o.port}/${o.db || 0}`
    if (typeof c.address === 'string') return `${c.address.toLowerCase()}/${c.selected_db || 0}`
    if (typeof o.url === 'string') return address(parseRedisUrl(o.url, 'url'), undefined, undefined, o.database)
    if (o.socket && typeof o.socket.host === 'string') {
      return `${o.socket.host.toLowerCase()}:${o.socket.port || 6379}/${o.database || 0}`
    }
  } catch {}
  return undefined // unknown: only the same object twice is caught
}

/**
 * Redlock: distinct masters (the core wants at least 2; 3 or 5 tolerate 1 or 2 failures), each
 * a URL, single-server options or a client object, plus the quorum settings.
 */
function redlockOptions(o) {
  if (!Array.isArray(o.redlock)) throw invalid('options.redlock must be an array of master URLs or options')
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
    const at = opts.clientObject ? clientAddress(opts.clientObject) || opts.clientObject : opts.address
    if (seen.has(at)) {
      const shown = typeof at === 'string' ? at : 'client object'
      throw invalid(`${what}: the same master (${shown}) is already options.redlock[${seen.get(at)}]`)
    }
    seen.set(at, i)
    return opts
  })
  const { driftFactor, clockDriftMs, requestTimeout, keyPrefix, restartQuarantine } = o
  // A restarted master stays out of the quorum this long; `false` (sent as 0) turns that off.
  if (typeof restartQuarantine === 'number' && !(restartQuarantine >= 1)) {
    throw invalid(`options.restartQuarantine must be false or at least 1 ms (got ${show(restartQuarantine)})`)
  }
  const restartQuarantineMs = restartQuarantine === false ? 0 : restartQuarantine
  return { masters, driftFactor, clockDriftMs, requestTimeout, keyPrefix, restartQuarantineMs }
}

module.exports = { parseRedisUrl, redisOptions, nativeRedis, redlockOptions }
