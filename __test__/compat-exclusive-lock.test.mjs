// require('ferrolock/exclusive-lock') is @logdna/exclusive-lock 2.0.0's ExclusiveLock
// (docs/compat/exclusive-lock.md): validation errors, key layout, events, refresh and inspect against a
// real redis-server with ioredis 5 and node_redis 4, and the safety changes of docs/compat/README.md
// section 1 (lost locks, release of a key another instance holds, refresh failures).
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { createRequire } from 'node:module'
import { after, before, describe, test } from 'node:test'
import { setImmediate as tick, setTimeout as delay } from 'node:timers/promises'

import Redis from 'ioredis'

import { rawCommand, startRedis } from './support/servers.mjs'

const require = createRequire(import.meta.url)
const ExclusiveLock = require('ferrolock/exclusive-lock')
const redis3 = require('redis3')
const redis4 = require('redis4')

// A hang (an event that never comes) fails its own test, and the after() hooks stop the servers.
const T = { timeout: 10_000 }
const TTL = 600
const REFRESH = 100
let seq = 0
const uniq = (prefix) => `${prefix}-${++seq}`

// Resolves with the arguments of the next `name` event (events.once would reject on 'error').
const next = (emitter, name) => new Promise((resolve) => emitter.once(name, (...args) => resolve(args)))

// Every event of a lock, in order, as [name, payload].
function record(lock, names = ['acquired', 'refreshed', 'released', 'error']) {
  const events = []
  for (const name of names) lock.on(name, (payload) => events.push([name, payload]))
  return events
}

// A logger that records its calls; `levels` chooses which methods it has.
function recordingLog(levels = ['error', 'warn', 'info', 'debug', 'trace']) {
  const calls = []
  const log = {}
  for (const level of levels) log[level] = (...args) => calls.push([level, ...args])
  return { log, calls }
}

// Replaces obj[name] (as callers' tests do); returns the function that puts it back.
function replace(obj, name, fn) {
  const own = Object.prototype.hasOwnProperty.call(obj, name)
  const old = obj[name]
  obj[name] = fn
  return () => {
    if (own) obj[name] = old
    else delete obj[name]
  }
}

// The client seen through a proxy that records the name of every method called on it.
function counting(client) {
  const calls = []
  const proxy = new Proxy(client, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target)
      if (typeof value !== 'function') return value
      return (...args) => {
        calls.push(prop)
        return value.apply(target, args)
      }
    },
  })
  return { proxy, calls }
}

const fakeConnection = () => ({
  set: async () => 'OK',
  pexpire: async () => 1,
  get: async () => '1',
  del: async () => 1,
})

