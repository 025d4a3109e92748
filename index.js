'use strict'
// ferrolock's public face: the exports, createClient and the main export's dist-lock factory.
// The lock logic (waiting, retries, heartbeats, lost detection, fences) and every range check
// live in Rust; lib/ holds the JS concepts (option shapes, callbacks, Lock, Client) that index.js
// and compat/ share.

const {
  LockError,
  LockNotAcquiredError,
  LockLostError,
  InvalidArgumentError,
  BackendUnavailableError,
  ClientClosedError,
  AbortedError,
  TableNotFoundError,
} = require('./lib/errors.js')
const { Client, openClient } = require('./lib/client.js')
const { Lock } = require('./lib/lock.js')
const { invalid, isPlainObject, show } = require('./lib/options/shape.js')

/**
 * Creates a lock client. No options (or { memory: true }): the in-process memory backend.
 * { redis: 'redis://host:port' | { host, port, password, db, ... } }: one Redis server;
 * { redis: { cluster: [urls] } }: a Redis Cluster; { redlock: [urls] }: Redlock over masters;
 * { dynamodb: { table, region, endpoint, ... } }: one DynamoDB table.
 * Instead of URLs or options, a Redis or DynamoDB client object of your own (ioredis Redis or
 * Cluster, node_redis, aws-sdk): ferrolock sends every command through its methods.
 */
function createClient(options) {
  // A string first: a redis:// or rediss:// URL (a DynamoDB table name cannot hold ':' or '/'),
  // then client options without a backend; any other string is dynamo-lock's
  // createClient(lockTableName, params) (the drop-in).
  if (typeof options === 'string' && /^rediss?:\/\//i.test(options)) {
    const more = arguments[1] === undefined ? {} : arguments[1]
    if (!isPlainObject(more)) throw invalid(`options must be an object (got ${show(more)})`)
    if (more.redis !== undefined) throw invalid('options.redis: the Redis URL is the first argument already')
    return openClient({ ...more, redis: options })
  }
  if (typeof options === 'string') return require('./compat/dynamo-lock.js').createClient(...arguments)
  return openClient(options)
}

/**
 * The main export is also dist-lock's factory, `require('ferrolock')(redisClient, options)`, so
 * `npm install dist-lock@npm:ferrolock` runs dist-lock code unchanged (see compat/dist-lock.js).
 */
function ferrolock(redisClient, options) {
  return require('./compat/dist-lock.js')(redisClient, options)
}

// Named exports as plain assignments, so Node's ESM import of this file sees each name.
module.exports = ferrolock
module.exports.createClient = createClient
module.exports.Client = Client
module.exports.Lock = Lock
module.exports.LockError = LockError
module.exports.LockNotAcquiredError = LockNotAcquiredError
module.exports.LockLostError = LockLostError
module.exports.InvalidArgumentError = InvalidArgumentError
module.exports.BackendUnavailableError = BackendUnavailableError
module.exports.ClientClosedError = ClientClosedError
module.exports.AbortedError = AbortedError
module.exports.TableNotFoundError = TableNotFoundError
