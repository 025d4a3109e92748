'use strict'

// `require('ferrolock/dynamo-lock')`: the main export of dynamo-lock 0.1.3, call for call
// (docs/compat/dynamo-lock.md). Errors are strings ('ERROR', 'TABLE_EXISTS', 'Lock expires on ...'),
// success is 'SUCCESS', the lock is the item {name: {S}, guid: {S}, expiresOn: {N}} in the
// caller's table. Differences from the original are the safety fixes of docs/compat/README.md:
// a GetItem error calls back 'ERROR' (the original never called back), deleteLockTable calls
// back once, bad input calls back 'ERROR' before any I/O, GetItem reads consistently, an item
// without guid is taken over with attribute_not_exists(guid), and an opt-in `clockSkewMs`
// margin delays takeovers.
//
// All I/O goes through the caller's `db` object, looked up on `this.db` at each call: aws-sdk
// v2 `AWS.DynamoDB`, any object with callback-style getItem/putItem/createTable/deleteTable,
// @aws-sdk/client-dynamodb v3 `DynamoDB` (same method names) or a bare v3 `DynamoDBClient`
// (`send(command)`). Without `db`, ferrolock's own adapter (lib/dynamodb-adapter.js) is used.

const { randomUUID } = require('node:crypto')
const { v3Sdk } = require('../lib/transport.js')

const AWS_API_VERSION = '2012-08-10'
const skewOf = new WeakMap() // LockerClient -> clockSkewMs (kept off the client's own keys)

function createClient(lockTableName, params) {
  if (typeof lockTableName === 'undefined') {
    // A string, as the original throws.
    throw 'You need to include a value for lockTableName'
  }
  // The original turned a non-object into {} and crashed on null; null is {} here.
  if (typeof params !== 'object' || params === null) params = {}
  // Defaults are written into the caller's objects, as the original did; a write that cannot
  // happen (frozen object, primitive awsConfig) is skipped the way sloppy-mode code skipped it.
  let awsConfig = params.awsConfig
  if (!awsConfig) {
    awsConfig = {}
    Reflect.set(params, 'awsConfig', awsConfig)
  }
  if (typeof awsConfig === 'object') Reflect.set(awsConfig, 'apiVersion', AWS_API_VERSION)
  return new LockerClient(lockTableName, params, awsConfig)
}

function LockerClient(lockTableName, params, awsConfig) {
  const skew = params.clockSkewMs === undefined ? 0 : params.clockSkewMs
  if (typeof skew !== 'number' || !Number.isFinite(skew) || skew < 0) {
    const err = new RangeError('clockSkewMs must be a finite number >= 0')
    err.code = 'ERR_INVALID_ARG'
    throw err
  }
  this.lockTableName = lockTableName
  // Loaded only when needed: callers passing their own db never load ferrolock's adapter.
  this.db = params.db ? params.db : require('../lib/dynamodb-adapter.js').createDb(awsConfig)
  skewOf.set(this, skew)
}

// Takes the lock `lockName` for `timeoutMillis` ms if nobody holds it or its holder's expiresOn
// has passed. Never waits or retries: callers poll.
LockerClient.prototype.getLock = function (lockName, timeoutMillis, cb) {
  const timeout = toTimeout(timeoutMillis)
  if (typeof lockName !== 'string' || lockName === '' || timeout === undefined) return cb('ERROR')
  const db = this.db
  const TableName = this.lockTableName
  const skew = skewOf.get(this) || 0
  const getParams = {
    Key: { name: { S: lockName } },
    TableName,
    AttributesToGet: ['guid', 'expiresOn'],
    ConsistentRead: true,
  }
  call(db, 'getItem', getParams, (err, data) => {
    if (err) return cb('ERROR')
    const decision = decide(lockName, timeout, TableName, skew, data && data.Item)
    if (decision.refusal) return cb(decision.refusal)
    call(db, 'putItem', decision.put, (err) => (err ? cb('ERROR') : cb(null, 'SUCCESS')))
  })
}

// dynamo-lock's read-then-put decision, given the item read (or undefined): the refusal string
// while the holder's expiresOn (plus the skew margin) has not passed, else the PutItem params
// that take the lock, conditional on the guid that was read.
function decide(lockName, timeout, TableName, skew, item) {
  const put = { Item: undefined, TableName }
  if (item && item.expiresOn) {
    const expiresOn = item.expiresOn.N
    const now = Date.now()
    // parseFloat rather than the original's parseInt: never reads '1.7e12' as 1 (expired).
    if (Number.parseFloat(expiresOn) + skew > now)
      return { refusal: 'Lock expires on ' + expiresOn + ' currently its ' + now }
  }
  if (item && item.guid && typeof item.guid.S === 'string') {
    // Take over only the lock we saw: if someone else took it meanwhile, the write fails.
    put.ExpressionAttributeValues = { ':oldguid': { S: item.guid.S } }
    put.ConditionExpression = 'guid = :oldguid'
  } else {
    // No item, or an item without a usable guid (the original crashed on the latter).
    put.ConditionExpression = 'attribute_not_exists(guid)'
  }
  put.Item = {
    name: { S: lockName },
    guid: { S: randomUUID() },
    expiresOn: { N: String(Date.now() + timeout) },
  }
  return { put }
}