describe('ExclusiveLock: construction', () => {
  const cache_connection = { set() {} }

  // [label, options, instancePath, message]
  const rows = [
    ['a string', 'opts', '', 'must be object'],
    ['a number', 42, '', 'must be object'],
    ['an array', [], '', 'must be object'],
    ['no options', undefined, '', "must have required property 'name'"],
    ['null options', null, '', "must have required property 'name'"],
    ['no name', { cache_connection }, '', "must have required property 'name'"],
    ['name undefined', { name: undefined, cache_connection }, '', "must have required property 'name'"],
    ['no cache_connection', { name: 'app' }, '', "must have required property 'cache_connection'"],
    [
      'lock_ttl_ms alone',
      { name: 'app', cache_connection, lock_ttl_ms: 5000 },
      '',
      'must have property lock_refresh_ms when property lock_ttl_ms is present',
    ],
    [
      'lock_refresh_ms alone',
      { name: 'app', cache_connection, lock_refresh_ms: 5000 },
      '',
      'must have property lock_ttl_ms when property lock_refresh_ms is present',
    ],
    [
      'lock_refresh_ms undefined',
      { name: 'app', cache_connection, lock_ttl_ms: 5000, lock_refresh_ms: undefined },
      '',
      'must have property lock_refresh_ms when property lock_ttl_ms is present',
    ],
    ['empty name', { name: '', cache_connection }, '/name', 'must NOT have fewer than 1 characters'],
    ['numeric name', { name: 5, cache_connection }, '/name', 'must be string'],
    ['null cache_connection', { name: 'app', cache_connection: null }, '/cache_connection', 'must be object'],
    ['array cache_connection', { name: 'app', cache_connection: [] }, '/cache_connection', 'must be object'],
    ['string log', { name: 'app', cache_connection, log: 'pino' }, '/log', 'must be object'],
    [
      'NaN lock_ttl_ms',
      { name: 'app', cache_connection, lock_ttl_ms: NaN, lock_refresh_ms: 1 },
      '/lock_ttl_ms',
      'must be number',
    ],
    [
      'string lock_ttl_ms',
      { name: 'app', cache_connection, lock_ttl_ms: '3000', lock_refresh_ms: 1 },
      '/lock_ttl_ms',
      'must be number',
    ],
    [
      'Infinity lock_refresh_ms',
      { name: 'app', cache_connection, lock_ttl_ms: 3000, lock_refresh_ms: Infinity },
      '/lock_refresh_ms',
      'must be number',
    ],
    ['numeric lock_contents', { name: 'app', cache_connection, lock_contents: 1 }, '/lock_contents', 'must be string'],
    ['null key_prefix', { name: 'app', cache_connection, key_prefix: null }, '/key_prefix', 'must be string'],
    // order: required before dependencies before properties, properties in declared order
    ['required first', { name: 5, lock_ttl_ms: 1 }, '', "must have required property 'cache_connection'"],
    [
      'dependencies before properties',
      { name: 5, cache_connection, lock_refresh_ms: 1 },
      '',
      'must have property lock_ttl_ms when property lock_refresh_ms is present',
    ],
    [
      'declared order, not insertion order',
      { key_prefix: 1, log: 2, cache_connection: 'redis', name: 'app' },
      '/cache_connection',
      'must be object',
    ],
  ]
  for (const [label, opts, instancePath, message] of rows) {
    test(`schema: ${label} -> ${instancePath || "''"} ${message}`, T, () => {
      assert.throws(
        () => new ExclusiveLock(opts),
        (err) => {
          assert.equal(Object.getPrototypeOf(err), Error.prototype)
          assert.equal(err.message, 'Input validation failed')
          assert.equal(err.code, 'EINVAL')
          assert.deepEqual(err.errors, [{ instancePath, message }])
          assert.deepEqual(Object.keys(err), ['code', 'errors'])
          return true
        },
      )
    })
  }

  test('a schema error is logged with log.error before it is thrown', T, () => {
    const { log, calls } = recordingLog()
    let thrown
    assert.throws(
      () => new ExclusiveLock({ name: '', cache_connection, log }),
      (err) => Boolean((thrown = err)),
    )
    assert.deepEqual(calls, [['error', thrown]])
  })

  test('unknown options are ignored; the other checks follow the schema in order', T, () => {
    assert.equal(new ExclusiveLock({ name: 'app', cache_connection, auto_refresh: false }).name, 'app')
    assert.throws(
      () => new ExclusiveLock({ name: 'app', cache_connection: {} }),
      (err) => {
        assert.equal(err.constructor, TypeError)
        assert.equal(err.message, 'A valid cache_connection to a cache store is required')
        assert.equal(err.code, 'EINVAL')
        assert.equal(err.errors, undefined)
        return true
      },
    )
    assert.throws(
      () => new ExclusiveLock({ name: 'app', cache_connection, lock_ttl_ms: 500, lock_refresh_ms: 100 }),
      (err) => {
        assert.equal(err.constructor, RangeError)
        assert.equal(err.message, 'lock_refresh_ms must be at least 500ms less than lock_ttl_ms')
        assert.equal(err.code, 'EINVAL')
        assert.deepEqual(err.meta, { lock_ttl_ms: 500, lock_refresh_ms: 100, diff: 400 })
        return true
      },
    )
    const exact = new ExclusiveLock({ name: 'app', cache_connection, lock_ttl_ms: 1000, lock_refresh_ms: 500 })
    assert.equal(exact.lock_ttl_ms - exact.lock_refresh_ms, 500)
    const long = new ExclusiveLock({
      name: 'app',
      cache_connection,
      lock_ttl_ms: 2 ** 32,
      lock_refresh_ms: 2 ** 31 - 1,
    })
    assert.equal(long.lock_ttl_ms, 2 ** 32) // only the refresh interval is a timer
  })

  test('non-positive or timer-overflowing timings are refused (RangeError, EINVAL)', T, () => {
    const cases = [
      [600, 0, 'lock_refresh_ms'],
      [600, -50, 'lock_refresh_ms'],
      [-100, -700, 'lock_ttl_ms'],
      [0, -600, 'lock_ttl_ms'],
      [2 ** 31 + 1000, 2 ** 31, 'lock_refresh_ms'], // setInterval would run it every 1 ms
    ]
    const messages = {
      lock_ttl_ms: 'lock_ttl_ms must be a positive number of milliseconds',
      lock_refresh_ms: 'lock_refresh_ms must be a positive number of milliseconds, at most 2147483647',
    }
    for (const [lock_ttl_ms, lock_refresh_ms, option] of cases) {
      assert.throws(
        () => new ExclusiveLock({ name: 'app', cache_connection, lock_ttl_ms, lock_refresh_ms }),
        (err) => {
          assert.equal(err.constructor, RangeError)
          assert.equal(err.message, messages[option])
          assert.equal(err.code, 'EINVAL')
          assert.deepEqual(err.meta, { lock_ttl_ms, lock_refresh_ms })
          return true
        },
      )
    }
  })

  test('callback clients (node_redis 3, node_redis 4 legacyMode) are refused', T, async () => {
    const server = await startRedis()
    const old = redis3.createClient({ port: server.port })
    const legacy = redis4.createClient({ url: server.url, legacyMode: true })
    try {
      for (const client of [old, legacy]) {
        assert.throws(() => new ExclusiveLock({ name: 'app', cache_connection: client }), {
          name: 'TypeError',
          code: 'EINVAL',
          message:
            'cache_connection has the callback API of node_redis <= 3 (or node_redis 4 legacyMode), ' +
            'which is not supported: pass an ioredis client or a node_redis 4+ client',
        })
      }
    } finally {
      await new Promise((resolve) => old.quit(resolve))
      await server.stop()
    }
  })

  test('defaults, properties, toString and the key', T, () => {
    const lock = new ExclusiveLock({ name: 'some deployment "name" with spaces', cache_connection })
    assert.ok(lock instanceof EventEmitter)
    assert.equal(String(lock), '[object ExclusiveLock]')
    assert.equal(Object.prototype.toString.call(lock), '[object ExclusiveLock]')
    assert.equal(lock.cache_connection, cache_connection)
    assert.equal(lock.name, 'some-deployment-name-with-spaces')
    assert.equal(lock.key, 'exclusive-lock:some-deployment-name-with-spaces')
    assert.equal(lock.lock_ttl_ms, 3000)
    assert.equal(lock.lock_refresh_ms, 1000)
    assert.equal(lock.lock_contents, '1')
    assert.equal(lock.acquired, false)
    assert.equal(lock.is_refreshing, false)
    assert.equal(lock.refresh_timer, null)
    // the default logger is a no-op object with the usual levels
    for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace']) {
      assert.equal(typeof lock.log[level], 'function')
      assert.equal(lock.log[level]('x'), undefined)
    }
    const slugged = new ExclusiveLock({ name: '  a--b__c.d  ', key_prefix: 'p q', cache_connection })
    assert.equal(slugged.key, 'p-q:-a-b__c-d-')
    assert.equal(new ExclusiveLock({ name: 'café ünï', cache_connection }).key, 'exclusive-lock:caf-n-')
    const { log } = recordingLog()
    assert.equal(new ExclusiveLock({ name: 'x', cache_connection, log }).log, log)
  })

  test('the schema module is the one in docs/compat/exclusive-lock.md, at both exported paths', T, () => {
    const schemas = require('ferrolock/exclusive-lock/schemas')
    assert.equal(require('ferrolock/lib/schemas/index.js'), schemas)
    assert.equal(require('ferrolock/lib/schemas'), schemas)
    assert.deepEqual(Object.keys(schemas), ['instantiation_options'])
    assert.deepEqual(schemas.instantiation_options, {
      $schema: 'http://json-schema.org/draft-07/schema#',
      type: 'object',
      $id: '#instantiation_options',
      dependencies: { lock_ttl_ms: ['lock_refresh_ms'], lock_refresh_ms: ['lock_ttl_ms'] },
      properties: {
        name: { type: 'string', minLength: 1, description: "The app name to be used in the lock's name" },
        cache_connection: { type: 'object', description: 'A connection to a redis-compatible cache store' },
        log: { type: 'object', description: 'A logger instance such as `pino`. Default is `abstract-logging`.' },
        lock_ttl_ms: {
          type: 'number',
          description: 'Optionally specify a TTL in milliseconds for the lock. Default is 3000',
        },
        lock_refresh_ms: {
          type: 'number',
          description: 'Optionally specify a time in milliseconds for refreshing the lock. Default is 1000',
        },
        lock_contents: {
          type: 'string',
          description: 'Optionally specify the contents of the lock file. Default is "1".',
        },
        key_prefix: { type: 'string', description: 'Optional key prefix for the lock. Default is "exclusive-lock".' },
      },
      required: ['name', 'cache_connection'],
    })
  })
})

