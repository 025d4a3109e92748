'use strict'
// The DynamoDB client the dynamo-lock drop-in builds when the caller gives it no `db`: the
// callback methods of aws-sdk v2's AWS.DynamoDB that dynamo-lock uses, sent by ferrolock's
// native AWS SDK (no aws-sdk package needed). Settings come from `awsConfig` (aws-sdk v2 keys),
// else from the standard AWS sources: AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL,
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_REGION, the shared config
// and credentials files, and instance metadata. Only the requests dynamo-lock makes pass
// (src/dynamo_lock_db.rs): GetItem of a key, PutItem under attribute_not_exists(name) or
// name = :value, CreateTable / DeleteTable / DescribeTable of a table with one string hash key.

const { NativeClient } = require('./native.js')
const ops = require('./ops.js')
const { fromWire, toWire } = require('./transport.js')

const OPERATIONS = ['getItem', 'putItem', 'createTable', 'deleteTable', 'describeTable']

// aws-sdk v2 keys to native options; a value that is not a non-empty string is ignored.
function nativeOptions(awsConfig) {
  const c = awsConfig !== null && typeof awsConfig === 'object' ? awsConfig : {}
  const text = (v) => (typeof v === 'string' && v !== '' ? v : undefined)
  const creds = c.credentials !== null && typeof c.credentials === 'object' ? c.credentials : c
  let endpoint = c.endpoint
  if (endpoint !== null && typeof endpoint === 'object') endpoint = endpoint.href // an AWS.Endpoint
  const options = { table: 'dynamo-lock', region: text(c.region), endpoint: text(endpoint) }
  const accessKeyId = text(creds.accessKeyId)
  const secretAccessKey = text(creds.secretAccessKey)
  if (accessKeyId && secretAccessKey) {
    Object.assign(options, { accessKeyId, secretAccessKey, sessionToken: text(creds.sessionToken) })
  }
  return options
}

/** A db object with aws-sdk v2's callback methods, `(params, callback)`. */
function createDb(awsConfig) {
  let native
  const db = {}
  for (const method of OPERATIONS) {
    const operation = method[0].toUpperCase() + method.slice(1)
    db[method] = (params, callback) => {
      const done = typeof callback === 'function' ? callback : () => {}
      let sent
      try {
        // Made on first use, so a bad endpoint is an error of that call, not of createClient.
        native = native || ops.promised(NativeClient.dynamodb(ops.queue(), nativeOptions(awsConfig)))
        sent = native.raw(operation, JSON.stringify(toWire(params)))
      } catch (err) {
        sent = Promise.reject(err)
      }
      sent.then(
        (reply) => {
          const { ok, err } = JSON.parse(reply)
          if (err) done(Object.assign(new Error(err.message), { code: err.code, name: err.code }))
          else done(null, fromWire(ok))
        },
        (err) => done(Object.assign(new Error(String(err && err.message)), { code: 'ConfigError' })),
      )
    }
  }
  return db
}

module.exports = { createDb }
