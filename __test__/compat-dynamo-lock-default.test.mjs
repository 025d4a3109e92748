// ferrolock/dynamo-lock without a caller's db: the client is ferrolock's own DynamoDB adapter
// (lib/dynamodb-adapter.js), configured from awsConfig or, with no configuration, from the AWS
// environment (AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ..., AWS_REGION),
// against dynalite; next to the real dynamo-lock 0.1.3 in another process.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { after, before, describe, test } from 'node:test'

import { within } from './support/bounded.mjs'
import { freePort, startDynalite } from './support/servers.mjs'
import { dynamoLockWorker } from './support/dynamo-lock-worker.mjs'

process.env.AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE = '1'
const require = createRequire(import.meta.url)
const { createClient } = require('../compat/dynamo-lock.js')
const AWS = require('aws-sdk')

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const EXPIRES = /^Lock expires on (\d+) currently its (\d+)$/
// A lease the next calls must certainly come within, on a loaded machine too.
const LEASE = within(200)
const settle = (fn) => new Promise((resolve) => fn((...args) => resolve(args)))

// The environment of a worker: none of this machine's AWS settings, no config files, no
// instance metadata; then `extra`.
function awsFreeEnv(extra) {
  const env = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AWS_')) env[k] = v
  return {
    ...env,
    AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: '1',
    AWS_CONFIG_FILE: '/nonexistent/ferrolock-test-config',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/ferrolock-test-credentials',
    AWS_EC2_METADATA_DISABLED: 'true',
    ...extra,
  }
}

