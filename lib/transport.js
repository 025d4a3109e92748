'use strict'
// The transport seam, JS side: the Rust stores send their commands through a caller's own
// client object. Each command looks the method up on the object at call time, so wrappers a
// caller installs later (tracing, failure injection in tests) see every command.

const { rememberDynamoSecrets, rememberRedisSecrets, safeCause } = require('./secrets.js')

// Errors the stores treat as answers (a script cache miss, a failed condition): a DynamoDB
// answer of this kind is sent back without a cause.
const ANSWERS = /^NOSCRIPT|ConditionalCheckFailed/

/**
 * The `cause` for the caller's own error object `original` that the binding handed back with a
 * failure (or undefined): the object itself, or its stand-in when a text of it holds a secret
 * (see `safeCause`).
 */
const clientCause = (original) => (original === undefined || original === null ? undefined : safeCause(original))

/**
 * Which command method a Redis client object has: 'call' (ioredis, Redis or Cluster),
 * 'send_command' (node_redis 0.x to 3, callback API), 'sendCommand' (node_redis 4+, an array of
 * strings), or null. `prefer` puts one first (dist-lock used send_command).
 */
function redisMethod(obj, prefer) {
  if (obj === null || (typeof obj !== 'object' && typeof obj !== 'function')) return null
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

/**
 * Starts `invoke(cb)` and settles once, on the first of its Node-style callback and the
 * promise it may return; with `skipUndefined`, a promise fulfilling with undefined is no answer
 * (a wrapper that answers through the callback).
 */
function viaCallback(invoke, skipUndefined) {
  return new Promise((resolve, reject) => {
    let done = false
    const cb = (err, value) => {
      if (done) return
      done = true
      if (err) reject(err)
      else resolve(value)
    }
    const out = invoke(cb)
    if (out && typeof out.then === 'function') {
      out.then((value) => (skipUndefined && value === undefined ? undefined : cb(null, value)), cb)
    }
  })
}

// One command through `method`, as a Promise of the reply.
function sendOne(obj, method, args) {
  const [name, ...rest] = args
  if (method === 'sendCommand' || method === 'v4.sendCommand') {
    const out = method === 'sendCommand' ? obj.sendCommand(args) : obj.v4.sendCommand(args)
    if (!out || typeof out.then !== 'function') throw new TypeError(`${method} did not return a promise`)
    return out
  }
  // ioredis answers the callback and a promise; node_redis 3 only the callback.
  return viaCallback((cb) => obj[method](name, rest, cb), false)
}

// A reply as Rust reads it: null, integers, strings, Buffers and arrays of those pass as they
// are (read as napi values, no JSON); undefined and an error inside an array read as null.
function plain(reply) {
  if (Array.isArray(reply)) return reply.map(plain)
  if (reply === undefined || reply instanceof Error) return null
  return reply
}

/**
 * send(args) for the native store: resolves the reply, or rejects with the client's own error
 * (the binding keeps a reference to it for the failure's `cause`; Rust reads its message).
 */
function redisSender(obj, prefer) {
  const method = redisMethod(obj, prefer)
  rememberRedisSecrets(obj)
  return (args) => {
    let pending
    try {
      pending = Promise.resolve(sendOne(obj, method, args))
    } catch (err) {
      pending = Promise.reject(err)
    }
    return pending.then(plain)
  }
}

// ---- Release notifications through the caller's client ---------------------------------------

// How long closing the subscriber waits for the server's answer to QUIT before cutting it, and
// how long a subscription may take before the waiters poll instead (the native side waits as
// long: SUBSCRIBE_TIMEOUT in crates/core/src/store/redis/pubsub.rs).
const QUIT_WAIT_MS = 1000
const SUBSCRIBE_WAIT_MS = 1000
// After a subscriber failed, how long the waiters poll before a new one is tried.
const RETRY_SUBSCRIBER_MS = 2000

// `promise`, or a rejection once `ms` passed (the timer never keeps the process alive).
function bounded(promise, ms, what) {
  let timer
  const cut = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms)
    timer.unref()
  })
  return Promise.race([promise, cut]).finally(() => clearTimeout(timer))
}

/**
 * The subscriber of a Redis client object: a `duplicate()` of it, made on the first wait, whose
 * messages wake the waiters through `push(channel, payload)` (`push(null)` after a reconnect:
 * messages may have been missed). Returns `control([op, channel])` for the native store, which
 * resolves whether `op` (subscribe, unsubscribe, close) worked, or null when the object cannot
 * subscribe (no `duplicate`, or a Cluster: its releases publish on sharded channels); then the
 * waiters poll.
 */