describe('ExclusiveLock: stub connections', () => {
  test('any PEXPIRE reply but 0/false is a refresh; a logger without trace is fine', T, async () => {
    const cache_connection = { ...fakeConnection(), pexpire: async () => undefined }
    const { log, calls } = recordingLog(['error', 'warn', 'info'])
    const lock = new ExclusiveLock({ name: 'stub', cache_connection, log, lock_ttl_ms: TTL, lock_refresh_ms: REFRESH })
    const events = record(lock)
    assert.equal(await lock.acquire(), true)
    await next(lock, 'refreshed')
    await lock.release()
    assert.deepEqual(events, [
      ['acquired', 'exclusive-lock:stub'],
      ['refreshed', { key: 'exclusive-lock:stub', lock_ttl_ms: TTL }],
      ['released', 'exclusive-lock:stub'],
    ])
    assert.deepEqual(
      calls.map(([level]) => level),
      ['info', 'info'],
    )
  })

  test('without a get method, release() sends the DEL unchecked', T, async () => {
    const deleted = []
    const cache_connection = { set: async () => 'OK', del: async (key) => deleted.push(key) }
    const lock = new ExclusiveLock({ name: 'no-get', cache_connection })
    assert.equal(await lock.acquire(), true)
    assert.equal(await lock.release(), undefined)
    assert.deepEqual(deleted, ['exclusive-lock:no-get'])
    assert.equal(lock.acquired, false)
  })

  test('concurrent release() calls share one DEL and one released event', T, async () => {
    let dels = 0
    const cache_connection = { ...fakeConnection(), del: async () => ++dels }
    const lock = new ExclusiveLock({ name: 'twice', cache_connection })
    const events = record(lock, ['released'])
    await lock.acquire()
    await Promise.all([lock.release(), lock.release()])
    assert.equal(dels, 1)
    assert.equal(events.length, 1)
    assert.equal(await lock.release(), undefined) // idempotent
    assert.equal(dels, 1)
  })

  test('a set rejection rejects acquire()', T, async () => {
    const boom = new Error('READONLY You cannot write against a read only replica.')
    const lock = new ExclusiveLock({ name: 'ro', cache_connection: { set: async () => Promise.reject(boom) } })
    await assert.rejects(lock.acquire(), (err) => err === boom)
    assert.equal(lock.acquired, false)
    assert.equal(lock.refresh_timer, null)
  })
})

