// The main export's drop-in duties: `require('ferrolock')` is also dist-lock's factory, and
// `createClient` with a string first is dynamo-lock's; with no arguments it stays ferrolock's
// memory client (the one documented difference of `dynamo-lock@npm:ferrolock`).
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { test } from 'node:test'

import ferrolockDefault, { createClient as esmCreateClient } from 'ferrolock'

const require = createRequire(import.meta.url)
const ferrolock = require('ferrolock')
const distLock = require('ferrolock/dist-lock')
const dynamoLock = require('ferrolock/dynamo-lock')

test('require("ferrolock") is a function (the dist-lock factory) carrying the ferrolock API', () => {
  assert.equal(typeof ferrolock, 'function')
  assert.equal(ferrolockDefault, ferrolock)
  assert.equal(esmCreateClient, ferrolock.createClient)
  // Factory results are the same shape as ferrolock/dist-lock's (the same code).
  const client = { send_command() {}, hmget() {} }
  const viaMain = ferrolock(client, { keyPrefix: 'a:' })
  const viaEntry = distLock(client, { keyPrefix: 'a:' })
  assert.deepEqual(Object.keys(viaMain), Object.keys(viaEntry))
  assert.deepEqual(Object.keys(viaMain), ['acquire', 'getAcquiredLock', 'releaseLock', 'extendLock'])
})

test('createClient with a string first is a dynamo-lock client; with nothing, the memory client', async () => {
  const db = { getItem() {}, putItem() {} }
  const viaMain = ferrolock.createClient('Locks', { db })
  const viaEntry = dynamoLock.createClient('Locks', { db })
  assert.deepEqual(Object.keys(viaMain), ['lockTableName', 'db'])
  assert.equal(viaMain.lockTableName, 'Locks')
  assert.equal(viaMain.db, db)
  assert.equal(Object.getPrototypeOf(viaMain), Object.getPrototypeOf(viaEntry))

  const memory = ferrolock.createClient()
  assert.equal(memory.backend, 'memory')
  await memory.close()
  // ferrolock/dynamo-lock is dynamo-lock with no exception: no table name throws its string.
  assert.throws(
    () => dynamoLock.createClient(),
    (thrown) => thrown === 'You need to include a value for lockTableName',
  )
})
