// ferrolock/dynamo-lock is dynamo-lock 0.1.3's main export (docs/compat/dynamo-lock.md): the same calls,
// string errors, 'SUCCESS' results and item layout, through a plain mock db, aws-sdk v2 and
// @aws-sdk/client-dynamodb v3 against dynalite; and the real dynamo-lock 0.1.3 in another
// process excludes and is excluded by it on the same table.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { after, before, describe, test } from 'node:test'

import { bounded, waitUntil, within } from './support/bounded.mjs'
import { startDynalite } from './support/servers.mjs'
import { dynamoLockWorker } from './support/dynamo-lock-worker.mjs'

process.env.AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE = '1'
const require = createRequire(import.meta.url)
const dynamoLock = require('../compat/dynamo-lock.js')
const { createClient } = dynamoLock
const original = require('dynamo-lock')
// The original logs every outcome with console.log; keep the test output readable.
Object.assign(require('dynamo-lock/logger.js'), { debug() {}, info() {}, warn() {}, error() {} })
const AWS = require('aws-sdk')
const v3 = require('@aws-sdk/client-dynamodb')

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const EXPIRES = /^Lock expires on (\d+) currently its (\d+)$/
// A lease the next calls (some across IPC) must certainly come within, on a loaded machine too.
const LEASE = within(300)
const TABLE_PARAMS = (TableName) => ({
  AttributeDefinitions: [{ AttributeName: 'name', AttributeType: 'S' }],
  KeySchema: [{ AttributeName: 'name', KeyType: 'HASH' }],
  ProvisionedThroughput: { ReadCapacityUnits: 1, WriteCapacityUnits: 1 },
  TableName,
})
const getParams = (TableName, name) => ({
  Key: { name: { S: name } },
  TableName,
  AttributesToGet: ['guid', 'expiresOn'],
  ConsistentRead: true,
})

// A callback recording every call's arguments.
function recorder() {
  const calls = []
  let wake
  const first = new Promise((resolve) => (wake = resolve))
  const cb = (...args) => {
    calls.push(args)
    wake(args)
  }
  return { calls, cb, first }
}
// The arguments of a method's first callback.
const settle = (fn) => new Promise((resolve) => fn((...args) => resolve(args)))
// Lets pending callbacks, promise reactions and nextTicks run (a second callback would show).
const drain = () => new Promise((resolve) => setImmediate(() => setImmediate(resolve)))

// A mock db with synchronous callbacks: getItem answers `getAnswer`, putItem `putAnswer`.
function mockDb({ getAnswer = [null, {}], putAnswer = [null, {}], tableAnswer = [null, {}] } = {}) {
  const db = {
    log: [],
    getItem(params, cb) {
      db.log.push(['getItem', params])
      cb(...getAnswer)
    },
    putItem(params, cb) {
      db.log.push(['putItem', params])
      cb(...putAnswer)
    },
    createTable(params, cb) {
      db.log.push(['createTable', params])
      cb(...tableAnswer)
    },
    deleteTable(params, cb) {
      db.log.push(['deleteTable', params])
      cb(...tableAnswer)
    },
  }
  return db
}

describe('createClient', () => {
  test('the module exports exactly createClient', () => {
    assert.deepEqual(Object.keys(dynamoLock), ['createClient'])
    assert.deepEqual(Object.keys(original), ['createClient'])
  })

  test('no table name throws the original string', () => {
    for (const call of [() => createClient(), () => createClient(undefined, { db: mockDb() })]) {
      assert.throws(call, (thrown) => thrown === 'You need to include a value for lockTableName')
    }
  })

  test('null, empty and 0 table names are kept', () => {
    for (const name of [null, '', 0]) assert.equal(createClient(name, { db: mockDb() }).lockTableName, name)
  })

  test('a client has own properties lockTableName and db, then the methods, like the original', () => {
    const db = mockDb()
    const client = createClient('Locks', { db })
    const old = original.createClient('Locks', { db })
    assert.deepEqual(Object.keys(client), ['lockTableName', 'db'])
    assert.equal(client.lockTableName, 'Locks')
    assert.equal(client.db, db)
    const keys = (o) => {
      const all = []
      for (const k in o) all.push(k)
      return all
    }
    assert.deepEqual(keys(client), keys(old))
    assert.deepEqual(keys(client), ['lockTableName', 'db', 'getLock', 'createLockTable', 'deleteLockTable'])
    assert.equal(client.constructor.name, 'LockerClient')
  })

  test("awsConfig defaults to {} and gets apiVersion written into the caller's objects", () => {
    const params = { db: mockDb() }
    createClient('Locks', params)
    assert.deepEqual(params.awsConfig, { apiVersion: '2012-08-10' })
    const awsConfig = { region: 'eu-west-1', apiVersion: '2011-12-05' }
    const params2 = { awsConfig, db: mockDb() }
    createClient('Locks', params2)
    assert.equal(params2.awsConfig, awsConfig)
    assert.deepEqual(awsConfig, { region: 'eu-west-1', apiVersion: '2012-08-10' })
  })

  test('clockSkewMs must be a finite number >= 0', () => {
    for (const clockSkewMs of [-1, NaN, Infinity, '5', null]) {
      assert.throws(() => createClient('Locks', { db: mockDb(), clockSkewMs }), {
        name: 'RangeError',
        code: 'ERR_INVALID_ARG',
        message: 'clockSkewMs must be a finite number >= 0',
      })
    }
    assert.deepEqual(Object.keys(createClient('Locks', { db: mockDb(), clockSkewMs: 10 })), ['lockTableName', 'db'])
  })
})

