'use strict'
// The shape of acquire options. Their ranges, defaults (the client's own: DynamoDB's lease and
// heartbeat, Redlock's retries) and relations are Rust's (src/options.rs).

const { show, invalid, isPlainObject, shape } = require('./shape.js')

const DYNAMO_ONLY = ['replaceData', 'deleteOnRelease', 'additionalAttributes', 'additionalTimeToWait']

const checkAcquire = shape({
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
})

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

/**
 * Checks the shape of the acquire options `o` (undefined: none) for a client with
 * `capabilities`, and returns them as the binding reads them: the same object, unless a value
 * must cross as text (additionalAttributes, as JSON).
 */
function acquireOptions(o, capabilities) {
  if (o === undefined) return undefined
  checkAcquire(o, 'options')
  if (typeof o.owner === 'string' && !o.owner.isWellFormed()) {
    throw invalid('options.owner must be well-formed Unicode (it holds a lone surrogate)')
  }
  if (!capabilities.dynamoOptions) {
    const key = DYNAMO_ONLY.find((k) => o[k] !== undefined)
    if (key) throw invalid(`options.${key} is only supported by the dynamodb backend`)
  }
  checkData(o.data, 'options.data', capabilities)
  if (o.additionalAttributes === undefined) return o
  if (!isJsonValue(o.additionalAttributes))
    throw invalid('options.additionalAttributes must be a plain object of JSON values')
  return { ...o, additionalAttributes: JSON.stringify(o.additionalAttributes) }
}

module.exports = { acquireOptions, checkData }
