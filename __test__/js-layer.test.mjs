// The JS layer's own contract: the public entry is imported by nobody inside the package, the
// native client reports what its store can do (no backend names compared in JS), and range and
// relation checks come from Rust, once, under the option names a caller wrote, before any I/O.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'

import ferrolock, { createClient, InvalidArgumentError } from '../index.js'
import { freePort } from './support/servers.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)

function expectInvalid(promise, message) {
  return assert.rejects(promise, (err) => {
    assert.ok(err instanceof InvalidArgumentError, String(err))
    assert.equal(err.code, 'ERR_INVALID_ARG')
    if (typeof message === 'string') assert.equal(err.message, message)
    else assert.match(err.message, message)
    return true
  })
}

function throwsInvalid(fn, message) {
  assert.throws(fn, (err) => {
    assert.ok(err instanceof InvalidArgumentError, String(err))
    if (typeof message === 'string') assert.equal(err.message, message)
    else assert.match(err.message, message)
    return true
  })
}

describe('modules', () => {
  test('no module under lib/ or compat/ loads the public entry, and it has no _internal', () => {
    const modules = [
      ...readdirSync(join(root, 'lib'), { recursive: true }).map((f) => join('lib', String(f))),
      ...readdirSync(join(root, 'compat')).map((f) => join('compat', f)),
    ].filter((f) => f.endsWith('.js'))
    assert.ok(modules.length >= 10, modules.join(' '))
    // Each in a fresh process: the entry must not be in require.cache after loading it.
    const script = `
      const path = require('node:path')
      for (const file of JSON.parse(process.argv[1])) require(path.resolve(file))
      const entry = path.resolve('index.js')
      process.stdout.write(JSON.stringify(Object.keys(require.cache).includes(entry)))
    `
    const run = spawnSync(process.execPath, ['-e', script, JSON.stringify(modules)], {
      cwd: root,
      encoding: 'utf8',
      timeout: 50_000, // a hang fails (status null) instead of blocking the run
    })
    assert.equal(run.status, 0, run.stderr)
    assert.equal(run.stdout, 'false')
    assert.equal(ferrolock._internal, undefined)
    assert.equal(require('../index.js')._internal, undefined)
  })
})

describe('Lock', () => {
  test('the signal is aborted on release with ERR_LOCK_RELEASED, asked for before or after', async () => {
    const locks = createClient()
    const early = await locks.acquire('early', { autoExtend: false })
    const signal = early.signal
    assert.equal(signal.aborted, false)
    await early.release()
    assert.equal(signal.aborted, true)
    assert.equal(signal.reason.code, 'ERR_LOCK_RELEASED')
    const late = await locks.acquire('late', { autoExtend: false })
    await late.release()
    assert.equal(late.signal.aborted, true)
    assert.equal(late.signal.reason.code, 'ERR_LOCK_RELEASED')
    assert.match(late.signal.reason.message, /lock "late" was released/)
    assert.equal(late.signal.reason, late.signal.reason)
    await locks.close()
  })
})

describe('capabilities', () => {
  test('the native client says what its store can do', async () => {
    const { NativeClient, Completions } = require('../binding.js')
    const queue = new Completions(() => {})
    const memory = NativeClient.memory(queue)
    assert.deepEqual(
      { ...memory.capabilities },
      { binaryData: true, dynamoOptions: false, tables: false, immediate: true },
    )
    const redis = NativeClient.redis(queue, { url: `redis://127.0.0.1:${await freePort()}` })
    assert.deepEqual(
      { ...redis.capabilities },
      { binaryData: false, dynamoOptions: false, tables: false, immediate: false },
    )
    const dynamo = NativeClient.dynamodb(queue, {
      table: 'locks',
      region: 'us-east-1',
      endpoint: `http://127.0.0.1:${await freePort()}`,
    })
    assert.deepEqual(
      { ...dynamo.capabilities },
      { binaryData: true, dynamoOptions: true, tables: true, immediate: false },
    )
  })

  test('what a client refuses follows its capabilities', async () => {
    const redis = createClient({ redis: `redis://127.0.0.1:${await freePort()}` })
    await expectInvalid(redis.acquire('x', { data: Buffer.from('a') }), 'options.data must be a string (got a Buffer)')
    await expectInvalid(
      redis.acquire('x', { deleteOnRelease: true }),
      'options.deleteOnRelease is only supported by the dynamodb backend',
    )
    await expectInvalid(redis.deleteLockTable(), 'deleteLockTable() is only available on a dynamodb client')
    await redis.close()
    const memory = createClient()
    const lock = await memory.acquire('binary', { data: Buffer.from([0, 1, 2]), autoExtend: false })
    assert.deepEqual(await memory.inspect('binary').then((i) => i.data), Buffer.from([0, 1, 2]))
    await expectInvalid(lock.release({ delete: true }), 'release options are only supported by the dynamodb backend')
    assert.equal(await lock.release(), true)
    await memory.close()
  })
})

