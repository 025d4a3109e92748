'use strict'
// The transport seam, JS side: the Rust stores send their commands through a caller's own
// client object. Each command looks the method up on the object at call time, so wrappers a
// caller installs later (tracing, failure injection in tests) see every command.

// Errors the caller's client gave, kept so that the error surfacing from Rust can carry the
// original object as its `cause` (Rust sees only the message and this number).
const MAX_KEPT = 1000
const kept = new Map()
let nextError = 0

function keep(err) {
  const id = ++nextError
  kept.set(id, err)
  if (kept.size > MAX_KEPT) kept.delete(kept.keys().next().value)
  return id
}

const MARK = /\s*\(js#(\d+)\)/

/** The caller's original error named in `text` (and forgets it), or undefined. */
function takeKept(text) {
  const m = typeof text === 'string' ? MARK.exec(text) : null
  if (!m) return undefined
  const err = kept.get(Number(m[1]))
  kept.delete(Number(m[1]))
  return err
}

/** `text` without the marker. */
const unmark = (text) => (typeof text === 'string' ? text.replace(MARK, '') : text)

/**
 * Which command method a Redis client object has: 'call' (ioredis, Redis or Cluster),
 * 'send_command' (node_redis 0.x to 3, callback API), 'sendCommand' (node_redis 4+, an array of
 * strings), or null. `prefer` puts one first (dist-lock used send_command).
 */
function redisMethod(obj, prefer) {
  if (obj === null || typeof obj !== 'object') return null
  const order = prefer ? [prefer, 'call', 'send_command', 'sendCommand'] : ['call', 'send_command', 'sendCommand']
  return order.find((m) => typeof obj[m] === 'function') || null
}

const isRedisClient = (obj) => redisMethod(obj) !== null

/** Whether the object is an ioredis Cluster (commands are routed by key). */
const isRedisCluster = (obj) => obj.isCluster === true

// One command through `method`, as a Promise of the reply.
function sendOne(obj, method, args) {
  const [name, ...rest] = args
  if (method === 'sendCommand') return obj.sendCommand(args)
  return new Promise((resolve, reject) => {
    let done = false
    const cb = (err, reply) => {
      if (done) return
      done = true
      err ? reject(err) : resolve(reply)
    }
    // ioredis answers the callback and a promise; node_redis 3 only the callback.
    const out = obj[method](name, rest, cb)
    if (out && typeof out.then === 'function') out.then((r) => cb(null, r), cb)
  })
}

// Replies as JSON for Rust: integers, strings (Buffers as UTF-8), arrays, null.
function plain(reply) {
  if (Buffer.isBuffer(reply)) return reply.toString('utf8')
  if (Array.isArray(reply)) return reply.map(plain)
  if (reply === undefined) return null
  if (reply instanceof Error) return null
  return reply
}

/** send(args) for the native store: resolves the JSON {ok} or {err}, never rejects. */
function redisSender(obj, prefer) {
  const method = redisMethod(obj, prefer)
  return (args) => {
    let pending
    try {
      pending = Promise.resolve(sendOne(obj, method, args))
    } catch (err) {
      pending = Promise.reject(err)
    }
    return pending.then(
      (reply) => JSON.stringify({ ok: plain(reply) }),
      (err) => {
        const text = err && typeof err.message === 'string' ? err.message : String(err)
        return JSON.stringify({ err: `${text} (js#${keep(err)})` })
      },
    )
  }
}

module.exports = { redisSender, redisMethod, isRedisClient, isRedisCluster, takeKept, unmark }
