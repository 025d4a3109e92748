// require('ferrolock/leverege') is @leverege/lock's `Lock` (docs/compat/leverege.md): the call
// shapes of its README, on the memory backend, one redis-server and three Redlock masters, with
// Redlock 4's error shapes. Keys on Redis are the names as given (`myKey`, `myApp:myKey`).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { createInterface } from 'node:readline'
import { after, before, describe, test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'

import { createClient, InvalidArgumentError } from '../index.js'
import { bounded } from './support/bounded.mjs'
import { rawCommand, startMasters, startRedis } from './support/servers.mjs'

const require = createRequire(import.meta.url)
const Lock = require('ferrolock/leverege') // through package.json `exports`
const IORedis = require('ioredis')
const redis3 = require('redis3')
const redis4 = require('redis4')

const ROOT = new URL('..', import.meta.url).pathname

// Checks a Redlock 4 LockError.
const lockError = (message, attempts) => (err) => {
  assert.ok(err instanceof Lock.LockError, `a LockError, got ${err && err.stack}`)
  assert.equal(err.name, 'LockError')
  assert.equal(err.message, message)
  assert.equal(err.attempts, attempts)
  return true
}
const notAcquired = (retryCount, key) =>
  lockError(`Exceeded ${retryCount} attempts to lock the resource "${key}".`, retryCount + 1)
const expired = (key) => lockError(`Cannot extend lock on resource "${key}" because the lock has already expired.`, 0)
const notReleased = (key) => lockError(`Unable to fully release the lock on resource "${key}".`, undefined)
const invalidArg = (message) => (err) => {
  assert.ok(err instanceof InvalidArgumentError, `an InvalidArgumentError, got ${err && err.stack}`)
  assert.equal(err.code, 'ERR_INVALID_ARG')
  assert.equal(err.message, message)
  return true
}

// Records every command the server runs (MONITOR), to count lock attempts exactly.
async function monitor(port) {
  const base = new IORedis({ port, lazyConnect: true })
  const mon = await base.monitor()
  const seen = []
  mon.on('monitor', (time, args) => seen.push(args))
  return {
    seen,
    // Resolves once every command run before this call has been seen.
    async sync() {
      const marker = `sync-${seen.length}-${Math.random()}`
      const got = new Promise((resolve) => {
        const on = (time, args) => {
          if (args[1] === marker) {
            mon.off('monitor', on)
            resolve()
          }
        }
        mon.on('monitor', on)
      })
      await rawCommand(port, `ECHO ${marker}`)
      await got
    },
    stop() {
      mon.disconnect()
      base.disconnect()
    },
  }
}

// Runs `contend()` against `key` held by `hold()` and counts the acquire attempts it sent: the
// script calls on `key` with the script the holder acquired it with.
async function countAttempts(port, key, hold, contend) {
  const mon = await monitor(port)
  try {
    const handle = await hold()
    await mon.sync()
    const first = mon.seen.find((a) => a[0].toLowerCase() === 'evalsha' && a[3] === key)
    assert.ok(first, 'the holder acquired through a script')
    const mark = mon.seen.length
    const outcome = await contend().then(
      (value) => ({ value }),
      (error) => ({ error }),
    )
    await mon.sync()
    const attempts = mon.seen.slice(mark).filter((a) => a[1] === first[1] && a[3] === key).length
    return { handle, attempts, ...outcome }
  } finally {
    mon.stop()
  }
}

describe('Lock.create: settings', () => {
  test('type is required and must be redis or inMemory', () => {
    const message = (got) => `type must be 'redis' or 'inMemory' (got ${got}); give it in the options or in lockConfig`
    assert.throws(() => Lock.create({ namespace: 'myApp' }), invalidArg(message('undefined')))
    assert.throws(() => Lock.create(), invalidArg(message('undefined')))
    assert.throws(() => Lock.create({ type: 'memory' }), invalidArg(message('"memory"')))
    assert.throws(() => Lock.create({ lockConfig: { type: 'dynamodb' } }), invalidArg(message('"dynamodb"')))
    assert.throws(() => Lock.create({ lockConfig: '{"namespace":"x"}' }), invalidArg(message('undefined')))
  })

  test('lockConfig wins over the top-level fields; namespace may stay outside', async () => {
    const lock = Lock.create({ type: 'redis', namespace: 'myApp', lockConfig: { type: 'inMemory', retry: 0 } })
    assert.equal(lock.type, 'inMemory')
    assert.equal(lock.namespace, 'myApp')
    await lock.destroy()
    const fromJson = Lock.create({ type: 'redis', namespace: 'a', lockConfig: '{"type":"inMemory","namespace":"b"}' })
    assert.equal(fromJson.type, 'inMemory')
    assert.equal(fromJson.namespace, 'b')
    await fromJson.destroy()
    // An undefined field in lockConfig does not hide the top-level one.
    const partial = Lock.create({ type: 'inMemory', lockConfig: { type: undefined, delay: 10 } })
    assert.equal(partial.type, 'inMemory')
    await partial.destroy()
  })

  test('lockConfig as process.env.LOCK_CONFIG (a JSON string), as the README passes it', async () => {
    const saved = process.env.LOCK_CONFIG
    process.env.LOCK_CONFIG = JSON.stringify({ type: 'inMemory', retry: 0, delay: 100 })
    try {
      const lock = Lock.create({ lockConfig: process.env.LOCK_CONFIG || { type: 'redis' }, namespace: 'test' })
      assert.equal(lock.type, 'inMemory')
      const l = await lock.lockNs('k', 1000)
      assert.equal(l.resource, 'test:k')
      await assert.rejects(lock.lockNs('k', 1000), notAcquired(0, 'test:k')) // retry 0 came from the JSON
      await l.unlock()
      await lock.destroy()
    } finally {
      if (saved === undefined) delete process.env.LOCK_CONFIG
      else process.env.LOCK_CONFIG = saved
    }
  })

  test('an invalid JSON lockConfig throws a clear error that does not repeat the text', () => {
    const secret = '{"type":"redis","connection":"redis://:hunter2@db:6379"'
    assert.throws(
      () => Lock.create({ lockConfig: secret }),
      invalidArg(
        `lockConfig is a string but not valid JSON (error at position ${secret.length}); its text is not shown as it may hold credentials`,
      ),
    )
    assert.throws(
      () => Lock.create({ lockConfig: 'hunter2' }),
      (err) => err.code === 'ERR_INVALID_ARG' && !err.message.includes('hunter2') && err.cause === undefined,
    )
    const notObject = invalidArg('lockConfig: the JSON string must hold an object, e.g. {"type":"inMemory"}')
    assert.throws(() => Lock.create({ lockConfig: '[]' }), notObject)
    assert.throws(() => Lock.create({ lockConfig: 'null' }), notObject)
  })

  test('unknown options and bad values throw before any I/O', () => {
    const cases = [
      [
        { type: 'inMemory', retries: 1 },
        'Lock.create options: unknown option "retries" (expected one of type, namespace, connection, lockOptions, retry, delay, lockConfig)',
      ],
      [
        { lockConfig: { type: 'inMemory', lockconfig: {} } },
        'lockConfig: unknown option "lockconfig" (expected one of type, namespace, connection, lockOptions, retry, delay)',
      ],
      [
        { type: 'redis', lockOptions: { retryCount: 0, lockScript: () => '' } },
        'lockOptions: unknown option "lockScript" (expected one of driftFactor, retryCount, retryDelay, retryJitter)',
      ],
      [{ type: 'redis', lockOptions: 5 }, 'lockOptions must be an object (got 5)'],
      [
        { type: 'redis', lockOptions: { retryCount: -2 } },
        'lockOptions.retryCount must be an integer from -1 (retry forever) up (got -2)',
      ],
      [
        { type: 'redis', lockOptions: { retryCount: '0' } },
        'lockOptions.retryCount must be an integer from -1 (retry forever) up (got "0")',
      ],
      [
        { type: 'redis', lockOptions: { retryDelay: 1.5 } },
        'lockOptions.retryDelay must be an integer from 0 to 2147483647 (got 1.5)',
      ],
      [
        { type: 'redis', lockOptions: { retryJitter: -1 } },
        'lockOptions.retryJitter must be an integer from 0 to 2147483647 (got -1)',
      ],
      [
        { type: 'redis', lockOptions: { driftFactor: 0.5 } },
        'lockOptions.driftFactor must be a number from 0 to less than 0.5 (got 0.5)',
      ],
      [{ type: 'inMemory', retry: 'forever' }, 'retry must be an integer (negative: retry forever) (got "forever")'],
      [{ type: 'inMemory', delay: -1 }, 'delay must be an integer from 0 to 2147483647 (got -1)'],
      [{ type: 'inMemory', namespace: '' }, 'namespace must be a non-empty string (got "")'],
      [
        { type: 'redis', connection: 6379 },
        'connection must be { host, port }, a redis:// URL, { url } or a Redis client (got 6379)',
      ],
      [{ type: 'redis', connection: [] }, 'connection: the array lists no Redis server'],
      [
        { type: 'redis', connection: { host: '127.0.0.1', port: 6379, family: 4 } },
        'connection: unknown option "family"',
      ],
      [
        { type: 'redis', connection: 'http://127.0.0.1:6379' },
        'connection: unsupported URL scheme "http:" (expected redis: or rediss:)',
      ],
      [
        { type: 'redis', connection: ['redis://127.0.0.1:1', { host: '127.0.0.1', port: 0 }] },
        'connection[1].port must be an integer from 1 to 65535 (got 0)',
      ],
    ]
    for (const [options, message] of cases) assert.throws(() => Lock.create(options), invalidArg(message))
  })

  test('type redis ignores the in-memory retry/delay, type inMemory ignores connection and lockOptions', async () => {
    // One config can carry both, so a deployment flips `type` alone.
    const both = { retry: 0, delay: 5, connection: { host: '127.0.0.1', port: 1 }, lockOptions: { retryCount: 0 } }
    const memory = Lock.create({ ...both, type: 'inMemory' })
    const l = await memory.lock('k', 1000) // no Redis involved
    await assert.rejects(memory.lock('k', 1000), notAcquired(0, 'k'))
    await l.unlock()
    await memory.destroy()
    const redis = Lock.create({ ...both, type: 'redis' })
    assert.equal(redis.type, 'redis')
    await redis.destroy() // never connected
  })
})

describe('inMemory', () => {
  const open = []
  const create = (options) => {
    const lock = Lock.create(options)
    open.push(lock)
    return lock
  }
  after(() => Promise.all(open.map((lock) => lock.destroy())))

  test('the README shapes: retry/delay at the top level or in lockConfig; lock, lockNs, extend, unlock', async () => {
    const top = create({ type: 'inMemory', namespace: 'myApp', retry: 0, delay: 100 })
    const viaConfig = create({ namespace: 'test', lockConfig: { type: 'inMemory', retry: 0, delay: 100 } })
    for (const [lock, ns] of [
      [top, 'myApp'],
      [viaConfig, 'test'],
    ]) {
      let l = await lock.lock('myKey', 1000)
      assert.equal(l.resource, 'myKey')
      assert.equal(typeof l.value, 'string')
      assert.equal(typeof l.fence, 'bigint')
      await l.unlock()
      l = await lock.lockNs('myKey', 1000)
      assert.equal(l.resource, `${ns}:myKey`)
      await l.unlock()
      l = await lock.lock('myKey', { ttl: 1000 })
      l = await l.extend(1000)
      await l.unlock()
    }
  })

  test('retry 0: a LockError after exactly one attempt; retry 2: three attempts', async () => {
    const lock = create({ type: 'inMemory', retry: 0, delay: 5000 })
    const held = await lock.lock('job', 5000)
    const started = Date.now()
    await assert.rejects(lock.lock('job', 1000), notAcquired(0, 'job'))
    assert.ok(Date.now() - started < 2000, 'no retry after the delay')
    const three = create({ type: 'inMemory', retry: 2, delay: 10 })
    const held3 = await three.lock('job', 5000)
    await assert.rejects(three.lock('job', 1000), notAcquired(2, 'job'))
    await held.unlock()
    await held3.unlock()
  })

  test('a negative retry retries for ever: the waiter outlasts 10 retries and gets the lock', async () => {
    const lock = create({ type: 'inMemory', retry: -1, delay: 5 })
    const held = await lock.lock('forever', 5000)
    let got = null
    const waiting = lock.lock('forever', 1000).then((l) => (got = l))
    await delay(200) // 40 delays of 5 ms: far more than the default 10 retries
    assert.equal(got, null)
    await held.unlock()
    const l = await waiting
    assert.ok(l.fence > held.fence)
    await l.unlock()
  })

  test('two in-memory Lock instances do not exclude each other (the lock is on the instance)', async () => {
    const a = create({ type: 'inMemory', namespace: 'myApp', retry: 0 })
    const b = create({ type: 'inMemory', namespace: 'myApp', retry: 0 })
    const la = await a.lockNs('shared', 5000)
    const lb = await b.lockNs('shared', 5000)
    await assert.rejects(a.lockNs('shared', 5000), notAcquired(0, 'myApp:shared'))
    await assert.rejects(b.lockNs('shared', 5000), notAcquired(0, 'myApp:shared'))
    // Nor does a plain ferrolock memory client (same process store) see them.
    const plain = createClient()
    const lp = await plain.tryAcquire('myApp:shared')
    assert.ok(lp)
    await plain.close()
    await la.unlock()
    await lb.unlock()
  })

  test('lockNs locks namespace:key: the same resource as lock("myApp:key"), not as lock("key")', async () => {
    const lock = create({ type: 'inMemory', namespace: 'myApp', retry: 0 })
    const ns = await lock.lockNs('myKey', 5000)
    await assert.rejects(lock.lock('myApp:myKey', 1000), notAcquired(0, 'myApp:myKey'))
    const global = await lock.lock('myKey', 1000)
    await global.unlock()
    await ns.unlock()
    const noNs = create({ type: 'inMemory' })
    await assert.rejects(
      noNs.lockNs('myKey'),
      invalidArg('lockNs() needs a namespace: Lock.create({ namespace, ... })'),
    )
  })

  test('bad keys and ttls reject with ERR_INVALID_ARG', async () => {
    const lock = create({ type: 'inMemory', namespace: 'n' })
    await assert.rejects(lock.lock(''), invalidArg('key must be a non-empty string (got "")'))
    await assert.rejects(lock.lockNs(42), invalidArg('key must be a non-empty string (got 42)'))
    await assert.rejects(
      lock.lock('k', -5),
      invalidArg('options.ttl must be an integer number of milliseconds from 1 to 2147483647 (got -5)'),
    )
    await assert.rejects(
      lock.lock('k', { ttl: 10, retry: 1 }),
      invalidArg('lock options: unknown option "retry" (expected one of ttl)'),
    )
  })

  test('no ttl: a 30 s lease', async () => {
    const lock = create({ type: 'inMemory' })
    const l = await lock.lock('default-ttl')
    const left = l.expiration - Date.now()
    assert.ok(left > 29_000 && left <= 30_000, `${left}`)
    await l.unlock()
  })

  test('extend moves the lease and resolves a handle whose unlock works', async () => {
    const lock = create({ type: 'inMemory', retry: 0 })
    const l = await lock.lock('ext', 600)
    assert.ok(l.expiration - Date.now() <= 600)
    const l2 = await l.extend(5000)
    assert.equal(l2, l, 'the same handle (Redlock 4 returns the lock it extended)')
    assert.ok(l2.expiration - Date.now() > 4000)
    await delay(650) // past the first ttl: still held
    await assert.rejects(lock.lock('ext', 1000), notAcquired(0, 'ext'))
    await l2.unlock()
    assert.equal(l2.expiration, 0)
    const again = await lock.lock('ext', 1000)
    await again.unlock()
  })

  test('extend after expiry or unlock rejects; unlock twice or after expiry rejects', async () => {
    const lock = create({ type: 'inMemory', retry: 0 })
    const l = await lock.lock('short', 30)
    await delay(l.expiration - Date.now() + 10)
    await assert.rejects(l.extend(1000), expired('short'))
    await assert.rejects(l.unlock(), notReleased('short'))
    const next = await lock.lock('short', 1000) // the lease was not extended behind our back
    assert.equal(await next.unlock(), undefined)
    await assert.rejects(next.unlock(), notReleased('short'))
    await assert.rejects(next.extend(1000), expired('short'))
  })

  test('destroy releases held locks, rejects waiters and later calls; twice is fine', async () => {
    const lock = Lock.create({ type: 'inMemory', retry: -1, delay: 10 })
    const held = await lock.lock('d', 5000)
    const waiting = assert.rejects(lock.lock('d', 5000), { code: 'ERR_CLIENT_CLOSED' })
    const destroyed = lock.destroy()
    assert.ok(destroyed instanceof Promise)
    assert.equal(await destroyed, undefined)
    await waiting
    await assert.rejects(held.unlock(), notReleased('d')) // destroy released it already
    await assert.rejects(lock.lock('d'), { code: 'ERR_CLIENT_CLOSED' })
    await lock.destroy()
  })
})

describe('redis (one server)', () => {
  let server, inspector
  const open = []
  const create = (options) => {
    const lock = Lock.create(options)
    open.push(lock)
    return lock
  }
  const connection = () => ({ host: '127.0.0.1', port: server.port })
  before(async () => {
    server = await startRedis()
    inspector = createClient({ redis: server.url, keyPrefix: '' })
  })
  after(async () => {
    await Promise.all(open.map((lock) => lock.destroy()))
    await inspector.close()
    await server.stop()
  })

  test('the README shapes: lock is global, lockNs is myApp:myKey (keys as given, no prefix)', async () => {
    const lockOptions = { driftFactor: 0.01, retryCount: 0, retryDelay: 200, retryJitter: 100 }
    const direct = create({ type: 'redis', namespace: 'myApp', connection: connection(), lockOptions })
    const viaConfig = create({
      namespace: 'myApp',
      lockConfig: { type: 'redis', connection: connection(), lockOptions },
    })
    for (const lock of [direct, viaConfig]) {
      let l = await lock.lock('myKey', 1000)
      assert.equal(await server.command('EXISTS myKey'), ':1')
      assert.equal(await server.command('EXISTS myApp:myKey'), ':0')
      const info = await inspector.inspect('myKey')
      assert.equal(info.fence, l.fence)
      assert.ok(info.remainingTtl > 0 && info.remainingTtl <= 1000)
      await l.unlock()
      assert.equal(await server.command('EXISTS myKey'), ':0')

      l = await lock.lockNs('myKey', { ttl: 1000 })
      assert.equal(l.resource, 'myApp:myKey')
      assert.equal(await server.command('EXISTS myApp:myKey'), ':1')
      assert.equal(await server.command('EXISTS myKey'), ':0')
      assert.equal((await inspector.inspect('myApp:myKey')).fence, l.fence)
      l = await l.extend(1000)
      await l.unlock()
      assert.equal(await server.command('EXISTS myApp:myKey'), ':0')
    }
  })

  test('connection as a URL, { url } or a one-element array: the same server', async () => {
    for (const conn of [server.url, { url: server.url }, [connection()], [server.url]]) {
      const lock = create({ type: 'redis', connection: conn, lockOptions: { retryCount: 0 } })
      const l = await lock.lock('forms', 1000)
      assert.equal((await inspector.inspect('forms')).fence, l.fence)
      await l.unlock()
      await lock.destroy()
    }
  })

  test('two Lock instances exclude each other; retryCount 0 makes exactly one attempt', async () => {
    const a = create({ type: 'redis', connection: connection(), lockOptions: { retryCount: 0 } })
    const b = create({ type: 'redis', connection: connection(), lockOptions: { retryCount: 0, retryDelay: 5000 } })
    const started = Date.now()
    const { handle, attempts, error } = await countAttempts(
      server.port,
      'excl',
      () => a.lock('excl', 5000),
      () => b.lock('excl', 1000),
    )
    assert.ok(lockError('Exceeded 0 attempts to lock the resource "excl".', 1)(error))
    assert.equal(attempts, 1)
    assert.ok(Date.now() - started < 2000, 'no retry after retryDelay')
    await handle.unlock()
    const l = await b.lock('excl', 1000)
    await l.unlock()
  })

  test('retryCount 2: three attempts, retryDelay apart (no jitter)', async () => {
    const a = create({ type: 'redis', connection: connection(), lockOptions: { retryCount: 0 } })
    const b = create({
      type: 'redis',
      connection: connection(),
      lockOptions: { retryCount: 2, retryDelay: 100, retryJitter: 0 },
    })
    const started = Date.now()
    const { handle, attempts, error } = await countAttempts(
      server.port,
      'three',
      () => a.lock('three', 5000),
      () => b.lock('three', 1000),
    )
    assert.ok(notAcquired(2, 'three')(error))
    assert.equal(attempts, 3)
    assert.ok(Date.now() - started >= 100, 'waited at least one retryDelay')
    await handle.unlock()
  })

  test("Redlock's defaults: retryCount 10 (11 attempts), retryDelay 200 ± 100", async () => {
    const a = create({ type: 'redis', connection: connection(), lockOptions: { retryCount: 0 } })
    const b = create({ type: 'redis', connection: connection() })
    const started = Date.now()
    const { handle, attempts, error } = await countAttempts(
      server.port,
      'defaults',
      () => a.lock('defaults', 10_000),
      () => b.lock('defaults', 1000),
    )
    assert.ok(notAcquired(10, 'defaults')(error))
    assert.equal(attempts, 11)
    // At least 9 pauses of at least 100 ms each.
    assert.ok(Date.now() - started >= 900, `${Date.now() - started} ms`)
    await handle.unlock()
  })

  test('retryCount -1 waits until the holder unlocks; a lease is never auto-extended', async () => {
    const a = create({ type: 'redis', connection: connection(), lockOptions: { retryCount: 0 } })
    const b = create({ type: 'redis', connection: connection(), lockOptions: { retryCount: -1, retryDelay: 20 } })
    const held = await a.lock('wait', 5000)
    const waiting = b.lock('wait', 150)
    await assert.rejects(a.lock('wait', 1000), notAcquired(0, 'wait'))
    await held.unlock()
    const l = await waiting
    assert.ok(l.fence > held.fence)
    // Not unlocked: the key ends at its ttl, and a waiter gets it then.
    const next = await b.lock('wait', 1000)
    assert.ok(Date.now() >= l.expiration - 5)
    assert.ok(next.fence > l.fence)
    await assert.rejects(l.unlock(), notReleased('wait'))
    await next.unlock()
  })

  test('extend moves the TTL in Redis and resolves a handle whose unlock works', async () => {
    const lock = create({ type: 'redis', connection: connection(), lockOptions: { retryCount: 0 } })
    const l = await lock.lock('ext', 1000)
    assert.ok((await inspector.inspect('ext')).remainingTtl <= 1000)
    const l2 = await l.extend(5000)
    assert.equal(l2, l)
    const { remainingTtl } = await inspector.inspect('ext')
    assert.ok(remainingTtl > 4000 && remainingTtl <= 5000, `${remainingTtl}`)
    assert.ok(l2.expiration - Date.now() > 4000)
    await l2.unlock()
    assert.equal(await inspector.inspect('ext'), null)
  })

  test('extend after expiry: the Redlock message; unlock twice: the second rejects', async () => {
    const lock = create({ type: 'redis', connection: connection(), lockOptions: { retryCount: 0 } })
    const l = await lock.lock('exp', 40)
    await delay(l.expiration - Date.now() + 10)
    await assert.rejects(l.extend(1000), expired('exp'))
    assert.equal(await server.command('EXISTS exp'), ':0')
    const again = await lock.lock('exp', 1000)
    assert.equal(await again.unlock(), undefined)
    await assert.rejects(again.unlock(), notReleased('exp'))
    await assert.rejects(again.extend(1000), expired('exp'))
  })

  test('extend when the key was deleted behind our back rejects with the expiry message', async () => {
    const lock = create({ type: 'redis', connection: connection(), lockOptions: { retryCount: 0 } })
    const l = await lock.lock('gone', 5000)
    assert.equal(await server.command('DEL gone'), ':1')
    await assert.rejects(l.extend(1000), expired('gone'))
  })

  test('destroy releases held locks in Redis and rejects waiting calls', async () => {
    const lock = Lock.create({ type: 'redis', connection: connection(), lockOptions: { retryCount: -1 } })
    const other = create({ type: 'redis', connection: connection(), lockOptions: { retryCount: 0 } })
    await lock.lock('d1', 10_000)
    await lock.lock('d2', 10_000)
    const held = await other.lock('d3', 10_000)
    const waiting = assert.rejects(lock.lock('d3', 1000), { code: 'ERR_CLIENT_CLOSED' })
    await lock.destroy()
    await waiting
    assert.equal(await server.command('EXISTS d1'), ':0')
    assert.equal(await server.command('EXISTS d2'), ':0')
    assert.equal(await server.command('EXISTS d3'), ':1', "another instance's lock stays")
    await lock.destroy()
    await held.unlock()
  })

  test('two processes exclude each other; the child reads LOCK_CONFIG from its environment', async () => {
    const child = spawn(
      process.execPath,
      [
        '-e',
        `
        const Lock = require('ferrolock/leverege')
        const lock = Lock.create({ lockConfig: process.env.LOCK_CONFIG || { type: 'inMemory' }, namespace: 'myApp' })
        lock.lockNs('job', 10000).then((l) => {
          console.log(lock.type + ' ' + l.fence)
          process.stdin.once('data', async () => {
            console.log('unlocking ' + Date.now())
            await l.unlock()
            await lock.destroy()
            process.stdin.destroy()
          })
        }, (err) => { console.error(err); process.exit(1) })
        `,
      ],
      {
        cwd: ROOT,
        env: { ...process.env, LOCK_CONFIG: JSON.stringify({ type: 'redis', connection: server.url }) },
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    )
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
    const exited = bounded(once(child, 'exit'), 'the child to exit')
    exited.catch(() => {}) // awaited below
    const [type, childFence] = (await bounded(lines.next(), "the child's first line")).value.split(' ')
    assert.equal(type, 'redis')
    const lock = create({ type: 'redis', namespace: 'myApp', connection: server.url, lockOptions: { retryCount: 0 } })
    await assert.rejects(lock.lockNs('job', 1000), notAcquired(0, 'myApp:job'))
    const waiter = create({
      type: 'redis',
      namespace: 'myApp',
      connection: server.url,
      lockOptions: { retryCount: -1 },
    })
    const waiting = waiter.lockNs('job', 1000).then((l) => ({ l, at: Date.now() }))
    child.stdin.write('go\n')
    const { l, at } = await waiting
    const unlockingAt = Number((await lines.next()).value.split(' ')[1])
    assert.ok(at >= unlockingAt, 'acquired only once the child unlocked')
    assert.ok(l.fence > BigInt(childFence))
    assert.deepEqual(await exited, [0, null])
    await l.unlock()
  })

  test('a process still on Redlock 4 (string keys) and this Lock exclude each other on the same key', async () => {
    const io = new IORedis({ port: server.port })
    const Redlock = require('redlock4')
    const redlock = new Redlock([io], { retryCount: 0 })
    const lock = create({ type: 'redis', connection: connection(), lockOptions: { retryCount: 1, retryDelay: 10 } })
    try {
      const old = await redlock.lock('mixed', 5000)
      // Redlock's string counts as held: 2 attempts, then Redlock's LockError; never taken.
      await assert.rejects(lock.lock('mixed', 1000), {
        name: 'LockError',
        message: 'Exceeded 1 attempts to lock the resource "mixed".',
        attempts: 2,
      })
      assert.equal(await server.command('GET mixed'), old.value)
      await old.unlock()
      const l = await lock.lock('mixed', 5000)
      await assert.rejects(redlock.lock('mixed', 1000), {
        name: 'LockError',
        message: 'Exceeded 0 attempts to lock the resource "mixed".',
      })
      await l.unlock()
    } finally {
      io.disconnect()
    }
  })

  test('connection: a Redis client object goes to ferrolock as is (ioredis, node_redis 4, node_redis 3)', async () => {
    const io = new IORedis({ port: server.port })
    const r4 = redis4.createClient({ url: server.url })
    await r4.connect()
    const r3 = redis3.createClient({ port: server.port })
    try {
      for (const [name, client, ping] of [
        ['ioredis', io, () => io.ping()],
        ['node_redis 4', r4, () => r4.ping()],
        ['node_redis 3', r3, () => new Promise((resolve, reject) => r3.ping((e, v) => (e ? reject(e) : resolve(v))))],
      ]) {
        const lock = Lock.create({ type: 'redis', connection: client, lockOptions: { retryCount: 0 } })
        const other = create({ type: 'redis', connection: server.url, lockOptions: { retryCount: 0 } })
        const l = await lock.lock(`obj-${name}`, 5000)
        assert.equal((await inspector.inspect(`obj-${name}`)).fence, l.fence, name)
        await assert.rejects(other.lock(`obj-${name}`, 1000), notAcquired(0, `obj-${name}`))
        const ext = await l.extend(5000)
        await ext.unlock()
        assert.equal(await inspector.inspect(`obj-${name}`), null, name)
        await lock.lock(`obj-${name}-held`, 5000)
        await lock.destroy()
        assert.equal(await inspector.inspect(`obj-${name}-held`), null, `${name}: destroy released it`)
        assert.equal(await ping(), 'PONG', `${name}: destroy leaves the caller's client open`)
      }
    } finally {
      io.disconnect()
      await r4.quit()
      r3.quit()
    }
  })
})

describe('redis, several masters (Redlock)', () => {
  let group, inspector
  const open = []
  const create = (options) => {
    const lock = Lock.create(options)
    open.push(lock)
    return lock
  }
  before(async () => {
    group = await startMasters(3)
    inspector = createClient({ redlock: group.urls, keyPrefix: '' })
  })
  after(async () => {
    await Promise.all(open.map((lock) => lock.destroy()))
    await inspector.close()
    await group.stop()
  })

  test('an array of { host, port } or URLs locks on every master; instances exclude each other', async () => {
    const objects = group.masters.map((m) => ({ host: '127.0.0.1', port: m.port }))
    const lockOptions = { driftFactor: 0.01, retryCount: 0, retryDelay: 200, retryJitter: 100 }
    const a = create({ type: 'redis', namespace: 'myApp', connection: objects, lockOptions })
    const b = create({
      namespace: 'myApp',
      lockConfig: JSON.stringify({ type: 'redis', connection: group.urls, lockOptions }),
    })
    const l = await a.lockNs('myKey', 2000)
    // The acquire settles at a quorum (2 of 3); the third master's write may land just after.
    const onMasters = async () => await Promise.all(group.masters.map((m) => m.command('EXISTS myApp:myKey')))
    const started = Date.now()
    let seen = await onMasters()
    assert.ok(seen.filter((x) => x === ':1').length >= 2, `a quorum holds the key (got ${seen})`)
    while (seen.includes(':0') && Date.now() - started < 5000) {
      await new Promise((resolve) => setTimeout(resolve, 10))
      seen = await onMasters()
    }
    assert.deepEqual(seen, [':1', ':1', ':1'], 'every master holds the key within 5 s')
    const info = await inspector.inspect('myApp:myKey')
    assert.equal(info.fence, l.fence)
    await assert.rejects(b.lockNs('myKey', 1000), notAcquired(0, 'myApp:myKey'))
    const l2 = await l.extend(5000)
    assert.ok(l2.expiration - Date.now() > 4000)
    await l2.unlock()
    for (const m of group.masters) assert.equal(await m.command('EXISTS myApp:myKey'), ':0')
    const lb = await b.lockNs('myKey', 1000)
    await lb.unlock()
    await assert.rejects(lb.unlock(), notReleased('myApp:myKey'))
  })

  test("an array of ioredis clients: Redlock through the callers' clients, left open by destroy", async () => {
    const clients = group.masters.map((m) => new IORedis({ port: m.port }))
    try {
      const lock = Lock.create({ type: 'redis', connection: clients, lockOptions: { retryCount: 0 } })
      const other = create({ type: 'redis', connection: group.urls, lockOptions: { retryCount: 0 } })
      const l = await lock.lock('rl-objects', 5000)
      for (const m of group.masters) assert.equal(await m.command('EXISTS rl-objects'), ':1')
      await assert.rejects(other.lock('rl-objects', 1000), notAcquired(0, 'rl-objects'))
      await lock.lock('rl-objects-held', 5000)
      await lock.destroy()
      for (const m of group.masters) assert.equal(await m.command('EXISTS rl-objects-held'), ':0')
      assert.deepEqual(await Promise.all(clients.map((c) => c.ping())), ['PONG', 'PONG', 'PONG'])
      await assert.rejects(l.unlock(), notReleased('rl-objects'))
    } finally {
      for (const c of clients) c.disconnect()
    }
  })

  test('destroy releases on every master', async () => {
    const lock = Lock.create({ type: 'redis', connection: group.urls })
    await lock.lock('rl-destroy', 10_000)
    for (const m of group.masters) assert.equal(await m.command('EXISTS rl-destroy'), ':1')
    await lock.destroy()
    for (const m of group.masters) assert.equal(await m.command('EXISTS rl-destroy'), ':0')
  })
})