describe('ranges and relations come from Rust, with the JS option names', () => {
  test('acquire options, on the memory fast path and over the network alike', async () => {
    const port = await freePort()
    for (const locks of [createClient(), createClient({ redis: `redis://127.0.0.1:${port}` })]) {
      const max = 2 ** 31 - 1
      await expectInvalid(
        locks.acquire('x', { ttl: 1.5 }),
        `options.ttl must be an integer number of milliseconds from 1 to ${max} (got 1.5)`,
      )
      await expectInvalid(
        locks.acquire('x', { ttl: 2 ** 31 }),
        `options.ttl must be an integer number of milliseconds from 1 to ${max} (got 2147483648)`,
      )
      await expectInvalid(
        locks.acquire('x', { ttl: 1e21 }),
        `options.ttl must be an integer number of milliseconds from 1 to ${max} (got 1e+21)`,
      )
      await expectInvalid(
        locks.tryAcquire('x', { retryDelay: -5 }),
        `options.retryDelay must be an integer number of milliseconds from 0 to ${max} (got -5)`,
      )
      await expectInvalid(
        locks.acquire('x', { ttl: 1000, refreshInterval: 1000 }),
        'options.refreshInterval (1000) must be less than options.ttl (1000)',
      )
      await expectInvalid(
        locks.acquire('x', { ttl: 1000, safeTime: 2000 }),
        'options.safeTime (2000) must be less than options.ttl (1000)',
      )
      await expectInvalid(
        locks.acquire('x', { maxRetries: 0.5 }),
        'options.maxRetries must be a non-negative integer or Infinity (got 0.5)',
      )
      await expectInvalid(locks.acquire('x', { wait: NaN }), /^options\.wait must be an integer .* \(got NaN\)$/)
      await expectInvalid(locks.acquire('x', { owner: 'é'.repeat(513) }), /^options\.owner .* at most 1024 bytes/)
      await expectInvalid(locks.acquire(''), 'name must be a non-empty string')
      // Types are JS's: a wrong one is named as such.
      await expectInvalid(locks.acquire('x', { ttl: '1000' }), 'options.ttl must be a number (got "1000")')
      await expectInvalid(
        locks.acquire('x', { rertyDelay: 5 }),
        'options: unknown option "rertyDelay" (did you mean "retryDelay"?)',
      )
      // A closed client still names bad input first.
      await locks.close()
      await expectInvalid(locks.acquire('x', { ttl: 0 }), /options\.ttl/)
      await assert.rejects(locks.acquire('x'), { code: 'ERR_CLIENT_CLOSED' })
    }
  })

  test('an aborted signal: bad input first, then ERR_ABORTED, and nothing is taken', async () => {
    const locks = createClient()
    const signal = AbortSignal.abort()
    await expectInvalid(locks.acquire('x', { signal, ttl: -1 }), /options\.ttl/)
    await assert.rejects(locks.acquire('x', { signal }), { code: 'ERR_ABORTED' })
    assert.equal(await locks.inspect('x'), null)
    await locks.close()
  })

  test('lock.extend', async () => {
    const locks = createClient()
    const lock = await locks.acquire('x', { autoExtend: false })
    await expectInvalid(
      lock.extend(0),
      `ttl must be an integer number of milliseconds from 1 to ${2 ** 31 - 1} (got 0)`,
    )
    await expectInvalid(lock.extend(null), 'ttl must be a number (got null)')
    assert.equal(await lock.extend(5000), true)
    await lock.release()
    await locks.close()
  })

  test('client options', async () => {
    const two = [`redis://127.0.0.1:${await freePort()}`, `redis://127.0.0.1:${await freePort()}`]
    throwsInvalid(
      () => createClient({ redlock: two, retryCount: -1 }),
      'options.retryCount must be a non-negative integer or Infinity (got -1)',
    )
    throwsInvalid(
      () => createClient({ redlock: two, requestTimeout: 0 }),
      `options.requestTimeout must be an integer number of milliseconds from 1 to ${2 ** 31 - 1} (got 0)`,
    )
    throwsInvalid(
      () => createClient({ redlock: [two[0], { host: '127.0.0.1', port: 1.5 }] }),
      'options.redlock[1].port must be an integer from 1 to 65535 (got 1.5)',
    )
    throwsInvalid(
      () => createClient({ redis: { db: 0.5 } }),
      'options.redis.db must be a non-negative integer (got 0.5)',
    )
    const dynamodb = { table: 'locks', region: 'us-east-1', endpoint: `http://127.0.0.1:${await freePort()}` }
    throwsInvalid(
      () => createClient({ dynamodb: { ...dynamodb, leaseDuration: 1000, heartbeatPeriod: 1000 } }),
      'options.dynamodb.heartbeatPeriod (1000) must be less than options.dynamodb.leaseDuration (1000)',
    )
    throwsInvalid(
      () => createClient({ dynamodb: { ...dynamodb, requestTimeout: -1 } }),
      /^options\.dynamodb\.requestTimeout must be an integer number of milliseconds from 1 /,
    )
    const locks = createClient({ dynamodb })
    await expectInvalid(
      locks.createLockTable({ readCapacity: 0, writeCapacity: 1 }),
      'createLockTable options.readCapacity must be a positive integer (got 0)',
    )
    await expectInvalid(
      locks.createLockTable({ timeout: '5s' }),
      'createLockTable options.timeout must be a number (got "5s")',
    )
    await locks.close()
  })
})