describe('getLock with a mock db (getItem/putItem only, synchronous callbacks)', () => {
  test('no item: conditional PutItem of {name, guid, expiresOn}, SUCCESS before getLock returns', () => {
    const log = []
    const db = {
      getItem(params, cb) {
        assert.equal(this, db)
        log.push(['getItem', params])
        cb(null, {})
      },
      putItem(params, cb) {
        assert.equal(this, db)
        log.push(['putItem', params])
        cb(null, {})
      },
    }
    const r = recorder()
    const before = Date.now()
    createClient('Locks', { db }).getLock('job', 10000, r.cb)
    const after = Date.now()
    assert.deepEqual(r.calls, [[null, 'SUCCESS']])
    assert.deepEqual(log[0], ['getItem', getParams('Locks', 'job')])
    assert.equal(log.length, 2)
    const [op, put] = log[1]
    assert.equal(op, 'putItem')
    assert.match(put.Item.guid.S, UUID_V4)
    const expiresOn = Number(put.Item.expiresOn.N)
    assert.ok(expiresOn >= before + 10000 && expiresOn <= after + 10000, put.Item.expiresOn.N)
    assert.deepEqual(put, {
      Item: { name: { S: 'job' }, guid: { S: put.Item.guid.S }, expiresOn: { N: String(expiresOn) } },
      TableName: 'Locks',
      ConditionExpression: 'attribute_not_exists(guid)',
    })
  })

  test('a v3-shaped empty answer ({$metadata}) is no item too', () => {
    const db = mockDb({ getAnswer: [null, { $metadata: { httpStatusCode: 200 } }] })
    const r = recorder()
    createClient('Locks', { db }).getLock('job', 1000, r.cb)
    assert.deepEqual(r.calls, [[null, 'SUCCESS']])
    assert.equal(db.log[1][1].ConditionExpression, 'attribute_not_exists(guid)')
  })

  test('an unexpired lock: the exact "Lock expires on" string, no write', () => {
    const expiresOn = String(Date.now() + 60000)
    const db = mockDb({ getAnswer: [null, { Item: { guid: { S: 'g-1' }, expiresOn: { N: expiresOn } } }] })
    const r = recorder()
    const before = Date.now()
    createClient('Locks', { db }).getLock('job', 1000, r.cb)
    const after = Date.now()
    assert.equal(r.calls.length, 1)
    assert.equal(r.calls[0].length, 1)
    const [, seen, now] = EXPIRES.exec(r.calls[0][0])
    assert.equal(seen, expiresOn)
    assert.ok(Number(now) >= before && Number(now) <= after)
    assert.deepEqual(
      db.log.map(([op]) => op),
      ['getItem'],
    )
  })

  test('an expired lock is taken over on the condition that its guid is unchanged', () => {
    const db = mockDb({ getAnswer: [null, { Item: { guid: { S: 'g-1' }, expiresOn: { N: String(Date.now() - 1) } } }] })
    const r = recorder()
    createClient('Locks', { db }).getLock('job', 500, r.cb)
    assert.deepEqual(r.calls, [[null, 'SUCCESS']])
    const put = db.log[1][1]
    assert.deepEqual(put.ExpressionAttributeValues, { ':oldguid': { S: 'g-1' } })
    assert.equal(put.ConditionExpression, 'guid = :oldguid')
    assert.deepEqual(Object.keys(put), ['Item', 'TableName', 'ExpressionAttributeValues', 'ConditionExpression'])
  })

  test('an item without expiresOn is taken over on its guid; one without guid on attribute_not_exists(guid)', () => {
    const noExpiry = mockDb({ getAnswer: [null, { Item: { guid: { S: 'g-2' } } }] })
    const r1 = recorder()
    createClient('Locks', { db: noExpiry }).getLock('job', 500, r1.cb)
    assert.deepEqual(r1.calls, [[null, 'SUCCESS']])
    assert.equal(noExpiry.log[1][1].ConditionExpression, 'guid = :oldguid')
    // The original crashed here (data.Item.guid.S of undefined).
    const noGuid = mockDb({ getAnswer: [null, { Item: { expiresOn: { N: '5' } } }] })
    const r2 = recorder()
    createClient('Locks', { db: noGuid }).getLock('job', 500, r2.cb)
    assert.deepEqual(r2.calls, [[null, 'SUCCESS']])
    assert.equal(noGuid.log[1][1].ConditionExpression, 'attribute_not_exists(guid)')
    assert.equal(noGuid.log[1][1].ExpressionAttributeValues, undefined)
  })

  test('clockSkewMs: a lock expired by less than the margin still counts as held', () => {
    const expiresOn = String(Date.now() - 50)
    const answer = [null, { Item: { guid: { S: 'g' }, expiresOn: { N: expiresOn } } }]
    const skewed = mockDb({ getAnswer: answer })
    const r1 = recorder()
    createClient('Locks', { db: skewed, clockSkewMs: 5000 }).getLock('job', 500, r1.cb)
    assert.equal(EXPIRES.exec(r1.calls[0][0])[1], expiresOn)
    assert.equal(skewed.log.length, 1)
    const plain = mockDb({ getAnswer: answer })
    const r2 = recorder()
    createClient('Locks', { db: plain }).getLock('job', 500, r2.cb)
    assert.deepEqual(r2.calls, [[null, 'SUCCESS']])
  })

  test('a GetItem error calls back ERROR once (the original never called back)', async () => {
    const db = mockDb({ getAnswer: [Object.assign(new Error('Requested resource not found'), { code: 'x' })] })
    const r = recorder()
    createClient('Locks', { db }).getLock('job', 500, r.cb)
    await drain()
    assert.deepEqual(r.calls, [['ERROR']])
    assert.equal(db.log.length, 1)
  })

  test('a PutItem error (a failed condition) calls back ERROR', () => {
    const err = Object.assign(new Error('The conditional request failed'), { code: 'ConditionalCheckFailedException' })
    const db = mockDb({ putAnswer: [err] })
    const r = recorder()
    createClient('Locks', { db }).getLock('job', 500, r.cb)
    assert.deepEqual(r.calls, [['ERROR']])
  })

  test('bad input calls back ERROR at once, without I/O', () => {
    const bad = [
      [undefined, 1000],
      [null, 1000],
      ['', 1000],
      [5, 1000],
      [{ S: 'x' }, 1000],
      ['job', undefined],
      ['job', null],
      ['job', 0],
      ['job', -1],
      ['job', NaN],
      ['job', Infinity],
      ['job', ''],
      ['job', '  '],
      ['job', 'abc'],
      ['job', '10s'],
      ['job', '-5'],
      ['job', true],
      ['job', {}],
      ['job', [1000]],
      ['job', 10n],
      ['job', Number.MAX_SAFE_INTEGER],
    ]
    for (const [name, ms] of bad) {
      const db = mockDb()
      const r = recorder()
      createClient('Locks', { db }).getLock(name, ms, r.cb)
      assert.deepEqual(r.calls, [['ERROR']], `getLock(${String(name)}, ${String(ms)})`)
      assert.deepEqual(db.log, [], `getLock(${String(name)}, ${String(ms)})`)
    }
  })

  test('numeric strings are numbers (the original concatenated them)', () => {
    for (const [ms, n] of [
      ['10000', 10000],
      [' 2500 ', 2500],
      ['1e3', 1000],
    ]) {
      const db = mockDb()
      const r = recorder()
      const before = Date.now()
      createClient('Locks', { db }).getLock('job', ms, r.cb)
      const after = Date.now()
      assert.deepEqual(r.calls, [[null, 'SUCCESS']])
      const expiresOn = Number(db.log[1][1].Item.expiresOn.N)
      assert.ok(expiresOn >= before + n && expiresOn <= after + n, `${ms}: ${expiresOn}`)
    }
  })

  test('this.db is read at each call, and its methods too', () => {
    const client = createClient('Locks', { db: mockDb() })
    const second = mockDb()
    client.db = second
    const seen = []
    second.getItem = (params, cb) => {
      seen.push(params.Key.name.S)
      cb(null, {})
    }
    const r = recorder()
    client.getLock('job', 500, r.cb)
    assert.deepEqual(seen, ['job'])
    assert.deepEqual(r.calls, [[null, 'SUCCESS']])
    assert.equal(second.log[0][0], 'putItem')
    client.lockTableName = 'Other'
    client.getLock('job2', 500, () => {})
    assert.equal(second.log[1][1].TableName, 'Other')
  })

  test('a db without getItem throws the TypeError the original threw', () => {
    const client = createClient('Locks', { db: {} })
    const old = original.createClient('Locks', { db: {} })
    for (const c of [client, old]) {
      assert.throws(() => c.getLock('job', 500, () => {}), {
        name: 'TypeError',
        message: 'db.getItem is not a function',
      })
      assert.throws(() => c.createLockTable(() => {}), {
        name: 'TypeError',
        message: 'db.createTable is not a function',
      })
      assert.throws(() => c.deleteLockTable(() => {}), {
        name: 'TypeError',
        message: 'this.db.deleteTable is not a function',
      })
    }
  })

  test('a throwing getItem throws out of getLock, as in the original', () => {
    const boom = new Error('boom')
    const db = {
      getItem() {
        throw boom
      },
    }
    assert.throws(
      () => createClient('Locks', { db }).getLock('job', 500, () => {}),
      (e) => e === boom,
    )
  })

  test('promise-returning methods: the promise answers when the callback does not', async () => {
    const expiresOn = String(Date.now() + 60000)
    const db = {
      getItem: async () => ({ Item: { guid: { S: 'g' }, expiresOn: { N: expiresOn } } }),
    }
    const [msg] = await settle((cb) => createClient('Locks', { db }).getLock('job', 500, cb))
    assert.equal(EXPIRES.exec(msg)[1], expiresOn)
    const db2 = { getItem: async () => ({}), putItem: async () => ({}) }
    assert.deepEqual(await settle((cb) => createClient('Locks', { db: db2 }).getLock('job', 500, cb)), [
      null,
      'SUCCESS',
    ])
    const db3 = { getItem: () => Promise.reject(new Error('down')) }
    const r = recorder()
    createClient('Locks', { db: db3 }).getLock('job', 500, r.cb)
    await r.first
    await drain()
    assert.deepEqual(r.calls, [['ERROR']])
  })

  test('a method that calls back and returns a promise settles once, on whichever comes first', async () => {
    // An async method that calls back: its promise fulfils with undefined, which is no answer.
    const late = []
    const db = {
      async getItem(params, cb) {
        cb(null, {})
      },
      putItem(params, cb) {
        // The promise fails first; the callback's later success is ignored.
        setTimeout(() => {
          cb(null, {})
          late.push('called back')
        }, 5)
        return Promise.reject(new Error('first'))
      },
    }
    const r = recorder()
    createClient('Locks', { db }).getLock('job', 500, r.cb)
    await r.first
    await waitUntil(() => late.length > 0, 'the late callback')
    await drain()
    assert.deepEqual(r.calls, [['ERROR']])

    // Callback first (an error), then the promise fulfils with data: still one call.
    const db2 = {
      getItem(params, cb) {
        cb(new Error('first'))
        return Promise.resolve({})
      },
    }
    const r2 = recorder()
    createClient('Locks', { db: db2 }).getLock('job', 500, r2.cb)
    await drain()
    assert.deepEqual(r2.calls, [['ERROR']])
  })

  test('a db calling back twice is heard once', async () => {
    const db = {
      getItem(params, cb) {
        cb(null, {})
        cb(null, {})
      },
      putItem(params, cb) {
        cb(null, {})
        cb(new Error('again'))
      },
    }
    const r = recorder()
    createClient('Locks', { db }).getLock('job', 500, r.cb)
    await drain()
    assert.deepEqual(r.calls, [[null, 'SUCCESS']])
  })

  test('a bare v3-style client: send() gets the SDK command with the same input', async () => {
    const sent = []
    const db = {
      send(command, cb) {
        sent.push(command)
        if (command instanceof v3.GetItemCommand) cb(null, { $metadata: {} })
        else if (command instanceof v3.CreateTableCommand) {
          cb(Object.assign(new Error('exists'), { name: 'ResourceInUseException' }))
        } else cb(null, { $metadata: {} })
      },
    }
    const client = createClient('Locks', { db })
    assert.deepEqual(await settle((cb) => client.getLock('job', 500, cb)), [null, 'SUCCESS'])
    assert.deepEqual(await settle((cb) => client.createLockTable(cb)), ['TABLE_EXISTS', null])
    assert.deepEqual(await settle((cb) => client.deleteLockTable(cb)), [null, 'SUCCESS'])
    assert.deepEqual(
      sent.map((c) => c.constructor.name),
      ['GetItemCommand', 'PutItemCommand', 'CreateTableCommand', 'DeleteTableCommand'],
    )
    assert.ok(sent[1] instanceof v3.PutItemCommand)
    assert.deepEqual(sent[0].input, getParams('Locks', 'job'))
    assert.equal(sent[1].input.ConditionExpression, 'attribute_not_exists(guid)')
    assert.deepEqual(sent[2].input, TABLE_PARAMS('Locks'))
    assert.deepEqual(sent[3].input, { TableName: 'Locks' })
  })
})

