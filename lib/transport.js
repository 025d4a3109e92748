'use strict'
// The transport seam, JS side: the Rust stores send their commands through a caller's own
// client object. Each command looks the method up on the object at call time, so wrappers a
// caller installs later (tracing, failure injection in tests) see every command.

// Errors the caller's client gave, kept so that the error surfacing from Rust can carry the
// original object as its `cause` (Rust sees only the message and this number).
// An error surfaces (if ever) within a command's timeout; older ones are dropped.
const MAX_KEPT = 1000
const KEEP_MS = 15_000
const kept = new Map() // id -> { err, at }
let nextError = 0

function keep(err) {
  const id = ++nextError
  const now = Date.now()
  for (const [old, { at }] of kept) {
    if (now - at <= KEEP_MS && kept.size < MAX_KEPT) break
    kept.delete(old) // oldest first
  }
  kept.set(id, { err, at: now })
  return id
}

// Errors the stores treat as answers, never surfaced: not kept.
const ANSWERS = /^NOSCRIPT|ConditionalCheckFailed/

const MARK = /\s*\(js#(\d+)\)/

/** The caller's original error named in `text` (and forgets it), or undefined. */
function takeKept(text) {
  const m = typeof text === 'string' ? MARK.exec(text) : null
  if (!m) return undefined
  const entry = kept.get(Number(m[1]))
  kept.delete(Number(m[1]))
  return entry && entry.err
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
  const method = order.find((m) => typeof obj[m] === 'function') || null
  // node_redis 4 in legacy mode: its own sendCommand takes a callback; `v4` has the promise one.
  if (method === 'sendCommand' && legacyV4(obj)) return 'v4.sendCommand'
  return method
}

function legacyV4(obj) {
  try {
    return obj.v4 !== null && typeof obj.v4 === 'object' && typeof obj.v4.sendCommand === 'function'
  } catch {
    return false // a getter that throws outside legacy mode
  }
}

const isRedisClient = (obj) => redisMethod(obj) !== null

/** Whether the object is an ioredis Cluster (commands are routed by key). */
const isRedisCluster = (obj) => obj.isCluster === true

// One command through `method`, as a Promise of the reply.
function sendOne(obj, method, args) {
  const [name, ...rest] = args
  if (method === 'sendCommand' || method === 'v4.sendCommand') {
    const out = method === 'sendCommand' ? obj.sendCommand(args) : obj.v4.sendCommand(args)
    if (!out || typeof out.then !== 'function') throw new TypeError(`${method} did not return a promise`)
    return out
  }
  return new Promise((resolve, reject) => {
    let done = false
    const cb = (err, reply) => {
      if (done) return
      done = true
      if (err) reject(err)
      else resolve(reply)
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
        return JSON.stringify({ err: ANSWERS.test(text) ? text : `${text} (js#${keep(err)})` })
      },
    )
  }
}

// ---- DynamoDB ---------------------------------------------------------------------------------

const lowerFirst = (s) => s[0].toLowerCase() + s.slice(1)

/**
 * How a DynamoDB client object is called: 'methods' (aws-sdk v2 `AWS.DynamoDB`, or v3's
 * aggregated `DynamoDB`: `getItem(params, cb)`), 'send' (v3's bare `DynamoDBClient`), or null.
 */
function dynamoStyle(obj) {
  if (obj === null || typeof obj !== 'object') return null
  if (typeof obj.getItem === 'function' && typeof obj.updateItem === 'function') return 'methods'
  if (typeof obj.send === 'function') return 'send'
  return null
}

// The v3 command classes, for a bare DynamoDBClient: from the @aws-sdk/client-dynamodb that made
// the client (found among the loaded modules), else the application's own; never bundled here.
const v3Commands = new WeakMap()
function commandClass(obj, operation) {
  let mod = v3Commands.get(obj.constructor)
  if (!mod) {
    mod = Object.values(require.cache).find((m) => m && m.exports && m.exports.DynamoDBClient === obj.constructor)
    mod = mod && mod.exports
    if (!mod) {
      const { createRequire } = require('node:module')
      const path = require('node:path')
      for (const base of [require.main && require.main.filename, path.join(process.cwd(), 'index.js')]) {
        try {
          if (base) mod = createRequire(base)('@aws-sdk/client-dynamodb')
          if (mod) break
        } catch {}
      }
    }
    if (!mod) throw new TypeError('a bare DynamoDBClient needs @aws-sdk/client-dynamodb installed in the application')
    v3Commands.set(obj.constructor, mod)
  }
  return mod[`${operation}Command`]
}

// Wire JSON (binary as base64) to SDK params (binary as Buffer), in place.
function fromWire(value) {
  if (Array.isArray(value)) return value.map(fromWire)
  if (value === null || typeof value !== 'object') return value
  const keys = Object.keys(value)
  if (keys.length === 1 && keys[0] === 'B' && typeof value.B === 'string') return { B: Buffer.from(value.B, 'base64') }
  if (
    keys.length === 1 &&
    keys[0] === 'BS' &&
    Array.isArray(value.BS) &&
    value.BS.every((b) => typeof b === 'string')
  ) {
    return { BS: value.BS.map((b) => Buffer.from(b, 'base64')) }
  }
  const out = {}
  for (const k of keys) out[k] = fromWire(value[k])
  return out
}

// SDK output (binary as Buffer / Uint8Array) to wire JSON, without v3's $metadata.
function toWire(value) {
  if (value instanceof Uint8Array)
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')
  if (Array.isArray(value)) return value.map(toWire)
  if (value instanceof Date) return value.getTime() / 1000
  if (value === null || typeof value !== 'object') return value
  const out = {}
  for (const k of Object.keys(value)) if (k !== '$metadata') out[k] = toWire(value[k])
  return out
}

function dynamoCall(obj, style, operation, params) {
  if (style === 'send') return obj.send(new (commandClass(obj, operation))(params))
  // v3's aggregated DynamoDB: its methods return a promise when given no callback.
  if (typeof obj.send === 'function') return obj[lowerFirst(operation)](params)
  return new Promise((resolve, reject) => {
    let done = false
    const cb = (err, data) => {
      if (done) return
      done = true
      if (err) reject(err)
      else resolve(data)
    }
    // aws-sdk v2 (or a look-alike): the callback sends the request. A wrapper may answer with
    // a promise instead; one that fulfils with undefined carries no answer.
    const out = obj[lowerFirst(operation)](params, cb)
    if (out && typeof out.then === 'function') out.then((d) => d !== undefined && cb(null, d), cb)
  })
}

/** send([operation, body]) for the native DynamoDB store: the HTTP answer DynamoDB would give. */
function dynamoSender(obj) {
  const style = dynamoStyle(obj)
  return ([operation, body]) => {
    let pending
    try {
      pending = Promise.resolve(dynamoCall(obj, style, operation, fromWire(JSON.parse(body))))
    } catch (err) {
      pending = Promise.reject(err)
    }
    return pending.then(
      (data) => JSON.stringify({ ok: { status: 200, body: JSON.stringify(toWire(data || {})) } }),
      (err) => {
        const code = err && (err.code || err.name)
        const status = err && ((err.$metadata && err.$metadata.httpStatusCode) || err.statusCode)
        const text = err && typeof err.message === 'string' ? err.message : String(err)
        const message = ANSWERS.test(String(code)) ? text : `${text} (js#${keep(err)})`
        // A service error goes back as DynamoDB sends it; anything else failed to send.
        if (typeof code === 'string' && /Exception$|Error$|^AccessDenied/.test(code) && status) {
          const answer = { __type: code, message }
          if (err.Item) answer.Item = toWire(err.Item)
          return JSON.stringify({ ok: { status, body: JSON.stringify(answer) } })
        }
        return JSON.stringify({ err: message })
      },
    )
  }
}

module.exports = {
  fromWire,
  toWire,
  dynamoSender,
  dynamoStyle,
  redisSender,
  redisMethod,
  isRedisClient,
  isRedisCluster,
  takeKept,
  unmark,
}
