// The dist-lock 2.0.1 drop-in (compat/dist-lock.js, docs/compat/dist-lock.md): call shapes and
// messages (checked against the real dist-lock side by side), results, the retry loop, the
// Redis layout, errors of the caller's client, and a mixed fleet of real dist-lock and
// ferrolock processes excluding each other.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { createInterface } from 'node:readline'
import { after, before, describe, test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'

import { bounded, waitUntil } from './support/bounded.mjs'
import { startRedis } from './support/servers.mjs'

const require = createRequire(import.meta.url)
const distLock = require('../compat/dist-lock.js')
const realDistLock = require('dist-lock')
const IORedis = require('ioredis')
const redis012 = require('redis012')
const redis3 = require('redis3')
const redis4 = require('redis4')

const WORKER = new URL('./fixtures/dist-lock-worker.mjs', import.meta.url).pathname
const ID = /^c[0-9a-z]{24}$/
const LOCK_KEYS = ['key', 'id', 'owner', 'release', 'extend', 'acquiredOnAttempt', 'acquireDelay']
const DETAIL_KEYS = ['key', 'id', 'owner', 'release', 'extend']

let server, raw
const closers = []
const children = new Set()

before(async () => {
  server = await startRedis()
  raw = new IORedis(server.port, '127.0.0.1')
})
after(async () => {
  for (const child of children) child.kill('SIGKILL')
  for (const close of closers.reverse()) await close()
  raw.disconnect()
  await server.stop()
})

// ---- helpers ---------------------------------------------------------------------------------

const quit3 = (c) => new Promise((resolve) => c.quit(() => resolve()))
// The client kinds dist-lock users have, each connected to the test server.
const KINDS = {
  'node_redis 0.12': () => {
    const c = redis012.createClient(server.port, '127.0.0.1')
    closers.push(() => quit3(c))
    return c
  },
  'node_redis 3': () => {
    const c = redis3.createClient({ port: server.port, host: '127.0.0.1' })
    closers.push(() => quit3(c))
    return c
  },
  ioredis: () => {
    const c = new IORedis(server.port, '127.0.0.1')
    closers.push(() => c.quit())
    return c
  },
  'node_redis 4': async () => {
    const c = redis4.createClient({ url: server.url })
    await c.connect()
    closers.push(() => c.quit())
    return c
  },
  'node_redis 4 (legacyMode)': async () => {
    const c = redis4.createClient({ url: server.url, legacyMode: true })
    await c.connect()
    closers.push(() => c.v4.quit())
    return c
  },
}

// Runs `fn(cb)`; resolves the callback's arguments. A second call of the callback throws (and
// fails the test as an uncaught exception).
function outcome(fn) {
  return new Promise((resolve) => {
    let calls = 0
    fn((...args) => {
      if (++calls > 1) throw new Error('callback called twice')
      resolve(args)
    })
  })
}
async function ok(fn) {
  const [err, value] = await outcome(fn)
  if (err) throw err
  return value
}
// Like outcome(), and checks the callback did not run before `fn` returned.
async function later(fn) {
  let returned = false
  const result = outcome((cb) => {
    fn((...args) => {
      assert.ok(returned, 'the callback ran before the call returned')
      cb(...args)
    })
    returned = true
  })
  return result
}

const pttl = (key) => raw.pttl(key)
const held = (key, id, ttl = 10_000) => raw.multi().hset(key, 'id', id, 'owner', 'someone').pexpire(key, ttl).exec()

// Records the acquire attempts sent through `client.send_command`: one per distinct lock id in
// a 4-key script (an EVALSHA answered NOSCRIPT is sent again as EVAL with the same id), with the
// time it was first seen. `onReply(id, next)` may run before the reply is delivered.
function watchAttempts(client, onReply) {
  const original = client.send_command
  const attempts = new Map()
  client.send_command = function (name, args, cb) {
    const acquire = /^eval(sha)?$/i.test(name) && String(args[1]) === '4'
    if (!acquire) return original.call(this, name, args, cb)
    const id = args[6]
    if (!attempts.has(id)) attempts.set(id, performance.now())
    const reply = onReply ? (err, value) => onReply(id, () => cb(err, value), err) : cb
    return original.call(this, name, args, reply)
  }
  return { attempts, restore: () => (client.send_command = original) }
}

// What a call does synchronously: thrown error, return value, callback calls so far.
function sync(run) {
  const shown = (v) => (v instanceof Error ? { error: v.constructor.name, message: v.message } : v)
  const calls = []
  const cb = (...args) => {
    calls.push(args.map(shown))
    return 'callback result'
  }
  let threw = null
  let returned
  try {
    returned = run(cb)
  } catch (err) {
    threw = shown(err)
  }
  return { threw, returned, calls }
}

// ---- the module ------------------------------------------------------------------------------

describe('module', () => {
  test("require('ferrolock/dist-lock') is this factory (self-reference)", () => {
    assert.equal(require.resolve('ferrolock/dist-lock'), require.resolve('../compat/dist-lock.js'))
    assert.equal(require('ferrolock/dist-lock'), distLock)
    assert.equal(typeof distLock, 'function')
  })

  test('the factory returns a plain object with the four functions, in order', () => {
    const c = KINDS['node_redis 3']()
    const dl = distLock(c)
    assert.deepEqual(Object.keys(dl), ['acquire', 'getAcquiredLock', 'releaseLock', 'extendLock'])
    assert.equal(Object.getPrototypeOf(dl), Object.prototype)
    for (const fn of Object.values(dl)) assert.equal(typeof fn, 'function')
  })

  test('something that is no Redis client is refused at once', () => {
    const message = 'redisClient must be a Redis client (node_redis or ioredis) with send_command or sendCommand'
    for (const bad of [undefined, null, {}, 'redis://127.0.0.1', { on() {} }]) {
      assert.throws(() => distLock(bad), { name: 'TypeError', message })
    }
  })
})

// ---- options ---------------------------------------------------------------------------------

describe('options', () => {
  let c, old
  before(() => {
    c = KINDS['node_redis 3']()
    old = KINDS['node_redis 3']()
  })

  test('defaults are written into the caller object, as the real dist-lock writes them', () => {
    const given = { keyPrefix: 'app:', ttl: 500 }
    distLock(c, given)
    assert.deepEqual(given, { keyPrefix: 'app:', ttl: 500, retryDelay: 50, maxRetries: -1 })
    assert.deepEqual(Object.keys(given), ['keyPrefix', 'ttl', 'retryDelay', 'maxRetries'])
    for (const shape of [{}, { ttl: 0, maxRetries: 0 }, { retryDelay: null, keyPrefix: '' }, { ttl: undefined }]) {
      const ours = { ...shape }
      const theirs = { ...shape }
      distLock(c, ours)
      realDistLock(old, theirs)
      assert.deepEqual(ours, theirs)
      assert.deepEqual(Object.keys(ours), Object.keys(theirs))
    }
  })

  test('falsy options become a fresh object of defaults (lock: prefix, 30 s ttl)', async () => {
    for (const [i, options] of [undefined, null, 0, '', false].entries()) {
      const lock = await ok((cb) => distLock(c, options).acquire(`falsy-${i}`, cb))
      assert.equal(lock.key, `lock:falsy-${i}`)
      const left = await pttl(lock.key)
      assert.ok(left > 29_000 && left <= 30_000, `pttl ${left}`)
      assert.equal(await ok((cb) => lock.release(cb)), true)
    }
  })

  test('options are read at every call (keyPrefix, ttl)', async () => {
    const options = { keyPrefix: 'first:', ttl: 5000, maxRetries: 0 }
    const dl = distLock(c, options)
    const a = await ok((cb) => dl.acquire('call-time', cb))
    assert.equal(a.key, 'first:call-time')
    options.keyPrefix = 'second:'
    options.ttl = 1500
    const b = await ok((cb) => dl.acquire('call-time', cb))
    assert.equal(b.key, 'second:call-time')
    const left = await pttl('second:call-time')
    assert.ok(left > 1000 && left <= 1500, `pttl ${left}`)
    assert.ok((await pttl('first:call-time')) > 4000)
    // each lock is released under the prefix of the moment: set it back for the first one
    assert.equal(await ok((cb) => b.release(cb)), true)
    options.keyPrefix = 'first:'
    assert.equal(await ok((cb) => a.release(cb)), true)
    assert.equal(await raw.exists('first:call-time', 'second:call-time'), 0)
  })
})

// ---- call shapes, side by side with the real dist-lock ---------------------------------------

describe('call shapes (the same as the real dist-lock, synchronously)', () => {
  const nameError = [[{ error: 'Error', message: 'resourceName is required and must be a string' }]]
  const idError = [[{ error: 'Error', message: 'id is required and must be a string' }]]
  const msError = [[{ error: 'Error', message: 'milliseconds is required and must be a number' }]]
  const ownerError = [[{ error: 'Error', message: 'owner must be a string' }]]
  const noCallback = { error: 'TypeError', message: 'callback is not a function' }
  const calledBack = (calls) => ({ threw: null, returned: 'callback result', calls })
  const throws = { threw: noCallback, returned: undefined, calls: [] }

  const SHAPES = [
    ['acquire(123, cb) throws: the callback is taken as the owner', (d, cb) => d.acquire(123, cb), throws],
    ["acquire(123, 'o', cb)", (d, cb) => d.acquire(123, 'o', cb), calledBack(nameError)],
    ["acquire('', 'o', cb)", (d, cb) => d.acquire('', 'o', cb), calledBack(nameError)],
    ["acquire(['x'], 'o', cb)", (d, cb) => d.acquire(['x'], 'o', cb), calledBack(nameError)],
    ['acquire(null, cb)', (d, cb) => d.acquire(null, cb), throws],
    ["acquire('x')", (d) => d.acquire('x'), throws],
    ["acquire('x', 'o')", (d) => d.acquire('x', 'o'), throws],
    ["acquire('x', 'o', 'not a function')", (d) => d.acquire('x', 'o', 'not a function'), throws],
    ["acquire('x', null, cb)", (d, cb) => d.acquire('x', null, cb), calledBack(ownerError)],
    ["acquire('x', undefined, cb)", (d, cb) => d.acquire('x', undefined, cb), calledBack(ownerError)],
    ["acquire('x', 42, cb)", (d, cb) => d.acquire('x', 42, cb), calledBack(ownerError)],
    ['getAcquiredLock(123, cb)', (d, cb) => d.getAcquiredLock(123, cb), calledBack(nameError)],
    ["getAcquiredLock('', cb)", (d, cb) => d.getAcquiredLock('', cb), calledBack(nameError)],
    ['getAcquiredLock(123)', (d) => d.getAcquiredLock(123), throws],
    ["releaseLock(123, 'id', cb)", (d, cb) => d.releaseLock(123, 'id', cb), calledBack(nameError)],
    ['releaseLock(1, 2, cb): the name first', (d, cb) => d.releaseLock(1, 2, cb), calledBack(nameError)],
    ["releaseLock('x', '', cb)", (d, cb) => d.releaseLock('x', '', cb), calledBack(idError)],
    ["releaseLock('x', 7, cb)", (d, cb) => d.releaseLock('x', 7, cb), calledBack(idError)],
    ["releaseLock('x', undefined, cb)", (d, cb) => d.releaseLock('x', undefined, cb), calledBack(idError)],
    ["extendLock(123, 'id', 100, cb)", (d, cb) => d.extendLock(123, 'id', 100, cb), calledBack(nameError)],
    ["extendLock(5, 5, 'a', cb): the name first", (d, cb) => d.extendLock(5, 5, 'a', cb), calledBack(nameError)],
    ["extendLock('x', null, 100, cb)", (d, cb) => d.extendLock('x', null, 100, cb), calledBack(idError)],
    ["extendLock('x', 'id', 'a', cb): the id first", (d, cb) => d.extendLock('x', '', 'a', cb), calledBack(idError)],
    ..."0 NaN '100' undefined null true".split(' ').map((text) => {
      const ms = { 0: 0, NaN, "'100'": '100', undefined, null: null, true: true }[text]
      return [`extendLock('x', 'id', ${text}, cb)`, (d, cb) => d.extendLock('x', 'id', ms, cb), calledBack(msError)]
    }),
  ]

  let ours, theirs
  before(() => {
    ours = distLock(KINDS['node_redis 3'](), { keyPrefix: 'shapes:' })
    theirs = realDistLock(KINDS['node_redis 3'](), { keyPrefix: 'shapes:' })
  })

  for (const [label, run, expected] of SHAPES) {
    test(label, () => {
      const got = sync((cb) => run(ours, cb))
      assert.deepEqual(got, expected)
      assert.deepEqual(
        got,
        sync((cb) => run(theirs, cb)),
        'the real dist-lock does the same',
      )
    })
  }

  test('errors are plain Error objects; Redis outcomes come later (the callback is asynchronous)', async () => {
    const [err] = await outcome((cb) => ours.acquire(123, 'o', cb))
    assert.equal(Object.getPrototypeOf(err), Error.prototype)
    const [nothing, lock] = await later((done) => ours.acquire('async', done))
    assert.equal(nothing, null)
    assert.deepEqual(await later((done) => lock.extend(1000, done)), [null, true])
    assert.deepEqual(await later((done) => ours.getAcquiredLock('async', done)).then(([e, l]) => [e, l.id]), [
      null,
      lock.id,
    ])
    assert.deepEqual(await later((done) => lock.release(done)), [null, true])
  })
})

// ---- every client kind -----------------------------------------------------------------------

for (const [kind, make] of Object.entries(KINDS)) {
  describe(`through ${kind}`, () => {
    let dl, prefix
    before(async () => {
      prefix = `${kind.replace(/\W+/g, '_')}:`
      dl = distLock(await make(), { keyPrefix: prefix, ttl: 3000, maxRetries: 0 })
    })

    test('acquire: the lock object, the stored hash and its TTL', async () => {
      const lock = await ok((cb) => dl.acquire('res', 'me', cb))
      assert.deepEqual(Reflect.ownKeys(lock), LOCK_KEYS)
      assert.equal(Object.getPrototypeOf(lock), Object.prototype)
      assert.equal(lock.key, `${prefix}res`)
      assert.match(lock.id, ID)
      assert.equal(lock.owner, 'me')
      assert.equal(lock.acquiredOnAttempt, 1)
      assert.equal(lock.acquireDelay, 0)
      assert.deepEqual(await raw.hmget(lock.key, 'id', 'owner'), [lock.id, 'me'])
      const left = await pttl(lock.key)
      assert.ok(left > 2000 && left <= 3000, `pttl ${left}`)

      assert.deepEqual(await outcome((cb) => dl.acquire('res', 'other', cb)), [null, false])

      const details = await ok((cb) => dl.getAcquiredLock('res', cb))
      assert.deepEqual(Reflect.ownKeys(details), DETAIL_KEYS)
      assert.deepEqual([details.key, details.id, details.owner], [lock.key, lock.id, 'me'])

      // extend sets the TTL to ms from now: above the ttl, then below what was left
      assert.deepEqual(await outcome((cb) => lock.extend(8000, cb)), [null, true])
      assert.ok((await pttl(lock.key)) > 7000 && (await pttl(lock.key)) <= 8000)
      assert.deepEqual(await outcome((cb) => details.extend(900, cb)), [null, true])
      assert.ok((await pttl(lock.key)) <= 900)
      assert.deepEqual(await outcome((cb) => dl.extendLock('res', lock.id, 2000, cb)), [null, true])
      assert.ok((await pttl(lock.key)) > 1000)

      assert.deepEqual(await outcome((cb) => lock.release(cb)), [null, true])
      assert.equal(await raw.exists(lock.key), 0)
      assert.deepEqual(await outcome((cb) => dl.getAcquiredLock('res', cb)), [null, null])
      assert.deepEqual(await outcome((cb) => lock.release(cb)), [null, false])
      assert.deepEqual(await outcome((cb) => lock.extend(1000, cb)), [null, false])
      assert.deepEqual(await outcome((cb) => dl.releaseLock('res', lock.id, cb)), [null, false])
    })

    test("no owner: '' (stored too); releaseLock by id", async () => {
      const lock = await ok((cb) => dl.acquire('anonymous', cb))
      assert.equal(lock.owner, '')
      assert.equal(await raw.hget(lock.key, 'owner'), '')
      assert.deepEqual(await outcome((cb) => dl.releaseLock('anonymous', lock.id, cb)), [null, true])
      assert.equal(await raw.exists(lock.key), 0)
    })
  })
}

// ---- the retry loop --------------------------------------------------------------------------

describe('retries', () => {
  let c
  before(() => {
    c = KINDS['node_redis 3']()
  })

  for (const [maxRetries, attempts] of [
    [0, 1],
    [3, 4],
    [-2, 1],
    [-5, 1],
  ]) {
    test(`maxRetries ${maxRetries}: ${attempts} attempt(s), each with a fresh id, ${20} ms apart, then false`, async () => {
      const name = `retries${maxRetries}`
      await held(`lock:${name}`, 'someone-else')
      const watch = watchAttempts(c)
      try {
        const started = performance.now()
        const result = await outcome((cb) => distLock(c, { retryDelay: 20, maxRetries }).acquire(name, 'me', cb))
        assert.deepEqual(result, [null, false])
        assert.equal(watch.attempts.size, attempts)
        const times = [started, ...watch.attempts.values()]
        for (let i = 2; i < times.length; i++) assert.ok(times[i] - times[i - 1] >= 19, 'retryDelay between attempts')
        for (const id of watch.attempts.keys()) assert.match(id, ID)
      } finally {
        watch.restore()
      }
      assert.equal(await raw.hget(`lock:${name}`, 'id'), 'someone-else')
    })
  }

  test('maxRetries -1: until acquired; acquiredOnAttempt and acquireDelay = (attempt - 1) * retryDelay', async () => {
    await held('lock:forever', 'someone-else')
    // the holder lets go once the third attempt was refused
    const watch = watchAttempts(c, (id, deliver) => {
      if (watch.attempts.size === 3) raw.del('lock:forever').then(deliver)
      else deliver()
    })
    try {
      const lock = await ok((cb) => distLock(c, { retryDelay: 15 }).acquire('forever', cb))
      assert.equal(watch.attempts.size, 4)
      assert.equal(lock.acquiredOnAttempt, 4)
      assert.equal(lock.acquireDelay, 45)
      assert.equal(lock.id, [...watch.attempts.keys()][3])
      assert.equal(await raw.hget('lock:forever', 'id'), lock.id)
      assert.equal(await ok((cb) => lock.release(cb)), true)
    } finally {
      watch.restore()
    }
  })

  test('maxRetries and retryDelay are read at call time', async () => {
    await held('lock:later', 'someone-else')
    const options = { retryDelay: 5, maxRetries: 0 }
    const dl = distLock(c, options)
    options.maxRetries = 2
    const watch = watchAttempts(c)
    try {
      assert.deepEqual(await outcome((cb) => dl.acquire('later', cb)), [null, false])
      assert.equal(watch.attempts.size, 3)
    } finally {
      watch.restore()
    }
  })

  test('a Redis error ends the loop at once, with that error', async () => {
    await held('lock:broken', 'someone-else')
    const boom = new Error('connection lost')
    const watch = watchAttempts(c, (id, deliver) => {
      if (watch.attempts.size === 2) c.send_command = (name, args, cb) => process.nextTick(cb, boom)
      deliver()
    })
    try {
      const [err, lock] = await outcome((cb) => distLock(c, { retryDelay: 5 }).acquire('broken', cb))
      assert.equal(err, boom)
      assert.equal(lock, undefined)
    } finally {
      watch.restore()
    }
  })
})

// ---- ttl and milliseconds --------------------------------------------------------------------

describe('ttl and milliseconds Redis would refuse or misuse', () => {
  let c, sent
  before(() => {
    c = KINDS['node_redis 3']()
    const original = c.send_command
    sent = []
    c.send_command = function (name, args, cb) {
      sent.push(name)
      return original.call(this, name, args, cb)
    }
  })

  const refused = async (options, message) => {
    sent.length = 0
    const [err, lock] = await later((cb) => distLock(c, { maxRetries: -1, ...options }).acquire('bad-ttl', 'me', cb))
    assert.equal(Object.getPrototypeOf(err), Error.prototype)
    assert.equal(err.message, message)
    assert.equal(lock, undefined)
    assert.deepEqual(sent, [], 'nothing sent to Redis')
    assert.equal(await raw.exists('lock:bad-ttl'), 0)
  }

  for (const ttl of [1.5, 'abc', '1.5', ' 500', Infinity, NaN, null, true, 1e21]) {
    test(`ttl ${typeof ttl === 'string' ? `'${ttl}'` : ttl}: Redis's own error, nothing written`, () =>
      refused({ ttl }, 'ERR value is not an integer or out of range'))
  }
  for (const ttl of [0, -5, '-5']) {
    test(`ttl ${typeof ttl === 'string' ? `'${ttl}'` : ttl}: an error, nothing written`, () =>
      refused({ ttl }, 'ttl must be a positive integer'))
  }
  test('ttl above the 2^31 - 1 ms the core supports: an error, nothing written', () =>
    refused({ ttl: 2 ** 31 }, 'ttl must be at most 2147483647 (about 24.8 days)'))

  test("a ttl in a string Redis reads as an integer ('700') works, as it did", async () => {
    const lock = await ok((cb) => distLock(c, { ttl: '700' }).acquire('string-ttl', cb))
    const left = await pttl(lock.key)
    assert.ok(left > 0 && left <= 700, `pttl ${left}`)
    assert.equal(await ok((cb) => lock.release(cb)), true)
  })

  test('extend by a non-integer, a negative or a too large number: an error, the lock untouched', async () => {
    const lock = await ok((cb) => distLock(c, { ttl: 5000 }).acquire('bad-extend', cb))
    for (const [ms, message] of [
      [1.5, 'ERR value is not an integer or out of range'],
      [Infinity, 'ERR value is not an integer or out of range'],
      [-1.5, 'ERR value is not an integer or out of range'],
      [-5, 'milliseconds must be a positive integer'],
      [2 ** 31, 'milliseconds must be at most 2147483647 (about 24.8 days)'],
    ]) {
      sent.length = 0
      const [err, result] = await later((cb) => lock.extend(ms, cb))
      assert.equal(err.message, message, `extend(${ms})`)
      assert.equal(Object.getPrototypeOf(err), Error.prototype)
      assert.equal(result, undefined)
      assert.deepEqual(sent, [])
      assert.ok((await pttl(lock.key)) > 4000, 'the lock keeps its TTL')
    }
    assert.equal(await ok((cb) => lock.release(cb)), true)
  })
})

// ---- errors of the caller's client -----------------------------------------------------------

describe("the caller's client fails: its own error object is called back", () => {
  const boom = () => Object.assign(new Error('READONLY You can not write against a read only replica.'), { x: 1 })

  for (const [kind, method] of [
    ['node_redis 3', 'send_command'],
    ['ioredis', 'send_command'],
    ['node_redis 4', 'sendCommand'],
  ]) {
    test(`${kind}: ${method} fails`, async () => {
      const c = await KINDS[kind]()
      const dl = distLock(c, { keyPrefix: `fail-${method}:`, maxRetries: -1 })
      const lock = await ok((cb) => dl.acquire('res', cb))
      const err = boom()
      const original = c[method]
      c[method] = method === 'sendCommand' ? () => Promise.reject(err) : (name, args, cb) => setImmediate(cb, err)
      try {
        for (const call of [
          (cb) => dl.acquire('other', cb),
          (cb) => lock.release(cb),
          (cb) => lock.extend(1000, cb),
          (cb) => dl.releaseLock('res', lock.id, cb),
          (cb) => dl.extendLock('res', lock.id, 1000, cb),
        ]) {
          const [got, value] = await outcome(call)
          assert.equal(got, err)
          assert.equal(value, undefined)
        }
      } finally {
        c[method] = original
      }
      assert.equal(await ok((cb) => lock.release(cb)), true)
    })
  }

  test('a client that never answers: a typed error after 10 s (dist-lock waited forever)', async () => {
    const c = KINDS['node_redis 3']()
    const dl = distLock(c, { keyPrefix: 'hung:' })
    const unanswered = [] // kept, as a real client keeps the callbacks it has not called yet
    c.send_command = (name, args, cb) => unanswered.push(cb)
    const started = performance.now()
    const [err, lock] = await outcome((cb) => dl.acquire('res', cb))
    assert.ok(performance.now() - started >= 9900)
    assert.equal(unanswered.length, 1)
    assert.equal(err.name, 'BackendUnavailableError')
    assert.equal(err.code, 'ERR_BACKEND_UNAVAILABLE')
    assert.match(err.message, /the client object did not answer in time/)
    assert.equal(lock, undefined)
  })

  test('a client calling back a string: that string', async () => {
    const c = KINDS['node_redis 3']()
    c.send_command = (name, args, cb) => setImmediate(cb, 'ERR as a string')
    assert.deepEqual(await outcome((cb) => distLock(c).acquire('res', cb)), ['ERR as a string'])
  })

  test('getAcquiredLock: the error of hmget (callback) or hmGet (node_redis 4)', async () => {
    const c3 = KINDS['node_redis 3']()
    const err3 = boom()
    c3.hmget = (key, a, b, cb) => setImmediate(cb, err3)
    const [got3] = await outcome((cb) => distLock(c3).getAcquiredLock('x', cb))
    assert.equal(got3, err3)
    const c4 = await KINDS['node_redis 4']()
    const err4 = boom()
    c4.hmGet = () => Promise.reject(err4)
    const [got] = await outcome((cb) => distLock(c4).getAcquiredLock('x', cb))
    assert.equal(got, err4)
  })
})

// ---- other holders, expiry -------------------------------------------------------------------

describe('other holders and expiry', () => {
  let c, dl, old
  before(() => {
    c = KINDS['node_redis 3']()
    dl = distLock(c, { keyPrefix: 'others:', maxRetries: 0 })
    old = realDistLock(KINDS['node_redis 3'](), { keyPrefix: 'others:', ttl: 20_000, maxRetries: 0 })
  })

  test("releaseLock/extendLock with another holder's id: false, the lock intact", async () => {
    const theirs = await ok((cb) => old.acquire('res', 'old-process', cb))
    const mine = await ok((cb) => dl.acquire('mine', cb))
    assert.deepEqual(await outcome((cb) => dl.acquire('res', cb)), [null, false])
    assert.deepEqual(await outcome((cb) => dl.releaseLock('res', mine.id, cb)), [null, false])
    assert.deepEqual(await outcome((cb) => dl.extendLock('res', mine.id, 100_000, cb)), [null, false])
    assert.deepEqual(await raw.hmget('others:res', 'id', 'owner'), [theirs.id, 'old-process'])
    const left = await pttl('others:res')
    assert.ok(left > 15_000 && left <= 20_000, `pttl ${left}`)
    // anyone who knows the id may release it (documented, as in dist-lock)
    const details = await ok((cb) => dl.getAcquiredLock('res', cb))
    assert.deepEqual([details.id, details.owner], [theirs.id, 'old-process'])
    assert.deepEqual(await outcome((cb) => details.release(cb)), [null, true])
    assert.deepEqual(await outcome((cb) => theirs.release(cb)), [null, false])
    assert.equal(await ok((cb) => mine.release(cb)), true)
  })

  test('an expired lock: release and extend answer false, acquire succeeds at once', async () => {
    const lock = await ok((cb) => distLock(c, { ttl: 30, maxRetries: 0 }).acquire('expiring', cb))
    await waitUntil(async () => !(await raw.exists(lock.key)), 'the key to expire')
    assert.deepEqual(await outcome((cb) => lock.extend(1000, cb)), [null, false])
    assert.deepEqual(await outcome((cb) => lock.release(cb)), [null, false])
    const next = await ok((cb) => distLock(c, { maxRetries: 0 }).acquire('expiring', cb))
    assert.equal(next.acquiredOnAttempt, 1)
    assert.equal(await ok((cb) => next.release(cb)), true)
  })
})

// ---- optional callbacks ----------------------------------------------------------------------

describe('release and extend without a callback (the README example crashed dist-lock)', () => {
  let c, dl
  before(() => {
    c = KINDS['node_redis 3']()
    dl = distLock(c, { keyPrefix: 'nocb:', maxRetries: 0 })
  })

  // The reply to the next command of `c` whose name matches.
  const nextReply = (pattern) =>
    new Promise((resolve) => {
      const original = c.send_command
      c.send_command = function (name, args, cb) {
        if (!pattern.test(name)) return original.call(this, name, args, cb)
        return original.call(this, name, args, (err, reply) => {
          if (err && /NOSCRIPT/.test(err.message)) return cb(err)
          c.send_command = original
          cb(err, reply)
          setImmediate(resolve, [err, reply])
        })
      }
    })

  test('lock.extend(ms) and lock.release() work and return undefined', async () => {
    const lock = await ok((cb) => dl.acquire('res', cb))
    let reply = nextReply(/^eval/i)
    assert.equal(lock.extend(60_000), undefined)
    assert.deepEqual(await reply, [null, 1])
    assert.ok((await pttl(lock.key)) > 50_000)
    reply = nextReply(/^eval/i)
    assert.equal(lock.release(), undefined)
    assert.deepEqual(await reply, [null, 1])
    assert.equal(await raw.exists(lock.key), 0)
    reply = nextReply(/^eval/i)
    assert.equal(dl.releaseLock('res', lock.id), undefined) // false is no error: no warning
    assert.deepEqual(await reply, [null, 0])
  })

  test('errors without a callback become process warnings (the same error object)', async () => {
    const lock = await ok((cb) => dl.acquire('warn', cb))
    const err = new Error('socket closed')
    const original = c.send_command
    // node prints warnings through a listener of its own: keep the test output quiet
    const printers = process.listeners('warning')
    process.removeAllListeners('warning')
    c.send_command = (name, args, cb) => setImmediate(cb, err)
    try {
      const warned = once(process, 'warning')
      assert.equal(lock.release(), undefined)
      assert.equal((await warned)[0], err)
      c.send_command = original
      for (const [call, message] of [
        [() => dl.releaseLock(123, 'id'), 'resourceName is required and must be a string'],
        [() => dl.releaseLock('warn', ''), 'id is required and must be a string'],
        [() => lock.extend(), 'milliseconds is required and must be a number'],
        [() => lock.extend(-1), 'milliseconds must be a positive integer'],
      ]) {
        const warned = once(process, 'warning')
        assert.equal(call(), undefined)
        assert.equal((await warned)[0].message, message)
      }
    } finally {
      c.send_command = original
      for (const printer of printers) process.on('warning', printer)
    }
    assert.equal(await ok((cb) => lock.release(cb)), true)
  })

  test('a callback that is given but is not a function throws a TypeError at once', () => {
    const noCallback = { name: 'TypeError', message: 'callback is not a function' }
    assert.throws(() => dl.releaseLock('res', 'id', 'nope'), noCallback)
    assert.throws(() => dl.extendLock('res', 'id', 100, {}), noCallback)
    assert.throws(() => dl.getAcquiredLock('res'), noCallback)
  })
})

// ---- the client object -----------------------------------------------------------------------

describe('the client object', () => {
  test("one 'error' listener per client object, however many factories; no 'connect' listener", async () => {
    for (const make of [KINDS['node_redis 3'], KINDS.ioredis, KINDS['node_redis 4']]) {
      const c = await make()
      const errors = c.listenerCount('error')
      const connects = c.listenerCount('connect')
      for (let i = 0; i < 3; i++) distLock(c, {})
      assert.equal(c.listenerCount('error'), errors + 1)
      assert.equal(c.listenerCount('connect'), connects)
    }
    // like dist-lock, a client with no handler of its own does not crash on an 'error' event
    const c = redis3.createClient({ port: server.port, host: '127.0.0.1' })
    closers.push(() => quit3(c))
    assert.equal(c.listenerCount('error'), 0)
    distLock(c)
    assert.doesNotThrow(() => c.emit('error', new Error('ECONNRESET')))
  })

  test('a node_redis 3 client still connecting: commands are queued by the client', async () => {
    const c = redis3.createClient({ port: server.port, host: '127.0.0.1' })
    closers.push(() => quit3(c))
    assert.equal(c.connected, false)
    const dl = distLock(c, { keyPrefix: 'early:' })
    const lock = await ok((cb) => dl.acquire('res', 'early', cb))
    assert.equal(await raw.hget('early:res', 'id'), lock.id)
    assert.equal(await ok((cb) => lock.release(cb)), true)
  })

  test('an object with only send_command and hmget (no on) works; methods are looked up at call time', async () => {
    const c = KINDS['node_redis 3']()
    const calls = []
    const facade = {
      send_command: (name, args, cb) => c.send_command(name, args, cb),
      hmget: (...args) => c.hmget(...args),
    }
    const dl = distLock(facade, { keyPrefix: 'facade:' })
    const lock = await ok((cb) => dl.acquire('res', cb))
    facade.send_command = (name, args, cb) => {
      calls.push(name)
      c.send_command(name, args, cb)
    }
    assert.equal((await ok((cb) => dl.getAcquiredLock('res', cb))).id, lock.id)
    assert.equal(await ok((cb) => lock.release(cb)), true)
    assert.ok(calls.length > 0 && calls.every((name) => /^eval/i.test(name)))
  })

  test('ids: 25 characters, c and lowercase base36, all different', async () => {
    const dl = distLock(KINDS['node_redis 3'](), { keyPrefix: 'ids:' })
    const ids = new Set()
    for (let i = 0; i < 40; i++) {
      const lock = await ok((cb) => dl.acquire('res', cb))
      assert.match(lock.id, ID)
      ids.add(lock.id)
      assert.equal(await ok((cb) => lock.release(cb)), true)
    }
    assert.equal(ids.size, 40)
  })
})

// ---- a mixed fleet ---------------------------------------------------------------------------

function worker(args) {
  const child = spawn(process.execPath, [WORKER, ...args], { stdio: ['pipe', 'pipe', 'inherit'] })
  children.add(child)
  child.on('exit', () => children.delete(child))
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const next = async () => {
    const { value, done } = await bounded(lines.next(), `worker ${args.join(' ')}: a line`)
    if (done) throw new Error(`worker ${args.join(' ')} ended`)
    return value
  }
  return {
    child,
    next,
    send: (line) => child.stdin.write(`${line}\n`),
    ask: async (line) => {
      child.stdin.write(`${line}\n`)
      return JSON.parse(await next())
    },
  }
}

const IMPLS = { new: distLock, old: realDistLock }

for (const [here, there] of [
  ['new', 'old'],
  ['old', 'new'],
]) {
  const label = { new: 'ferrolock', old: 'the real dist-lock' }
  describe(`mixed fleet: ${label[here]} here, ${label[there]} in other processes`, () => {
    test("each side sees the other's lock as held", async () => {
      const w = worker([there, String(server.port), 'serve'])
      assert.equal(await w.next(), 'ready')
      const name = `seen-${here}`
      const dl = IMPLS[here](KINDS['node_redis 3'](), { ttl: 10_000, maxRetries: 0 })

      const theirs = (await w.ask(`acquire ${name}`)).lock
      assert.match(theirs.id, ID)
      assert.deepEqual(await outcome((cb) => dl.acquire(name, 'here', cb)), [null, false])
      const seen = await ok((cb) => dl.getAcquiredLock(name, cb))
      assert.deepEqual([seen.id, seen.owner], [theirs.id, `${there}-child`])
      assert.deepEqual(await w.ask(`release ${name}`), { released: true })

      const mine = await ok((cb) => dl.acquire(name, 'here', cb))
      assert.deepEqual(await w.ask(`acquire ${name}`), { lock: false })
      assert.deepEqual(await w.ask(`get ${name}`), { lock: { id: mine.id, owner: 'here' } })
      assert.equal(await ok((cb) => mine.release(cb)), true)
      assert.deepEqual(await w.ask(`get ${name}`), { lock: null })
      assert.ok((await w.ask(`acquire ${name}`)).lock)
      assert.deepEqual(await w.ask(`release ${name}`), { released: true })
      w.send('quit')
      await once(w.child, 'exit')
    })

    test('racing over many rounds: never two holders, no lost update', async () => {
      const name = `race-${here}`
      const rounds = 40
      const workers = [worker([there, String(server.port), 'race', name, String(rounds)])]
      workers.push(worker([there, String(server.port), 'race', name, String(rounds)]))
      for (const w of workers) assert.equal(await w.next(), 'ready')
      const c = KINDS['node_redis 3']()
      const dl = IMPLS[here](c, { ttl: 5000, retryDelay: 2, maxRetries: -1 })
      const call = (fn) => ok(fn)

      // This side takes the lock first and keeps it until MONITOR showed both workers asking for
      // it, so each of them has to wait at least once (seen, not left to timing).
      const first = await call((cb) => dl.acquire(name, 'here', cb))
      const monitor = await raw.monitor()
      const asked = new Set()
      monitor.on('monitor', (_, args, source) => {
        if (args.some((a) => String(a).includes(name))) asked.add(source)
      })
      for (const w of workers) w.send('go')
      await waitUntil(() => asked.size >= 2, 'both workers asking for the held lock')
      monitor.disconnect()
      const mine = { intervals: [], waited: 0, releasedFalse: 0 }
      for (let i = 0; i < rounds; i++) {
        const lock = i === 0 ? first : await call((cb) => dl.acquire(name, 'here', cb))
        const start = process.hrtime.bigint()
        if (lock.acquiredOnAttempt > 1) mine.waited++
        const value = Number(await call((cb) => c.get(`${name}:total`, cb)))
        await delay(1)
        await call((cb) => c.set(`${name}:total`, String(value + 1), cb))
        mine.intervals.push([start, process.hrtime.bigint()])
        if (!(await call((cb) => lock.release(cb)))) mine.releasedFalse++
      }
      const theirs = await Promise.all(
        workers.map(async (w) => {
          assert.equal(await w.next(), 'started')
          return JSON.parse(await w.next())
        }),
      )

      assert.equal(Number(await raw.get(`${name}:total`)), rounds * 3, 'no lost update')
      const all = [...mine.intervals, ...theirs.flatMap((r) => r.intervals.map(([a, b]) => [BigInt(a), BigInt(b)]))]
      all.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      for (let i = 1; i < all.length; i++) assert.ok(all[i][0] > all[i - 1][1], 'two holders at once')
      assert.equal(mine.releasedFalse + theirs.reduce((n, r) => n + r.releasedFalse, 0), 0)
      // Both workers waited for the lock this side held first. (That this side waits for theirs
      // is shown without timing by "each side sees the other's lock as held".)
      for (const r of theirs) assert.ok(r.waited > 0, `${label[there]} never waited`)
      await bounded(
        Promise.all(workers.map((w) => (w.child.exitCode === null ? once(w.child, 'exit') : null))),
        'the race workers to exit',
      )
    })
  })
}