describe('createLockTable and deleteLockTable with a mock db', () => {
  test('CreateTable params; SUCCESS, TABLE_EXISTS (code or name), ERROR', () => {
    const exists = Object.assign(new Error('in use'), { code: 'ResourceInUseException' })
    const existsV3 = Object.assign(new Error('in use'), { name: 'ResourceInUseException' })
    for (const [answer, expected] of [
      [
        [null, {}],
        [null, 'SUCCESS'],
      ],
      [[exists], ['TABLE_EXISTS', null]],
      [[existsV3], ['TABLE_EXISTS', null]],
      [[new Error('LimitExceededException')], ['ERROR', null]],
    ]) {
      const db = mockDb({ tableAnswer: answer })
      const r = recorder()
      createClient('Locks', { db }).createLockTable(r.cb)
      assert.deepEqual(r.calls, [expected])
      assert.deepEqual(db.log, [['createTable', TABLE_PARAMS('Locks')]])
    }
  })

  test('DeleteTable: SUCCESS, or ERROR exactly once (the original then also called back SUCCESS)', async () => {
    const ok = mockDb()
    const r1 = recorder()
    createClient('Locks', { db: ok }).deleteLockTable(r1.cb)
    assert.deepEqual(r1.calls, [[null, 'SUCCESS']])
    assert.deepEqual(ok.log, [['deleteTable', { TableName: 'Locks' }]])
    const failing = mockDb({ tableAnswer: [new Error('ResourceNotFoundException')] })
    const r2 = recorder()
    createClient('Locks', { db: failing }).deleteLockTable(r2.cb)
    await drain()
    assert.deepEqual(r2.calls, [['ERROR']])
    const r3 = recorder()
    original.createClient('Locks', { db: failing }).deleteLockTable(r3.cb)
    assert.deepEqual(r3.calls, [['ERROR'], [null, 'SUCCESS']])
  })
})

