'use strict'
// Secrets in the errors of the caller's own client objects (lib/transport.js).
//
// Every text ferrolock reports has its secrets masked (crates/core/src/redact.rs): the passwords
// and keys it was given, AWS key ids, long credential-like strings, URL passwords. An error of the
// caller's client object becomes the `cause` as itself when none of its texts holds a secret;
// otherwise as a stand-in: an object of the same prototype (`instanceof`, `name` and `code` hold)
// with the same own properties, every text masked, and the caller's untouched original under
// `Symbol.for('ferrolock.original')` (not enumerable: util.inspect and loggers do not show it).
// The passwords and keys a client object was configured with are remembered for the masking.

const ORIGINAL = Symbol.for('ferrolock.original')
// How deep a stand-in follows errors nested in errors (`cause`, `originalError`).
const MAX_DEPTH = 4

const native = () => require('./native.js') // loaded when first needed
const masked = (text) => native().redactSecrets(text)

function remember(secret) {
  if (typeof secret === 'string' && secret !== '') native().rememberSecret(secret)
}

// obj[a][b]..., undefined where a step is missing or its getter throws.
function read(obj, ...path) {
  try {
    let value = obj
    for (const key of path) {
      if (value === null || value === undefined) return undefined
      value = value[key]
    }
    return value
  } catch {
    return undefined
  }
}

function urlPassword(url) {
  if (typeof url !== 'string') return undefined
  try {
    return decodeURIComponent(new URL(url).password) || undefined
  } catch {
    return undefined
  }
}

/** Remembers the passwords of a Redis client object: ioredis Redis or Cluster, node_redis 3 or 4. */
function rememberRedisSecrets(obj) {
  const options = read(obj, 'options')
  for (const o of [options, read(options, 'redisOptions'), read(obj, 'connection_options')]) {
    remember(read(o, 'password'))
    remember(read(o, 'auth_pass'))
    remember(urlPassword(read(o, 'url')))
  }
  remember(read(obj, 'auth_pass')) // node_redis 3
  const nodes = read(obj, 'startupNodes') // ioredis Cluster
  if (Array.isArray(nodes)) {
    for (const node of nodes) remember(typeof node === 'string' ? urlPassword(node) : read(node, 'password'))
  }
}

/**
 * Remembers the credentials an aws-sdk v2 object holds. (v3 keeps them behind an asynchronous
 * provider; its key ids, secret keys and session tokens are masked by their shape.)
 */
function rememberDynamoSecrets(obj) {
  const credentials = read(obj, 'config', 'credentials')
  if (credentials === null || typeof credentials !== 'object') return
  for (const key of ['secretAccessKey', 'sessionToken', 'accessKeyId']) remember(read(credentials, key))
}

const isErrorLike = (value) =>
  value !== null && typeof value === 'object' && (value instanceof Error || typeof value.message === 'string')

// The own data properties of an error, but its stack: frames are code locations (and long paths
// would read as credentials); the stack's head repeats the message.
function* ownData(err) {
  for (const key of Reflect.ownKeys(err)) {
    if (key === 'stack') continue
    const d = Object.getOwnPropertyDescriptor(err, key)
    if (d && 'value' in d) yield [key, d]
  }
}

// An object whose own texts are followed: an error, an array (`AggregateError.errors`, ioredis
// `previousErrors`) or a plain object (ioredis `command: { name, args }`), with at most
// MAX_KEYS own properties. Binary data and other classes' objects are left as they are.
const MAX_KEYS = 256
function followed(value) {
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return false
  const proto = Object.getPrototypeOf(value)
  const plain = proto === null || proto === Object.prototype || Array.isArray(value)
  return (plain || isErrorLike(value)) && Reflect.ownKeys(value).length <= MAX_KEYS
}

// Whether a text of `value` holds a secret: a string, or the own texts of an error, array or
// plain object, nested up to MAX_DEPTH.
function holdsSecret(value, depth = 0, seen = new Set()) {
  if (typeof value === 'string') return masked(value) !== value
  if (depth > MAX_DEPTH || seen.has(value) || !followed(value)) return false
  seen.add(value)
  if (typeof value.message === 'string' && masked(value.message) !== value.message) return true
  for (const [, d] of ownData(value)) if (holdsSecret(d.value, depth + 1, seen)) return true
  return false
}

function maskStack(stack) {
  const frames = stack.search(/\n\s+at /)
  return frames < 0 ? masked(stack) : masked(stack.slice(0, frames)) + stack.slice(frames)
}

// A copy of `err` (an error, array or plain object) with every text masked; the original under
// ORIGINAL.
function standIn(err, depth, copies) {
  if (copies.has(err)) return copies.get(err)
  const copy = Array.isArray(err) ? [] : Object.create(Object.getPrototypeOf(err))
  copies.set(err, copy)
  for (const [key, d] of ownData(err)) {
    if (typeof d.value === 'string') d.value = masked(d.value)
    else if (depth < MAX_DEPTH && holdsSecret(d.value)) d.value = standIn(d.value, depth + 1, copies)
    Object.defineProperty(copy, key, d)
  }
  const stack = read(err, 'stack')
  if (typeof stack === 'string') {
    Object.defineProperty(copy, 'stack', { value: maskStack(stack), writable: true, configurable: true })
  }
  Object.defineProperty(copy, ORIGINAL, { value: err })
  return copy
}

/** What the caller's error `err` is reported as: itself, or a stand-in with its secrets masked. */
function safeCause(err) {
  if (typeof err === 'string') return masked(err)
  try {
    return holdsSecret(err) ? standIn(err, 0, new Map()) : err
  } catch {
    return new Error('the client object failed (its error could not be read)')
  }
}

module.exports = { rememberDynamoSecrets, rememberRedisSecrets, safeCause }