// createLockTable calls back before the table is ACTIVE (as dynamo-lock did): callers wait.
async function untilActive(raw, table) {
  for (;;) {
    const { Table } = await raw.describeTable({ TableName: table }).promise()
    if (Table.TableStatus === 'ACTIVE') return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

const worker = dynamoLockWorker

describe('dynamo-lock without a db: ferrolock builds the client', () => {
  let server, raw
  const keys = { accessKeyId: 'test', secretAccessKey: 'test' }
  before(async () => {
    server = await startDynalite()
    raw = new AWS.DynamoDB({ endpoint: server.endpoint, region: 'us-east-1', credentials: keys })
  })
  after(() => server.stop())
  const rawGet = async (TableName, name) =>
    (await raw.getItem({ TableName, Key: { name: { S: name } }, ConsistentRead: true }).promise()).Item

  test('from awsConfig: the whole lifecycle, with apiVersion written into awsConfig', async () => {
    const awsConfig = { endpoint: server.endpoint, region: 'us-east-1', ...keys }
    const client = createClient('cfg-locks', { awsConfig })
    assert.deepEqual(awsConfig, { endpoint: server.endpoint, region: 'us-east-1', ...keys, apiVersion: '2012-08-10' })
    assert.deepEqual(Object.keys(client), ['lockTableName', 'db'])
    for (const m of ['getItem', 'putItem', 'createTable', 'deleteTable']) assert.equal(typeof client.db[m], 'function')

    assert.deepEqual(await settle((cb) => client.createLockTable(cb)), [null, 'SUCCESS'])
    assert.deepEqual(await settle((cb) => client.createLockTable(cb)), ['TABLE_EXISTS', null])
    await untilActive(raw, 'cfg-locks')
    const before = Date.now()
    assert.deepEqual(await settle((cb) => client.getLock('job', LEASE, cb)), [null, 'SUCCESS'])
    const item = await rawGet('cfg-locks', 'job')
    assert.deepEqual(Object.keys(item).sort(), ['expiresOn', 'guid', 'name'])
    assert.deepEqual(item.name, { S: 'job' })
    assert.match(item.guid.S, UUID_V4)
    assert.ok(Number(item.expiresOn.N) >= before + LEASE)
    const [refusal] = await settle((cb) => client.getLock('job', LEASE, cb))
    assert.equal(EXPIRES.exec(refusal)[1], item.expiresOn.N)
    await new Promise((resolve) => setTimeout(resolve, Number(item.expiresOn.N) - Date.now() + 2))
    assert.deepEqual(await settle((cb) => client.getLock('job', LEASE, cb)), [null, 'SUCCESS'])
    assert.notEqual((await rawGet('cfg-locks', 'job')).guid.S, item.guid.S)
    // A failed takeover condition is ERROR: another writer changed the guid after our read.
    const { db } = client
    const racing = createClient('cfg-locks', {
      db: {
        getItem: (params, cb) =>
          db.getItem(params, (err, data) =>
            raw
              .putItem({
                TableName: 'cfg-locks',
                Item: { name: { S: 'job' }, guid: { S: 'other' }, expiresOn: { N: '1' } },
              })
              .promise()
              .then(() => cb(err, { Item: { ...data.Item, expiresOn: { N: '1' } } })),
          ),
        putItem: (params, cb) => db.putItem(params, cb),
      },
    })
    assert.deepEqual(await settle((cb) => racing.getLock('job', LEASE, cb)), ['ERROR'])
    assert.equal((await rawGet('cfg-locks', 'job')).guid.S, 'other')

    assert.deepEqual(await settle((cb) => client.deleteLockTable(cb)), [null, 'SUCCESS'])
    assert.deepEqual(await settle((cb) => client.getLock('job', LEASE, cb)), ['ERROR'])
    assert.deepEqual(await settle((cb) => client.deleteLockTable(cb)), ['ERROR'])
  })

  test('params null or not an object: a client with the default configuration', () => {
    for (const params of [null, 'x', 5]) {
      const client = createClient('T', params)
      assert.deepEqual(Object.keys(client), ['lockTableName', 'db'])
      assert.equal(typeof client.db.getItem, 'function')
    }
  })

  for (const variable of ['AWS_ENDPOINT_URL_DYNAMODB', 'AWS_ENDPOINT_URL']) {
    test(`createClient(name, {}) from the environment (${variable}) in another process`, async () => {
      const table = `env-${variable}`
      const env = awsFreeEnv({
        [variable]: server.endpoint,
        AWS_ACCESS_KEY_ID: 'test',
        AWS_SECRET_ACCESS_KEY: 'test',
        AWS_REGION: 'us-east-1',
      })
      const child = await worker('new', table, {}, env)
      try {
        assert.deepEqual(await child.ask({ op: 'createLockTable' }), { err: null, res: 'SUCCESS' })
        await untilActive(raw, table)
        assert.deepEqual(await child.ask({ op: 'getLock', name: 'job', timeout: 60000 }), { err: null, res: 'SUCCESS' })
        const item = await rawGet(table, 'job')
        assert.match(item.guid.S, UUID_V4)
        const { err } = await child.ask({ op: 'getLock', name: 'job', timeout: 60000 })
        assert.equal(EXPIRES.exec(err)[1], item.expiresOn.N)
        assert.deepEqual(await child.ask({ op: 'deleteLockTable' }), { err: null, res: 'SUCCESS' })
      } finally {
        child.kill()
      }
    })
  }

  test('awsConfig wins over the environment', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`
    const env = awsFreeEnv({
      AWS_ENDPOINT_URL: dead,
      AWS_ACCESS_KEY_ID: 'wrong',
      AWS_SECRET_ACCESS_KEY: 'wrong',
      AWS_REGION: 'eu-west-3',
    })
    const awsConfig = { endpoint: server.endpoint, region: 'us-east-1', ...keys }
    const child = await worker('new', 'cfg-wins', { awsConfig }, env)
    try {
      assert.deepEqual(await child.ask({ op: 'createLockTable' }), { err: null, res: 'SUCCESS' })
      await untilActive(raw, 'cfg-wins')
      assert.deepEqual(await child.ask({ op: 'getLock', name: 'job', timeout: 60000 }), { err: null, res: 'SUCCESS' })
      assert.match((await rawGet('cfg-wins', 'job')).guid.S, UUID_V4)
    } finally {
      child.kill()
    }
  })

  test('next to the real dynamo-lock 0.1.3: exactly one SUCCESS per round, 20 racing rounds', async () => {
    const table = 'fleet-default'
    const ours = createClient(table, { awsConfig: { endpoint: server.endpoint, region: 'us-east-1', ...keys } })
    assert.deepEqual(await settle((cb) => ours.createLockTable(cb)), [null, 'SUCCESS'])
    await untilActive(raw, table)
    const old = await worker(
      'old',
      table,
      { awsConfig: { endpoint: server.endpoint, region: 'us-east-1', ...keys } },
      awsFreeEnv({}),
    )
    try {
      for (let round = 0; round < 20; round++) {
        const name = `race-${round}`
        if (round % 2) {
          await raw
            .putItem({ TableName: table, Item: { name: { S: name }, guid: { S: 'gone' }, expiresOn: { N: '1' } } })
            .promise()
        }
        const at = Date.now() + 40
        const [o, f] = await Promise.all([
          old.ask({ op: 'getLock', name, timeout: 60000, at: round % 4 < 2 ? at : at + 1 }),
          new Promise((resolve) =>
            setTimeout(
              () => ours.getLock(name, 60000, (err, res) => resolve({ err: err ?? null, res: res ?? null })),
              Math.max(0, (round % 4 < 2 ? at + 1 : at) - Date.now()),
            ),
          ),
        ])
        const wins = [o, f].filter((r) => r.res === 'SUCCESS')
        assert.equal(wins.length, 1, `round ${round}: ${JSON.stringify({ old: o, ferrolock: f })}`)
        const loser = o.res === 'SUCCESS' ? f : o
        assert.ok(loser.err === 'ERROR' || EXPIRES.test(loser.err), loser.err)
      }
    } finally {
      old.kill()
    }
  })
})
