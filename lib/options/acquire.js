'use strict'
// The shape of acquire options. Their ranges, defaults (the client's own: DynamoDB's lease and
// heartbeat, Redlock's retries) and relations are Rust's (src/options.rs).

const { show, invalid, isPlainObject, shape } = require('./shape.js')

const DYNAMO_ONLY = ['replaceData', 'deleteOnRelease', 'additionalAttributes', 'additionalTimeToWait']

// Reads acquire option `key` of `o` (a key of the spec below) by its name.
function readOption(o, key) {
  switch (key) {
    case 'ttl':
      return o.ttl
    case 'wait':
      return o.wait
    case 'retryDelay':
      return o.retryDelay
    case 'retryJitter':
      return o.retryJitter
    case 'maxRetries':
      return o.maxRetries
    case 'autoExtend':
      return o.autoExtend
    case 'refreshInterval':
      return o.refreshInterval
    case 'owner':
      return o.owner
    case 'data':
      return o.data
    case 'signal':
      return o.signal
    case 'safeTime':
      return o.safeTime
  }
  return o[key]
}

const checkAcquire = shape(
  {
    ttl: 'number',
    wait: 'wait',
    retryDelay: 'number',
    retryJitter: 'number',
    maxRetries: 'number',
    autoExtend: 'boolean',
    refreshInterval: 'number',
    owner: 'string',
    data: 'data',
    signal: 'signal',
    safeTime: 'number',
    // DynamoDB only:
    replaceData: 'boolean',
    deleteOnRelease: 'boolean',
    additionalAttributes: 'object',
    additionalTimeToWait: 'number',
  },
  readOption,
)

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

/**
 * Throws unless `data` is lock data this client can store: a string, or a Buffer where the
 * store keeps bytes (`capabilities.binaryData`).
 */
function checkData(data, what, capabilities) {
  if (data === undefined || typeof data === 'string') return
  if (Buffer.isBuffer(data) && capabilities.binaryData) return
  const allowed = capabilities.binaryData ? 'a string or a Buffer' : 'a string'
  throw invalid(`${what} must be ${allowed} (got ${Buffer.isBuffer(data) ? 'a Buffer' : show(data)})`)
}

// Acquire options also go packed into one Float64Array, for the binding's immediateAcquire
// (memory, file): it reads them without looking up a property, and writes the lock it took
// into the same array (no object is built for it). The layout is src/options.rs `packed`: slot 0 holds a bit per option given
// (bit n: the option in slot n) and the two flags below; each value sits in its own slot,
// booleans as 0 or 1. Back from the binding: the lock's handle, its fence (a u64: read through
// `packedFence`, a BigUint64Array over the same memory) and whether it reports events.
const SLOTS = 12
const HANDLE = 9
const FENCE = 10
const EVENTS = 11
const WAIT_IS_BOOL = 1 << 12
const TRY_ONLY = 1 << 13
const packed = new Float64Array(SLOTS)
const packedFence = new BigUint64Array(packed.buffer)
// What crosses beside the array: the options' owner and data (undefined when not given).
const packedArgs = { owner: undefined, data: undefined }
let flags = 0
// The options as read, a plain object: what the waiting path hands the binding, so no getter of
// the caller's object is read twice.
let snapshot = null
// Counts acquireOptions calls: a getter of the options that acquires a lock itself packs its own
// options over these; the outer call then sees the count moved.
let generation = 0

function put(slot, value) {
  flags |= 1 << slot
  packed[slot] = value
}

// Packs one option (called by the shape check for each key it passed).
function pack(key, value) {
  if (snapshot !== null) snapshot[key] = value
  switch (key) {
    case 'ttl':
      return put(1, value)
    case 'wait':
      if (typeof value === 'boolean') flags |= WAIT_IS_BOOL
      return put(2, +value)
    case 'retryDelay':
      return put(3, value)
    case 'retryJitter':
      return put(4, value)
    case 'maxRetries':
      return put(5, value)
    case 'autoExtend':
      return put(6, +value)
    case 'refreshInterval':
      return put(7, value)
    case 'safeTime':
      return put(8, value)
    case 'owner':
      packedArgs.owner = value
      return
    case 'data':
      packedArgs.data = value
      return
    // The DynamoDB-only options cross in the snapshot only.
  }
}

/**
 * Checks the shape of the acquire options `o` (undefined: none) for a client with
 * `capabilities`, and returns them as the binding reads them: the same object, unless a value
 * must cross as text (additionalAttributes, as JSON). Also packs them (with `tryOnly`) into
 * `packed` and `packedArgs`, for immediateAcquire where the client takes a free lock at once. Each
 * option is read once: the checks below look at the values the shape check read.
 */
function acquireOptions(o, capabilities, tryOnly = false) {
  const mine = ++generation
  flags = tryOnly ? TRY_ONLY : 0
  packedArgs.owner = undefined
  packedArgs.data = undefined
  if (o === undefined) {
    packed[0] = flags
    return undefined
  }
  const read = (snapshot = {})
  checkAcquire(o, 'options', pack)
  snapshot = null
  if (mine !== generation) {
    // A getter of these options acquired a lock: the packed options are that call's now.
    throw invalid('options must not acquire a lock while they are read (a getter of them did)')
  }
  packed[0] = flags
  if (read.owner !== undefined && !read.owner.isWellFormed()) {
    throw invalid('options.owner must be well-formed Unicode (it holds a lone surrogate)')
  }
  const given = DYNAMO_ONLY.findIndex((key) => read[key] !== undefined)
  if (given !== -1 && !capabilities.dynamoOptions) {
    throw invalid(`options.${DYNAMO_ONLY[given]} is only supported by the dynamodb backend`)
  }
  checkData(read.data, 'options.data', capabilities)
  if (read.additionalAttributes === undefined) return read
  if (!isJsonValue(read.additionalAttributes))
    throw invalid('options.additionalAttributes must be a plain object of JSON values')
  read.additionalAttributes = JSON.stringify(read.additionalAttributes)
  return read
}

module.exports = {
  acquireOptions,
  checkData,
  packed,
  packedArgs,
  packedFence,
  HANDLE,
  FENCE,
  EVENTS,
}