const flavours = [
  {
    label: 'ioredis 5',
    connect: async (url) => new Redis(url),
    quit: (client) => client.quit(),
    pexpire: 'pexpire',
  },
  {
    label: 'node_redis 4',
    connect: (url) => redis4.createClient({ url }).connect(),
    quit: (client) => client.quit(),
    pexpire: 'pExpire',
  },
]

describe('ExclusiveLock against redis-server', () => {
  let server
  const raw = (line) => rawCommand(server.port, line)
  before(async () => {
    server = await startRedis()
  })
  after(async () => {
    await server.stop()
  })

  for (const flavour of flavours) {
    describe(flavour.label, () => {
      let conn, conn2
      const make = (opts = {}) =>
        new ExclusiveLock({
          name: uniq(flavour.label),
          cache_connection: conn,
          lock_ttl_ms: TTL,
          lock_refresh_ms: REFRESH,
          ...opts,
        })
      before(async () => {
        conn = await flavour.connect(server.url)
        conn2 = await flavour.connect(server.url)
      })
      after(async () => {
        await flavour.quit(conn)
        await flavour.quit(conn2)
      })

      test('the stored key and value are byte for byte the original layout, with PX', T, async () => {
        const name = `${flavour.label} some deployment "name" with spaces`
        const lock = make({ name })
        const key = `exclusive-lock:${name.replace(/[\s\W]+/g, '-')}`
        assert.equal(lock.key, key)
        assert.equal(await lock.acquire(), true)
        assert.equal(await raw(`GET ${key}`), '1')
        assert.equal(await raw(`TYPE ${key}`), '+string')
        const pttl = Number((await raw(`PTTL ${key}`)).slice(1))
        assert.ok(pttl > 0 && pttl <= TTL, `pttl ${pttl}`)
        await lock.release()
        assert.equal(await raw(`EXISTS ${key}`), ':0')
      })

      test('two racing instances: exactly one acquires, then the other gets it after the release', T, async () => {
        for (let round = 0; round < 8; round++) {
          const name = uniq('race')
          const a = make({ name, lock_contents: 'a' })
          const b = make({ name, lock_contents: 'b', cache_connection: conn2 })
          const results = await Promise.all([a.acquire(), b.acquire()])
          assert.equal(results.filter(Boolean).length, 1, `round ${round}: ${results}`)
          const [winner, loser] = results[0] ? [a, b] : [b, a]
          assert.equal(loser.acquired, false)
          assert.equal(loser.refresh_timer, null)
          assert.equal(await raw(`GET ${winner.key}`), winner.lock_contents)
          await winner.release()
          assert.equal(await loser.acquire(), true)
          await loser.release()
        }
      })

      test('acquire() while held resolves true and sends no command', T, async () => {
        const { proxy, calls } = counting(conn)
        const { log, calls: logs } = recordingLog()
        const lock = make({ cache_connection: proxy, log })
        assert.equal(await lock.acquire(), true)
        assert.deepEqual(calls, ['set'])
        assert.equal(await lock.acquire(), true)
        assert.deepEqual(calls, ['set'])
        assert.deepEqual(logs.at(-1), ['warn', '%s lock is already acquired', lock.key])
        await lock.release()
        assert.deepEqual(calls, ['set', 'get', 'del'])
        assert.equal(await lock.release(), undefined)
        assert.deepEqual(calls, ['set', 'get', 'del'])
      })

      test('events in order with their payloads; refresh_timer is a live interval while held', T, async () => {
        const lock = make()
        const events = record(lock)
        assert.equal(await lock.acquire(), true)
        assert.equal(lock.refresh_timer.hasRef(), true)
        await next(lock, 'refreshed')
        await next(lock, 'refreshed')
        const released = lock.release()
        assert.equal(lock.refresh_timer, null)
        await released
        const key = lock.key
        assert.deepEqual(events, [
          ['acquired', key],
          ['refreshed', { key, lock_ttl_ms: TTL }],
          ['refreshed', { key, lock_ttl_ms: TTL }],
          ['released', key],
        ])
        assert.equal(lock.acquired, false)
      })

      test('refreshes set the TTL back to lock_ttl_ms and keep the key past its first TTL', T, async () => {
        const lock = make()
        assert.equal(await lock.acquire(), true)
        await raw(`PEXPIRE ${lock.key} 200`) // before the first refresh, 100 ms after acquire
        await next(lock, 'refreshed')
        const pttl = Number((await raw(`PTTL ${lock.key}`)).slice(1))
        assert.ok(pttl > 300 && pttl <= TTL, `pttl ${pttl}`)
        for (let i = 0; i < 8; i++) await next(lock, 'refreshed') // ~800 ms > TTL
        assert.equal(await raw(`GET ${lock.key}`), '1')
        await lock.release()
      })

      test('no refresh is sent while is_refreshing is true', T, async () => {
        let sent = 0
        const lock = make()
        await lock.acquire()
        lock.is_refreshing = true
        const restore = replace(conn, flavour.pexpire, async () => ++sent)
        try {
          await delay(REFRESH * 3.5) // the timer is what is under test
          assert.equal(sent, 0)
          lock.is_refreshing = false
          await next(lock, 'refreshed')
          assert.equal(sent, 1)
        } finally {
          restore()
          await lock.release()
        }
      })

      test('inspect(): null, {lock_ttl_ms, lock_contents}, -1 without TTL; for any holder', T, async () => {
        const name = uniq('inspect')
        const holder = make({ name, lock_contents: 'pod-7' })
        const observer = make({ name, cache_connection: conn2 })
        assert.equal(await observer.inspect(), null)
        await holder.acquire()
        const seen = await observer.inspect()
        assert.equal(observer.acquired, false)
        assert.deepEqual(Object.keys(seen), ['lock_ttl_ms', 'lock_contents'])
        assert.equal(seen.lock_contents, 'pod-7')
        assert.ok(seen.lock_ttl_ms > 0 && seen.lock_ttl_ms <= TTL, `pttl ${seen.lock_ttl_ms}`)
        await holder.release()
        assert.equal(await observer.inspect(), null)
        assert.equal(await raw(`SET ${observer.key} '{"json":true}'`), '+OK')
        assert.deepEqual(await observer.inspect(), { lock_ttl_ms: -1, lock_contents: '{"json":true}' })
        await raw(`DEL ${observer.key}`)
      })

      test('inspect(): exec() resolving null or [] gives undefined fields', T, async () => {
        const lock = make()
        for (const reply of [null, []]) {
          const multi = conn.multi
          const restore = replace(conn, 'multi', (...args) => {
            const m = multi.apply(conn, args)
            m.exec = async () => reply
            return m
          })
          try {
            assert.deepEqual(await lock.inspect(), { lock_ttl_ms: undefined, lock_contents: undefined })
          } finally {
            restore()
          }
        }
      })

      test('inspect() rejects when multi() or exec() fails, or GET fails (logged)', T, async () => {
        const { log, calls } = recordingLog()
        const lock = make({ log })
        const boom = new Error('multi failed')
        let restore = replace(conn, 'multi', () => {
          throw boom
        })
        await assert.rejects(lock.inspect(), (err) => err === boom)
        restore()
        const multi = conn.multi
        const down = new Error('Connection is closed.')
        restore = replace(conn, 'multi', (...args) => {
          const m = multi.apply(conn, args)
          m.exec = () => Promise.reject(down)
          return m
        })
        await assert.rejects(lock.inspect(), (err) => err === down)
        restore()
        await raw(`HSET ${lock.key} f v`)
        await assert.rejects(lock.inspect(), (err) => err.message.startsWith('WRONGTYPE'))
        assert.equal(calls.at(-1)[0], 'error')
        await raw(`DEL ${lock.key}`)
      })

      test('a failing refresh emits error, then releases (the key is deleted)', T, async () => {
        const lock = make()
        const events = record(lock)
        await lock.acquire()
        const boom = new Error('BOOM, something failed')
        const restore = replace(conn, flavour.pexpire, async () => {
          throw boom
        })
        try {
          await next(lock, 'released')
        } finally {
          restore()
        }
        await tick()
        assert.deepEqual(events, [
          ['acquired', lock.key],
          ['error', boom],
          ['released', lock.key],
        ])
        assert.equal(events[1][1], boom)
        assert.equal(lock.acquired, false)
        assert.equal(lock.is_refreshing, false)
        assert.equal(lock.refresh_timer, null)
        assert.equal(await raw(`EXISTS ${lock.key}`), ':0')
      })

      test('a refresh failure calls this.release(), whose rejection is a second error', T, async () => {
        const lock = make()
        const errors = []
        lock.on('error', (err) => errors.push(err))
        await lock.acquire()
        const boom = new Error('refresh failed')
        const nope = new Error('NO DELETE FOR YOU!')
        const restorePexpire = replace(conn, flavour.pexpire, () => Promise.reject(boom))
        const restoreDel = replace(conn, 'del', () => Promise.reject(nope))
        try {
          while (errors.length < 2) await next(lock, 'error')
        } finally {
          restorePexpire()
          restoreDel()
        }
        assert.deepEqual(errors, [boom, nope])
        assert.equal(lock.acquired, false)
        assert.equal(lock.refresh_timer, null)
        await raw(`DEL ${lock.key}`)
      })

      test('a del rejection rejects release(); acquired is false anyway', T, async () => {
        const lock = make()
        const events = record(lock)
        await lock.acquire()
        const nope = new Error('NO DELETE FOR YOU!')
        const restore = replace(conn, 'del', async () => {
          throw nope
        })
        try {
          await assert.rejects(lock.release(), (err) => err === nope)
        } finally {
          restore()
        }
        assert.equal(lock.acquired, false)
        assert.equal(lock.refresh_timer, null)
        assert.deepEqual(
          events.map(([name]) => name),
          ['acquired'],
        )
        await raw(`DEL ${lock.key}`)
      })

      test('PEXPIRE finding no key: error ERR_LOCK_LOST, no DEL, a new holder untouched', T, async () => {
        const name = uniq('lost')
        const a = make({ name, lock_contents: 'A' })
        const events = record(a)
        await a.acquire()
        await raw(`DEL ${a.key}`) // the key expired (e.g. a long pause) or someone deleted it
        const [err] = await next(a, 'error')
        assert.equal(err.code, 'ERR_LOCK_LOST')
        assert.match(err.message, /was lost/)
        assert.equal(a.acquired, false)
        assert.equal(a.refresh_timer, null)
        const b = make({ name, lock_contents: 'B', cache_connection: conn2 })
        assert.equal(await b.acquire(), true)
        assert.equal(await a.release(), undefined)
        await next(b, 'refreshed') // a's timer would have sent PEXPIREs by now
        assert.equal(await raw(`GET ${b.key}`), 'B')
        assert.deepEqual(
          events.filter(([n]) => n !== 'refreshed'),
          [
            ['acquired', a.key],
            ['error', err],
          ],
        )
        assert.equal(events.at(-1)[0], 'error')
        await b.release()
        assert.equal(await raw(`EXISTS ${b.key}`), ':0')
      })

      test('a refresh after another holder took the key: lost, and their key is not renewed', T, async () => {
        const { proxy, calls } = counting(conn)
        const a = make({ lock_contents: 'A', cache_connection: proxy })
        const events = record(a)
        await a.acquire()
        await raw(`SET ${a.key} B PX 3000`) // as if A's key had expired and B had taken it
        const [err] = await next(a, 'error')
        assert.equal(err.code, 'ERR_LOCK_LOST')
        assert.match(err.message, /another instance holds it now/)
        assert.equal(a.acquired, false)
        assert.equal(a.refresh_timer, null)
        assert.ok(!calls.includes(flavour.pexpire), calls.join()) // B's lease was not renewed by A
        assert.equal(await raw(`GET ${a.key}`), 'B')
        const pttl = Number((await raw(`PTTL ${a.key}`)).slice(1))
        assert.ok(pttl > 0 && pttl <= 3000, `pttl ${pttl}`)
        assert.deepEqual(events, [
          ['acquired', a.key],
          ['error', err],
        ])
        await raw(`DEL ${a.key}`)
      })

      test('release() after another holder took the key does not delete it', T, async () => {
        const { proxy, calls } = counting(conn)
        const a = make({ lock_contents: 'A', cache_connection: proxy })
        const events = record(a)
        await a.acquire()
        a.is_refreshing = true // pause the refreshes
        await raw(`SET ${a.key} B PX 5000`) // as if A's key had expired and B had taken it
        assert.equal(await a.release(), undefined)
        assert.equal(await raw(`GET ${a.key}`), 'B')
        assert.deepEqual(calls, ['set', 'get'])
        assert.deepEqual(events, [
          ['acquired', a.key],
          ['released', a.key],
        ])
        assert.equal(a.acquired, false)
        await raw(`DEL ${a.key}`)
        // an expired key: nothing to delete either
        a.is_refreshing = false
        await a.acquire()
        a.is_refreshing = true
        await raw(`DEL ${a.key}`)
        await a.release()
        assert.deepEqual(calls, ['set', 'get', 'set', 'get'])
      })

      test('no error listener: a failing refresh warns, releases and does not crash', T, async () => {
        const { log, calls } = recordingLog()
        const lock = make({ log })
        const warnings = []
        const onWarning = (w) => warnings.push(w)
        process.on('warning', onWarning)
        await lock.acquire()
        const boom = new Error('BOOM, something failed')
        const nope = new Error('NO DELETE FOR YOU!')
        const restorePexpire = replace(conn, flavour.pexpire, () => Promise.reject(boom))
        const restoreDel = replace(conn, 'del', () => Promise.reject(nope))
        try {
          while (warnings.length < 2) await next(process, 'warning')
        } finally {
          restorePexpire()
          restoreDel()
          process.off('warning', onWarning)
        }
        assert.deepEqual(
          warnings.map((w) => [w.name, w.message]),
          [
            ['ExclusiveLockWarning', `exclusive-lock ${lock.key}: BOOM, something failed`],
            ['ExclusiveLockWarning', `exclusive-lock ${lock.key}: NO DELETE FOR YOU!`],
          ],
        )
        const errorLogs = calls.filter(([level]) => level === 'error')
        assert.deepEqual(
          errorLogs.map((c) => c[1].err),
          [boom, nope],
        )
        assert.equal(lock.acquired, false)
        assert.equal(lock.refresh_timer, null)
        await raw(`DEL ${lock.key}`)
      })
    })
  }
})