describe('same calls and answers as the real dynamo-lock 0.1.3 for the same db answers', () => {
  // Runs `invoke` on both clients over identical mock dbs; guids, expiries and times normalised.
  function both(dbOptions, invoke) {
    const norm = (v) =>
      JSON.parse(
        JSON.stringify(v ?? null)
          .replace(/"guid":\{"S":"[0-9a-f-]{36}"\}/g, '"guid":{"S":"<uuid>"}')
          .replace(/"expiresOn":\{"N":"\d+"\}/g, '"expiresOn":{"N":"<n>"}')
          .replace(/currently its \d+/g, 'currently its <now>'),
      )
    return [original, dynamoLock].map((mod) => {
      const db = mockDb(dbOptions)
      const r = recorder()
      invoke(mod.createClient('Locks', { db }), r.cb)
      // ferrolock's one addition to the calls: a consistent read.
      for (const [op, params] of db.log) if (op === 'getItem' && mod === dynamoLock) delete params.ConsistentRead
      return norm({ log: db.log, calls: r.calls })
    })
  }
  const held = { Item: { guid: { S: 'g' }, expiresOn: { N: '99999999999999' } } }
  const expired = { Item: { guid: { S: 'g' }, expiresOn: { N: '1000' } } }
  const cases = {
    'getLock, no item': [{}, (c, cb) => c.getLock('job', 1000, cb)],
    'getLock, held': [{ getAnswer: [null, held] }, (c, cb) => c.getLock('job', 1000, cb)],
    'getLock, expired': [{ getAnswer: [null, expired] }, (c, cb) => c.getLock('job', 1000, cb)],
    'getLock, failed write': [{ putAnswer: [new Error('x')] }, (c, cb) => c.getLock('job', 1000, cb)],
    createLockTable: [{}, (c, cb) => c.createLockTable(cb)],
    'createLockTable, exists': [
      { tableAnswer: [{ code: 'ResourceInUseException' }] },
      (c, cb) => c.createLockTable(cb),
    ],
    'createLockTable, error': [{ tableAnswer: [{ code: 'Throttling' }] }, (c, cb) => c.createLockTable(cb)],
    deleteLockTable: [{}, (c, cb) => c.deleteLockTable(cb)],
  }
  for (const [label, [dbOptions, invoke]] of Object.entries(cases)) {
    test(label, () => {
      const [old, ours] = both(dbOptions, invoke)
      assert.deepEqual(ours, old)
    })
  }
})

