// The transport seam: ferrolock's stores speaking through the caller's own client objects.
// Every command goes through the object's methods as they are at call time, errors come back
// as the caller's own error objects (the `cause`), and ferrolock opens no connection of its own.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { after, before, describe, test } from 'node:test'

import { createClient } from '../index.js'
import { rawCommand, startDynalite, startMasters, startRedis } from './support/servers.mjs'

const require = createRequire(import.meta.url)
const Redis = require('ioredis')
const AWS = require('aws-sdk')
const { DynamoDB, DynamoDBClient } = require('@aws-sdk/client-dynamodb')

// Connections a server has, other than the one asking.
async function connections(port) {
  const list = await rawCommand(port, 'CLIENT LIST')
  return list.split('\n').filter((l) => l.includes('id=')).length - 1
}

describe('transport seam: Redis client objects', () => {
  let server, io, locks
  before(async () => {
    server = await startRedis()
    io = new Redis(server.port)
    await io.ping()
    locks = createClient({ redis: io })
  })
  after(async () => {
    await locks.close()
    io.disconnect()
    await server.stop()
  })

  test('commands go through the method as it is at call time, and nothing else connects', async () => {
    const before = await connections(server.port)
    const seen = []
    const original = io.call
    io.call = function (...args) {
      seen.push(String(args[0]).toLowerCase())
      return original.apply(this, args)
    }
    try {
      const lock = await locks.acquire('through-call', { ttl: 5000 })
      assert.ok(seen.length >= 1 && seen.every((c) => c === 'evalsha' || c === 'eval'), seen.join())
      assert.equal(await lock.release(), true)
    } finally {
      io.call = original
    }
    assert.equal(await connections(server.port), before) // only the caller's own connection
  })

  test("the caller's error object is the cause, and the next call works again", async () => {
    const boom = Object.assign(new Error('injected failure'), { injected: true })
    const original = io.call
    io.call = () => Promise.reject(boom)
    try {
      const err = await locks.tryAcquire('failing').then(
        () => null,
        (e) => e,
      )
      assert.equal(err.code, 'ERR_BACKEND_UNAVAILABLE')
      assert.equal(err.cause, boom)
      assert.match(err.message, /injected failure/)
      assert.doesNotMatch(err.message, /js#/)
    } finally {
      io.call = original
    }
    const lock = await locks.tryAcquire('failing')
    assert.ok(lock)
    await lock.release()
  })

  test("a failing heartbeat reports the caller's error as the cause of the 'error' event", async () => {
    const lock = await locks.acquire('heartbeat-fails', { ttl: 600, refreshInterval: 100 })
    const boom = new Error('heartbeat refused')
    const original = io.call
    io.call = () => Promise.reject(boom)
    try {
      const [err] = await once(lock, 'error')
      assert.equal(err.code, 'ERR_BACKEND_UNAVAILABLE')
      assert.equal(err.cause, boom)
    } finally {
      io.call = original
    }
    await lock.release()
  })

  test('a native client and a client-object client exclude each other on one server', async () => {
    const native = createClient({ redis: server.url })
    try {
      const a = await native.acquire('shared', { ttl: 5000, owner: 'native' })
      assert.equal(await locks.tryAcquire('shared'), null)
      assert.equal((await locks.inspect('shared')).owner, 'native')
      await a.release()
      const b = await locks.acquire('shared', { ttl: 5000, owner: 'object' })
      assert.equal(await native.tryAcquire('shared'), null)
      assert.ok((await native.inspect('shared')).fence === b.fence)
      await b.release()
    } finally {
      await native.close()
    }
  })

  test('replies in every shape a client gives: Buffers, numbers, nested arrays, null', async () => {
    // ioredis's callBuffer answers bulk strings as Buffers (nested in arrays too).
    const buffers = { call: (name, rest) => io.callBuffer(name, ...rest) }
    const mine = createClient({ redis: buffers, keyPrefix: 'buf:' })
    try {
      const lock = await mine.acquire('b', { ttl: 5000, owner: 'büro', data: 'dätä' })
      assert.equal(typeof lock.fence, 'bigint')
      assert.equal(await mine.tryAcquire('b'), null)
      const info = await mine.inspect('b')
      assert.equal(info.owner, 'büro')
      assert.equal(info.fence, lock.fence)
      assert.equal(info.data, 'dätä')
      assert.ok(info.remainingTtl > 0 && info.remainingTtl <= 5000, String(info.remainingTtl))
      assert.equal(await mine.inspect('none'), null)
      assert.equal(await lock.release(), true)
      assert.equal(await lock.release(), false)
    } finally {
      await mine.close()
    }
  })

  test("close() leaves the caller's client open", async () => {
    const mine = createClient({ redis: io, keyPrefix: 'other:' })
    const lock = await mine.acquire('x')
    await mine.close()
    assert.equal(lock.lost, false)
    assert.equal(await io.get('other:x'), null) // released by close()
    assert.equal(await io.ping(), 'PONG')
  })

  test('bad input fails before any command', async () => {
    let calls = 0
    const counting = { call: () => (calls++, Promise.resolve(null)) }
    assert.throws(() => createClient({ redis: counting, keyPrefix: 5 }), { code: 'ERR_INVALID_ARG' })
    const masters = { call: counting.call }
    assert.throws(() => createClient({ redlock: [masters, masters] }), {
      code: 'ERR_INVALID_ARG',
      message: /same master \(client object\)/,
    })
    assert.throws(() => createClient({ redlock: [{ call() {}, isCluster: true }, counting] }), {
      code: 'ERR_INVALID_ARG',
      message: /one server, not a cluster/,
    })
    // Two client objects of one server are one master, not two.
    const [a, b] = [
      new Redis({ port: server.port, lazyConnect: true }),
      new Redis({ port: server.port, lazyConnect: true }),
    ]
    assert.throws(() => createClient({ redlock: [a, b] }), {
      code: 'ERR_INVALID_ARG',
      message: new RegExp(`same master \\(localhost:${server.port}/0\\)`),
    })
    // ioredis would prefix the lock key and its companions into different cluster slots.
    const prefixed = { call() {}, isCluster: true, options: { keyPrefix: 'app:' } }
    assert.throws(() => createClient({ redis: prefixed }), { code: 'ERR_INVALID_ARG', message: /keyPrefix/ })
    const locks2 = createClient({ redis: counting })
    await assert.rejects(locks2.acquire(''), { code: 'ERR_INVALID_ARG' })
    await assert.rejects(locks2.acquire('x', { ttl: -1 }), { code: 'ERR_INVALID_ARG' })
    await locks2.close()
    assert.equal(calls, 0)
  })
})

describe('transport seam: Redlock over client objects', () => {
  let masters, clients
  before(async () => {
    masters = await startMasters(3)
    clients = masters.masters.map((m) => new Redis(m.port))
  })
  after(async () => {
    for (const c of clients) c.disconnect()
    await masters.stop()
  })

  test('one master failing still grants on a majority; two failing do not', async () => {
    const locks = createClient({ redlock: clients, retryCount: 0 })
    const original = clients[0].call
    clients[0].call = () => Promise.reject(new Error('master down'))
    try {
      const lock = await locks.acquire('quorum', { ttl: 5000, wait: false })
      assert.equal(await lock.release(), true)
      clients[1].call = clients[0].call
      // Two failures leave no majority that could answer: a backend error, not "held by another".
      await assert.rejects(locks.acquire('quorum', { ttl: 5000, wait: 300, retryDelay: 20 }), {
        code: 'ERR_BACKEND_UNAVAILABLE',
        message: /only 1 of 3 masters answered/,
      })
    } finally {
      clients[0].call = original
      delete clients[1].call // back to the prototype's
      await locks.close()
    }
    // Nothing left behind on the live master.
    assert.equal(await clients[2].exists('lock:quorum'), 0)
  })
})

describe('transport seam: DynamoDB client objects', () => {
  let server, config
  before(async () => {
    server = await startDynalite()
    const { endpoint, region, credentials } = server.options('x').dynamodb
    config = { endpoint, region, credentials }
  })
  after(() => server.stop())

  const kinds = {
    'aws-sdk v2 DynamoDB': () => new AWS.DynamoDB(config),
    '@aws-sdk/client-dynamodb v3 DynamoDB': () => new DynamoDB(config),
    '@aws-sdk/client-dynamodb v3 DynamoDBClient': () => new DynamoDBClient(config),
  }
  let n = 0
  for (const [kind, make] of Object.entries(kinds)) {
    test(`${kind}: table, exclusion, binary data, takeover, release`, async () => {
      const db = make()
      const table = `seam-${++n}`
      const locks = createClient({ dynamodb: { table, client: db, leaseDuration: 1000, heartbeatPeriod: 0 } })
      const other = createClient({ dynamodb: { table, client: db, leaseDuration: 1000, heartbeatPeriod: 0 } })
      try {
        assert.deepEqual(await locks.createLockTable(), { table, created: true })
        const lock = await locks.acquire('job', { data: Buffer.from([0, 1, 254, 255]) })
        assert.equal(lock.fence, 1n)
        assert.equal(await other.tryAcquire('job'), null)
        assert.deepEqual((await other.inspect('job')).data, Buffer.from([0, 1, 254, 255]))
        // Not renewed (heartbeatPeriod 0): taken over once the lease ran out unchanged.
        const next = await other.acquire('job', { wait: 5000, retryDelay: 100 })
        assert.equal(next.fence, 2n)
        assert.equal(await lock.release(), false)
        assert.equal(await next.release(), true)
        assert.deepEqual(await locks.deleteLockTable(), { table, deleted: true })
      } finally {
        await locks.close()
        await other.close()
      }
    })
  }

  test("requests go through the object's methods at call time; its errors are the cause", async () => {
    const db = new DynamoDBClient(config)
    const locks = createClient({ dynamodb: { table: 'seam-calls', client: db } })
    await locks.createLockTable()
    const original = db.send
    const sent = []
    db.send = function (command, ...rest) {
      sent.push(command.constructor.name)
      return original.call(this, command, ...rest)
    }
    const lock = await locks.acquire('a')
    await lock.release()
    assert.deepEqual(sent, ['UpdateItemCommand', 'UpdateItemCommand'])
    const boom = Object.assign(new Error('no network today'), { name: 'TypeError' })
    db.send = () => Promise.reject(boom)
    const err = await locks.tryAcquire('b').then(
      () => null,
      (e) => e,
    )
    assert.equal(err.code, 'ERR_BACKEND_UNAVAILABLE')
    assert.equal(err.cause, boom)
    db.send = original
    await locks.close()
  })

  test("a service error of the caller's client is the cause too, and not for a failed condition", async () => {
    const db = new DynamoDBClient(config)
    const locks = createClient({ dynamodb: { table: 'seam-service', client: db, requestTimeout: 5000 } })
    await locks.createLockTable()
    const original = db.send
    const refused = Object.assign(new Error('not authorized to perform dynamodb:UpdateItem'), {
      name: 'AccessDeniedException',
      $metadata: { httpStatusCode: 400 },
    })
    db.send = () => Promise.reject(refused)
    try {
      const err = await locks.tryAcquire('s').then(
        () => null,
        (e) => e,
      )
      assert.equal(err.code, 'ERR_BACKEND_UNAVAILABLE')
      assert.equal(err.cause, refused)
      assert.match(err.message, /not authorized/)
    } finally {
      db.send = original
    }
    // A held lock is an answer (a failed condition), not an error: nothing to report.
    const held = await locks.acquire('s')
    assert.equal(await locks.tryAcquire('s'), null)
    await held.release()
    await locks.close()
  })

  test('an aws-sdk v2-style wrapper that answers with a promise instead of the callback works', async () => {
    const v2 = new AWS.DynamoDB(config)
    // A typical instrumentation wrapper: calls the SDK and returns its promise, ignoring cb.
    const wrapped = {}
    for (const m of ['getItem', 'updateItem', 'deleteItem', 'createTable', 'describeTable', 'deleteTable']) {
      wrapped[m] = (params) => v2[m](params).promise()
    }
    const locks = createClient({ dynamodb: { table: 'seam-wrapped', client: wrapped } })
    try {
      await locks.createLockTable()
      const lock = await locks.acquire('w')
      assert.equal(lock.fence, 1n)
      assert.equal(await lock.release(), true)
    } finally {
      await locks.close()
    }
  })

  test('bad input fails before any request', () => {
    const db = new DynamoDBClient(config)
    assert.throws(() => createClient({ dynamodb: { table: 't', client: db, region: 'eu-west-1' } }), {
      code: 'ERR_INVALID_ARG',
      message: /brings its own/,
    })
    assert.throws(() => createClient({ dynamodb: { table: 't', client: { getItem() {} } } }), {
      code: 'ERR_INVALID_ARG',
    })
  })
})