function redisSubscriber(obj, method, push) {
  if (isRedisCluster(obj) || typeof obj.duplicate !== 'function') return null
  // node_redis 4 (also in legacy mode): a promise client, connected explicitly.
  const v4 = method === 'sendCommand' || method === 'v4.sendCommand'
  // The duplicate once asked for: { dup, ready } (`ready`: a promise of it, connected and
  // subscribed to every channel in `wanted`), or null.
  let sub = null
  let closed = false
  // Channels the store was told are subscribed (and has not unsubscribed): a duplicate made
  // after one failed subscribes to all of them again, so none is left without its pushes.
  const wanted = new Set()
  // After a duplicate failed, none is made again before this time: waiters poll meanwhile (a
  // server refusing SUBSCRIBE, e.g. to an ACL user without channels, would otherwise cost a
  // connection per wait).
  let retryAt = 0

  const listen = (ch, payload) => push(String(ch), String(payload))
  const subscribeOn = (dup, channel) =>
    v4
      ? dup.subscribe(channel, (payload, ch) => listen(ch, payload))
      : viaCallback((cb) => dup.subscribe(channel, cb), false)

  function open() {
    const dup = v4 ? obj.duplicate({ legacyMode: false }) : obj.duplicate()
    // Its failures show in the waiters' own commands; unhandled, node_redis would throw them.
    dup.on('error', () => {})
    let readies = 0
    dup.on('ready', () => {
      if (readies++ > 0) push(null) // reconnected
    })
    let connected
    if (v4) {
      // Never keeps the process alive, not even while it connects: a pending acquire does
      // (index.js). node_redis 4 unrefs the socket it makes when told before connect().
      if (typeof dup.unref === 'function') dup.unref()
      connected = dup.connect().then(() => dup)
    } else {
      dup.on('message', listen)
      // ioredis has no unref(): its socket is unref'd on each (re)connect. node_redis 3 has one.
      if (typeof dup.unref === 'function') dup.unref()
      else dup.on('connect', () => dup.stream && typeof dup.stream.unref === 'function' && dup.stream.unref())
      connected = Promise.resolve(dup)
    }
    // A duplicate made after an earlier one failed takes over that one's channels; messages
    // sent in between may be lost, so the waiters look again.
    const again = [...wanted]
    const ready = connected.then(async () => {
      for (const channel of again) await subscribeOn(dup, channel)
      if (again.length > 0) push(null)
      return dup
    })
    ready.catch(() => {}) // awaited (bounded) by subscribe; a failure is handled there
    return { dup, ready }
  }

  // Closes `dup`, whatever state it is in (connected, still connecting, or never connected):
  // QUIT when it answers within QUIT_WAIT_MS, then the socket is closed in any case.
  async function quit(dup) {
    let timer
    const cut = new Promise((resolve) => {
      timer = setTimeout(resolve, QUIT_WAIT_MS)
      timer.unref()
    })
    try {
      const quitting = v4 ? dup.quit() : viaCallback((cb) => dup.quit(cb), false)
      Promise.resolve(quitting).catch(() => {})
      await Promise.race([quitting, cut])
    } catch {
      // not connected, or gone already
    } finally {
      clearTimeout(timer)
    }
    try {
      // node_redis 4 and ioredis: stop reconnecting and close the socket now. node_redis 3: end.
      if (typeof dup.disconnect === 'function') await dup.disconnect()
      else if (typeof dup.end === 'function') dup.end(false)
    } catch {
      // closed already
    }
  }

  // The duplicate in use failed: closed, and none made again for a while.
  function drop() {
    if (!sub) return
    const { dup } = sub
    sub = null
    retryAt = Date.now() + RETRY_SUBSCRIBER_MS
    quit(dup)
  }

  const ops = {
    async subscribe(channel) {
      if (closed) return false
      if (!sub) {
        if (Date.now() < retryAt) return false
        sub = open()
      }
      const mine = sub
      try {
        // A duplicate that cannot connect (its client queues the command and retries) must not
        // hold up the subscriptions after it: cut, closed, made again on a later wait.
        const dup = await bounded(mine.ready, SUBSCRIBE_WAIT_MS, 'connecting the subscriber')
        if (closed) return false
        if (!wanted.has(channel)) {
          await bounded(subscribeOn(dup, channel), SUBSCRIBE_WAIT_MS, 'SUBSCRIBE')
          wanted.add(channel)
        }
        return true
      } catch (err) {
        if (sub === mine && !closed) drop()
        throw err
      }
    },
    async unsubscribe(channel) {
      wanted.delete(channel)
      if (closed || !sub) return true
      const dup = await bounded(sub.ready, SUBSCRIBE_WAIT_MS, 'connecting the subscriber')
      if (v4) await dup.unsubscribe(channel)
      else await viaCallback((cb) => dup.unsubscribe(channel, cb), false)
      return true
    },
    async close() {
      closed = true
      wanted.clear()
      if (!sub) return true
      const { dup } = sub
      sub = null
      await quit(dup)
      return true
    },
  }
  return ([op, channel]) =>
    Promise.resolve()
      .then(() => ops[op](channel))
      // A subscriber that cannot open or subscribe: the waiters poll (tried again later).
      .catch(() => false)
}

