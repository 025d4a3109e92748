'use strict'
// DynamoDB client options: their shapes. Names, the lease and heartbeat ranges and their
// relation are Rust's. Messages never repeat credentials.

const { dynamoSender, dynamoStyle } = require('../transport.js')
const { registerTransport } = require('../native.js')
const { show, invalid, isPlainObject, checkKeys, shape } = require('./shape.js')

const checkDynamo = shape({
  table: 'string',
  region: 'string',
  endpoint: 'string',
  credentials: 'any',
  partitionKey: 'string',
  sortKey: 'any',
  ownerName: 'string',
  leaseDuration: 'number',
  heartbeatPeriod: 'number',
  ttlAttribute: 'string',
  requestTimeout: 'number',
  client: 'any',
})

/**
 * The native options of `options.dynamodb` (a caller's client object not registered yet: see
 * `nativeDynamo`) and the owner name its locks default to.
 */
function dynamoOptions(d) {
  checkDynamo(d, 'options.dynamodb')
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
  if (d.ownerName === '') throw invalid('options.dynamodb.ownerName must be a non-empty string')
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
  const native = {
    table: d.table,
    region: d.region,
    endpoint: d.endpoint,
    ...creds,
    partitionKey: d.partitionKey,
    ...sortKey,
    ttlAttribute: d.ttlAttribute,
    requestTimeout: d.requestTimeout,
    leaseDuration: d.leaseDuration,
    heartbeatPeriod: d.heartbeatPeriod,
    clientObject: d.client,
  }
  return { native, ownerName: d.ownerName }
}

/** The options for the binding: a caller's client object becomes a registered send function. */
function nativeDynamo({ clientObject, ...rest }) {
  return clientObject ? { ...rest, client: registerTransport(dynamoSender(clientObject)) } : rest
}

module.exports = { dynamoOptions, nativeDynamo }