// Creates the lock table; calls back when CreateTable returns, before the table is ACTIVE.
LockerClient.prototype.createLockTable = function (cb) {
  const params = {
    AttributeDefinitions: [{ AttributeName: 'name', AttributeType: 'S' }],
    KeySchema: [{ AttributeName: 'name', KeyType: 'HASH' }],
    ProvisionedThroughput: { ReadCapacityUnits: 1, WriteCapacityUnits: 1 },
    TableName: this.lockTableName,
  }
  call(this.db, 'createTable', params, (err) => {
    if (err && (err.code || err.name) === 'ResourceInUseException') return cb('TABLE_EXISTS', null)
    if (err) return cb('ERROR', null)
    cb(null, 'SUCCESS')
  })
}

// Deletes the lock table; calls back exactly once (the original called back twice on errors).
LockerClient.prototype.deleteLockTable = function (cb) {
  call(this.db, 'deleteTable', { TableName: this.lockTableName }, (err) => (err ? cb('ERROR') : cb(null, 'SUCCESS')))
}

// A timeout in ms, or undefined when invalid: a finite positive number, or a string holding
// one (the original concatenated strings: '10000' gave an expiry that never comes). The
// expiry must stay an exact integer-or-decimal number string, so Date.now() + timeout is kept
// within the safe integer range.
function toTimeout(value) {
  let n = value
  if (typeof value === 'string') n = value.trim() === '' ? NaN : Number(value)
  if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0) return undefined
  if (Date.now() + n > Number.MAX_SAFE_INTEGER) return undefined
  return n
}

// Calls `db[method](params, cb)`, or `db.send(new <Method>Command(params), cb)` for a bare v3
// DynamoDBClient, and runs `done(err, data)` once. When the method returns a thenable, the
// first of the callback and the promise wins; a promise that fulfils with `undefined` (a v3
// aggregated client given a callback, an async wrapper that calls back) carries no answer and
// the callback is awaited. A synchronous throw propagates to the caller, as in the original.
function call(db, method, params, done) {
  let settled = false
  // v3 clients call back from a promise chain that swallows exceptions (`.catch(() => {})`):
  // leave it first, so that an exception thrown by the caller's callback is not lost.
  const leave = typeof db.send === 'function'
  const once = (err, data) => {
    if (settled) return
    settled = true
    if (leave) process.nextTick(done, err, data)
    else done(err, data)
  }
  let ret
  if (typeof db[method] === 'function') ret = db[method](params, once)
  else if (typeof db.send === 'function') ret = db.send(v3Command(db, method, params), once)
  // No such method: the original's own TypeError message.
  else throw new TypeError(`${method === 'deleteTable' ? 'this.db' : 'db'}.${method} is not a function`)
  if (ret !== null && (typeof ret === 'object' || typeof ret === 'function') && typeof ret.then === 'function') {
    // Deferred so that a throwing callback surfaces as an exception, not a rejected promise.
    ret.then(
      (data) => {
        if (data !== undefined) process.nextTick(once, null, data)
      },
      (err) => process.nextTick(once, err || new Error(`${method} rejected with ${err}`)),
    )
  }
}

// Bare v3 clients need @aws-sdk/client-dynamodb's command classes, a devDependency only of
// ferrolock: lib/transport.js finds the copy the client was built from, else the application's.
const COMMANDS = {
  getItem: 'GetItemCommand',
  putItem: 'PutItemCommand',
  createTable: 'CreateTableCommand',
  deleteTable: 'DeleteTableCommand',
}

function v3Command(db, method, params) {
  const sdk = v3Sdk(db)
  if (!sdk) {
    throw new TypeError(
      "A DynamoDBClient passed as db needs '@aws-sdk/client-dynamodb' resolvable from the application " +
        '(npm install @aws-sdk/client-dynamodb), or pass a DynamoDB (aggregated) client or an aws-sdk v2 AWS.DynamoDB',
    )
  }
  return new sdk[COMMANDS[method]](params)
}

exports.createClient = createClient