/**
 * Registers a Redis client object with the native side: its send function and, when it can
 * subscribe, its subscriber. Returns the number the store options name it by.
 */
function registerRedis(obj, prefer) {
  const { registerTransport, transportPush } = require('./native.js')
  let id = 0
  const control = redisSubscriber(obj, redisMethod(obj, prefer), (channel, payload) =>
    transportPush(id, channel, payload),
  )
  id = registerTransport(redisSender(obj, prefer), control)
  return id
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

// The v3 SDK (@aws-sdk/client-dynamodb) a bare DynamoDBClient needs for its command classes,
// never bundled with ferrolock: the copy the client was built from (found among the loaded
// modules), else the copy the application resolves; null if there is none.
const sdkByConstructor = new WeakMap()
const isSdk = (exp) =>
  exp != null && typeof exp.DynamoDBClient === 'function' && typeof exp.GetItemCommand === 'function'

function v3Sdk(db) {
  const ctor = typeof db.constructor === 'function' ? db.constructor : undefined
  let sdk = ctor && sdkByConstructor.get(ctor)
  if (sdk) return sdk
  for (const mod of Object.values(require.cache)) {
    const exp = mod && mod.exports
    if (isSdk(exp) && db instanceof exp.DynamoDBClient) {
      sdk = exp
      break
    }
  }
  if (!sdk) {
    const { createRequire } = require('node:module')
    const path = require('node:path')
    for (const base of [path.join(process.cwd(), 'index.js'), require.main && require.main.filename, __filename]) {
      let exp
      try {
        exp = base && createRequire(base)('@aws-sdk/client-dynamodb')
      } catch {
        continue
      }
      if (!isSdk(exp)) continue
      if (db instanceof exp.DynamoDBClient) {
        sdk = exp
        break
      }
      sdk = sdk || exp // a client of another copy (or a stand-in with send): any copy's commands
    }
  }
  if (sdk && ctor) sdkByConstructor.set(ctor, sdk)
  return sdk || null
}

function commandClass(obj, operation) {
  const sdk = v3Sdk(obj)
  if (!sdk) throw new TypeError('a bare DynamoDBClient needs @aws-sdk/client-dynamodb installed in the application')
  return sdk[`${operation}Command`]
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
  // aws-sdk v2 (or a look-alike): the callback sends the request. A wrapper may answer with
  // a promise instead; one that fulfils with undefined carries no answer.
  return viaCallback((cb) => obj[lowerFirst(operation)](params, cb), true)
}

/**
 * send([operation, body]) for the native DynamoDB store: the JSON of the HTTP answer DynamoDB would
 * give (`{ status, body }`), or a rejection when the request could not be sent.
 */
function dynamoSender(obj) {
  const style = dynamoStyle(obj)
  rememberDynamoSecrets(obj)
  return ([operation, body]) => {
    let pending
    try {
      pending = Promise.resolve(dynamoCall(obj, style, operation, fromWire(JSON.parse(body))))
    } catch (err) {
      pending = Promise.reject(err)
    }
    return pending.then(
      (data) => JSON.stringify({ status: 200, body: JSON.stringify(toWire(data || {})) }),
      (err) => {
        const code = err && (err.code || err.name)
        const status = err && ((err.$metadata && err.$metadata.httpStatusCode) || err.statusCode)
        const message = err && typeof err.message === 'string' ? err.message : String(err)
        // A service error goes back as DynamoDB sends it, with the error itself as the
        // failure's cause (an answer, such as a failed condition, without); anything else
        // failed to send: the rejection is the error.
        if (typeof code === 'string' && /Exception$|Error$|^AccessDenied/.test(code) && status) {
          const answer = { __type: code, message }
          if (err.Item) answer.Item = toWire(err.Item)
          const text = JSON.stringify({ status, body: JSON.stringify(answer) })
          return ANSWERS.test(code) ? text : { answer: text, original: err }
        }
        return Promise.reject(err)
      },
    )
  }
}

module.exports = {
  fromWire,
  toWire,
  dynamoSender,
  dynamoStyle,
  v3Sdk,
  redisSender,
  registerRedis,
  redisMethod,
  isRedisClient,
  isRedisCluster,
  clientCause,
}