describe('against dynalite', () => {
  let server, raw
  const credentials = { accessKeyId: 'test', secretAccessKey: 'test' }
  before(async () => {
    server = await startDynalite()
    raw = new AWS.DynamoDB({ endpoint: server.endpoint, region: 'us-east-1', credentials })
  })
  after(async () => {
    await server.stop()
  })
  const rawGet = async (TableName, name) =>
    (await raw.getItem({ TableName, Key: { name: { S: name } }, ConsistentRead: true }).promise()).Item
  const rawPut = (TableName, Item) => raw.putItem({ TableName, Item }).promise()

  const clients = {
    'aws-sdk v2 AWS.DynamoDB': () => new AWS.DynamoDB({ endpoint: server.endpoint, region: 'us-east-1', credentials }),
    '@aws-sdk/client-dynamodb v3 DynamoDB': () =>
      new v3.DynamoDB({ endpoint: server.endpoint, region: 'us-east-1', credentials }),
    '@aws-sdk/client-dynamodb v3 DynamoDBClient': () =>
      new v3.DynamoDBClient({ endpoint: server.endpoint, region: 'us-east-1', credentials }),
  }
  let n = 0
  for (const [label, make] of Object.entries(clients)) {
    describe(label, () => {
      const table = `locks-${++n}`
      let client, db
      before(() => {
        db = make()
        client = createClient(table, { db })
      })
      after(() => db.destroy?.())

      test('createLockTable: SUCCESS, then TABLE_EXISTS', async () => {
        assert.deepEqual(await settle((cb) => client.createLockTable(cb)), [null, 'SUCCESS'])
        assert.deepEqual(await settle((cb) => client.createLockTable(cb)), ['TABLE_EXISTS', null])
      })

      test('an exception thrown by the callback is not swallowed (v3 clients catch it): uncaught, once', async () => {
        let calls = 0
        const thrown = await uncaught(() =>
          client.createLockTable((err) => {
            calls++
            throw new Error(`callback threw on ${err}`)
          }),
        )
        assert.equal(thrown.message, 'callback threw on TABLE_EXISTS')
        await drain()
        assert.equal(calls, 1)
      })

      test('getLock: SUCCESS, then the exact refusal, then SUCCESS with a new guid after expiry', async () => {
        const before = Date.now()
        assert.deepEqual(await settle((cb) => client.getLock('job', LEASE, cb)), [null, 'SUCCESS'])
        const after = Date.now()
        const first = await rawGet(table, 'job')
        // The item layout, exactly.
        assert.deepEqual(Object.keys(first).sort(), ['expiresOn', 'guid', 'name'])
        assert.deepEqual(first.name, { S: 'job' })
        assert.deepEqual(Object.keys(first.guid), ['S'])
        assert.deepEqual(Object.keys(first.expiresOn), ['N'])
        assert.match(first.guid.S, UUID_V4)
        const expiresOn = Number(first.expiresOn.N)
        assert.ok(expiresOn >= before + LEASE && expiresOn <= after + LEASE)

        const refusal = await settle((cb) => client.getLock('job', LEASE, cb))
        assert.equal(refusal.length, 1)
        const [, seen, now] = EXPIRES.exec(refusal[0])
        assert.equal(seen, first.expiresOn.N)
        assert.ok(Number(now) < expiresOn && Number(now) >= before)
        assert.deepEqual(await rawGet(table, 'job'), first)

        // The expiry is what is under test: wait for it.
        await new Promise((resolve) => setTimeout(resolve, expiresOn - Date.now() + 2))
        assert.deepEqual(await settle((cb) => client.getLock('job', LEASE, cb)), [null, 'SUCCESS'])
        const second = await rawGet(table, 'job')
        assert.match(second.guid.S, UUID_V4)
        assert.notEqual(second.guid.S, first.guid.S)
        assert.ok(Number(second.expiresOn.N) > expiresOn)
      })

      test('an item without guid (not written by dynamo-lock) is taken over', async () => {
        await rawPut(table, { name: { S: 'no-guid' }, expiresOn: { N: '1' } })
        assert.deepEqual(await settle((cb) => client.getLock('no-guid', 1000, cb)), [null, 'SUCCESS'])
        assert.match((await rawGet(table, 'no-guid')).guid.S, UUID_V4)
      })

      test('a takeover loses when the guid changed after the read: ERROR, the other holder kept', async () => {
        await rawPut(table, { name: { S: 'raced' }, guid: { S: 'old' }, expiresOn: { N: '1' } })
        const other = { name: { S: 'raced' }, guid: { S: 'other' }, expiresOn: { N: String(Date.now() + 60000) } }
        // Between our read and our write, another client takes the expired lock.
        const racing = createClient(table, {
          db: {
            getItem: (params, cb) =>
              callDb(db, 'getItem', params, (err, data) => rawPut(table, other).then(() => cb(err, data))),
            putItem: (params, cb) => callDb(db, 'putItem', params, cb),
          },
        })
        assert.deepEqual(await settle((cb) => racing.getLock('raced', 1000, cb)), ['ERROR'])
        assert.deepEqual(await rawGet(table, 'raced'), other)
      })

      test('a missing table: getLock calls back ERROR once', async () => {
        const r = recorder()
        createClient('no-such-table', { db }).getLock('job', 1000, r.cb)
        await r.first
        await drain()
        assert.deepEqual(r.calls, [['ERROR']])
      })

      test('deleteLockTable: SUCCESS once, then ERROR once', async () => {
        const r1 = recorder()
        client.deleteLockTable(r1.cb)
        await r1.first
        await drain()
        assert.deepEqual(r1.calls, [[null, 'SUCCESS']])
        const r2 = recorder()
        createClient('no-such-table', { db }).deleteLockTable(r2.cb)
        await r2.first
        await drain()
        assert.deepEqual(r2.calls, [['ERROR']])
      })
    })
  }

  describe('next to the real dynamo-lock 0.1.3 in another process', () => {
    const table = 'fleet'
    let ours, old, seq
    before(async () => {
      ours = createClient(table, {
        db: new AWS.DynamoDB({ endpoint: server.endpoint, region: 'us-east-1', credentials }),
      })
      assert.deepEqual(await settle((cb) => ours.createLockTable(cb)), [null, 'SUCCESS'])
      old = await worker('old', table, {
        awsConfig: { endpoint: server.endpoint, region: 'us-east-1', ...credentials },
      })
      seq = 0
    })
    after(() => old?.kill())

    const oldGetLock = (name, timeout, at) => old.ask({ op: 'getLock', name, timeout, at })
    const oursGetLock = (name, timeout, at) =>
      new Promise((resolve) => {
        setTimeout(
          () => ours.getLock(name, timeout, (err, res) => resolve({ err: err ?? null, res: res ?? null })),
          Math.max(0, at - Date.now()),
        )
      })

    test('each refuses while the other holds the lock, and takes it once expired', async () => {
      const name = `seq-${++seq}`
      assert.deepEqual(await oldGetLock(name, LEASE), { err: null, res: 'SUCCESS' })
      const byOld = await rawGet(table, name)
      assert.match(byOld.guid.S, UUID_V4)
      const [refusal] = await settle((cb) => ours.getLock(name, LEASE, cb))
      assert.equal(EXPIRES.exec(refusal)[1], byOld.expiresOn.N)
      await new Promise((resolve) => setTimeout(resolve, Number(byOld.expiresOn.N) - Date.now() + 2))

      assert.deepEqual(await settle((cb) => ours.getLock(name, LEASE, cb)), [null, 'SUCCESS'])
      const byOurs = await rawGet(table, name)
      assert.notEqual(byOurs.guid.S, byOld.guid.S)
      const { err } = await oldGetLock(name, LEASE)
      assert.equal(EXPIRES.exec(err)[1], byOurs.expiresOn.N)
      await new Promise((resolve) => setTimeout(resolve, Number(byOurs.expiresOn.N) - Date.now() + 2))

      assert.deepEqual(await oldGetLock(name, LEASE), { err: null, res: 'SUCCESS' })
      assert.notEqual((await rawGet(table, name)).guid.S, byOurs.guid.S)
    })

    // Both ask at (nearly) the same wall-clock instant, one of them 0-3 ms ahead; the lock is
    // fresh in even rounds and expired (another guid) in odd ones. Exactly one may win.
    for (const first of ['old', 'ferrolock']) {
      test(`racing for a fresh or expired lock, ${first} first: exactly one SUCCESS per round, 30 rounds`, async (t) => {
        const wins = { old: 0, ferrolock: 0 }
        let conflicts = 0
        for (let round = 0; round < 30; round++) {
          const name = `race-${first}-${round}`
          if (round % 2) await rawPut(table, { name: { S: name }, guid: { S: 'gone' }, expiresOn: { N: '1' } })
          const at = Date.now() + 40
          const lead = round % 4
          const [o, f] = await Promise.all([
            oldGetLock(name, 60000, first === 'old' ? at : at + lead),
            oursGetLock(name, 60000, first === 'old' ? at + lead : at),
          ])
          const results = { old: o, ferrolock: f }
          const winners = Object.keys(results).filter((k) => results[k].res === 'SUCCESS')
          assert.equal(winners.length, 1, `round ${round}: ${JSON.stringify(results)}`)
          wins[winners[0]]++
          const loser = results[winners[0] === 'old' ? 'ferrolock' : 'old']
          assert.equal(loser.res, null)
          assert.ok(loser.err === 'ERROR' || EXPIRES.test(loser.err), `round ${round}: ${loser.err}`)
          if (loser.err === 'ERROR') conflicts++
          const item = await rawGet(table, name)
          assert.match(item.guid.S, UUID_V4)
          assert.ok(Number(item.expiresOn.N) > Date.now() + 50000)
        }
        assert.equal(wins.old + wins.ferrolock, 30)
        // How many rounds the conditional write decided (both read the lock free) is up to timing;
        // the next test forces that case.
        t.diagnostic(`${conflicts} of 30 rounds decided by the conditional write`)
      })
    }

    test('both read the lock free, the real dynamo-lock writes first: our conditional write gets ERROR', async () => {
      const name = `forced-${++seq}`
      const db = new AWS.DynamoDB({ endpoint: server.endpoint, region: 'us-east-1', credentials })
      let theirs
      // Our getItem has read the lock free; the other process takes it before our putItem goes.
      const gated = {
        getItem: (params, cb) => db.getItem(params, cb),
        putItem: (params, cb) =>
          oldGetLock(name, 60000).then((answer) => {
            theirs = answer
            db.putItem(params, cb)
          }, cb),
      }
      const mine = settle((cb) => createClient(table, { db: gated }).getLock(name, 60000, cb))
      const [ourErr, ourRes] = await bounded(mine, 'our getLock')
      assert.equal(ourErr, 'ERROR')
      assert.equal(ourRes, undefined)
      assert.deepEqual(theirs, { err: null, res: 'SUCCESS' })
      const { err } = await oldGetLock(name, 60000)
      assert.match(err, EXPIRES, 'the real dynamo-lock holds it')
    })
  })
})

// Runs `run` and resolves the next uncaught exception, with node:test's own handlers set aside.
async function uncaught(run) {
  const saved = process.listeners('uncaughtException')
  process.removeAllListeners('uncaughtException')
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no uncaught exception within 3 s')), 3000)
      process.once('uncaughtException', (err) => {
        clearTimeout(timer)
        resolve(err)
      })
      run()
    })
  } finally {
    process.removeAllListeners('uncaughtException')
    for (const listener of saved) process.on('uncaughtException', listener)
  }
}

// Calls a real SDK client the way compat/dynamo-lock.js would (callback form, or send()).
function callDb(db, method, params, cb) {
  if (typeof db[method] === 'function') return db[method](params, cb)
  const Command = v3[method[0].toUpperCase() + method.slice(1) + 'Command']
  return db.send(new Command(params), cb)
}

const worker = dynamoLockWorker
