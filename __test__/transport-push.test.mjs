// Release notifications through the caller's own client object: a waiter whose client is an
// ioredis or node_redis 3 or 4 object is woken by the release's PUBLISH, received on a duplicate()
// of that object (made on the first wait, closed by close()); an object without duplicate()
// still works, its waiters poll.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { performance } from 'node:perf_hooks'
import { after, before, describe, test } from 'node:test'

import { createClient } from '../index.js'
import { bounded, waitUntil, within } from './support/bounded.mjs'
import { startRedis } from './support/servers.mjs'

const require = createRequire(import.meta.url)
const Redis = require('ioredis')
const redis3 = require('redis3')
const redis4 = require('redis4')

// The longest pause between two polls of a waiter (POLL_CAP in crates/core/src/client/attempts.rs),
// whatever its retryDelay: an attempt sooner than this after the previous one was woken.
const POLL_CAP_MS = 1000

let admin // the test's own connection to the server

// Subscribers of `channel` on the server.
const subscribers = async (channel) => Number((await admin.pubsub('NUMSUB', channel))[1])

// Connections the server has, other than the test's own.
async function connections() {
  const list = await admin.client('LIST')
  return list.split('\n').filter((l) => l.includes('id=')).length - 1
}

// Wraps the object's command method (`call` for ioredis, `send_command` for node_redis 3,
// `sendCommand` for node_redis 4) so
// that every script call (an acquire attempt) is recorded with its start and end; returns the
// list and the undo.
function recordAttempts(obj, method) {
  const attempts = []
  const original = obj[method]
  obj[method] = function (...args) {
    const name = String(Array.isArray(args[0]) ? args[0][0] : args[0]).toUpperCase()
    if (name !== 'EVALSHA' && name !== 'EVAL') return original.apply(this, args)
    const attempt = { start: performance.now(), end: null }
    attempts.push(attempt)
    const ended = () => {
      attempt.end = performance.now()
      attempts.onEnd?.()
    }
    const cb = args.at(-1)
    if (typeof cb === 'function') {
      // node_redis 3: answers through the callback.
      args[args.length - 1] = (...answer) => (ended(), cb(...answer))
      return original.apply(this, args)
    }
    return Promise.resolve(original.apply(this, args)).finally(ended)
  }
  return { attempts, undo: () => (obj[method] = original) }
}

// A waiter through `obj` (retryDelay 30 s, capped to one poll a second) and a holder through
// ferrolock's own connection. Released right after one of the waiter's polls ended, so its next
// poll is a second away: an attempt before then can only come from the release's message.
async function handoff(server, obj, method, name, sender = obj) {
  const holder = createClient({ redis: server.url })
  const waiters = createClient({ redis: obj })
  const { attempts, undo } = recordAttempts(sender, method)
  try {
    const held = await holder.acquire(name, { ttl: 60_000 })
    const pending = waiters.acquire(name, { ttl: 5000, wait: 50_000, retryDelay: 30_000, retryJitter: 0 })
    await waitUntil(async () => (await subscribers(`{lock:${name}}:released`)) === 1, 'the subscription')
    const polled = new Promise((resolve) => (attempts.onEnd = resolve))
    await bounded(polled, 'a poll of the waiter', within(POLL_CAP_MS))
    attempts.onEnd = null
    const before = attempts.length
    const lastPoll = attempts[before - 1].end
    assert.equal(await held.release(), true)
    const lock = await bounded(pending, 'the waiter taking the released lock')
    // One attempt after the release, started before the next poll was due: woken by the push.
    assert.equal(attempts.length, before + 1)
    const woken = attempts[before].start - lastPoll
    assert.ok(woken < POLL_CAP_MS, `the attempt after the release came ${woken.toFixed(1)} ms after the last poll`)
    assert.equal(await lock.release(), true)
  } finally {
    undo()
    await waiters.close()
    await holder.close()
  }
}

describe('transport seam: release notifications through the caller’s client', () => {
  let server
  before(async () => {
    server = await startRedis()
    admin = new Redis(server.port)
  })
  after(async () => {
    admin.disconnect()
    await server.stop()
  })

  test('ioredis: a waiter is woken by the release, not by its poll', async () => {
    const io = new Redis(server.port)
    try {
      await handoff(server, io, 'call', 'io-push')
    } finally {
      io.disconnect()
    }
  })

  test('node_redis 4: a waiter is woken by the release, not by its poll', async () => {
    const c = redis4.createClient({ url: server.url })
    await c.connect()
    try {
      await handoff(server, c, 'sendCommand', 'v4-push')
    } finally {
      await c.quit()
    }
  })

  test('node_redis 4 in legacyMode: a waiter is woken by the release, not by its poll', async () => {
    const c = redis4.createClient({ url: server.url, legacyMode: true })
    await c.connect()
    try {
      await handoff(server, c, 'sendCommand', 'v4-legacy-push', c.v4) // commands go through c.v4
    } finally {
      await c.v4.quit()
    }
  })

  test('node_redis 3: a waiter is woken by the release, not by its poll', async () => {
    const c = redis3.createClient({ port: server.port, host: '127.0.0.1' })
    try {
      await handoff(server, c, 'send_command', 'v3-push')
    } finally {
      await new Promise((resolve) => c.quit(() => resolve()))
    }
  })

  test('the duplicate is made on the first wait and closed by close()', async () => {
    const io = new Redis(server.port)
    await io.ping()
    let made = 0
    const duplicate = io.duplicate
    io.duplicate = function (...args) {
      made++
      return duplicate.apply(this, args)
    }
    const holder = createClient({ redis: server.url })
    const held = await holder.acquire('dup-close', { ttl: 60_000 })
    const base = await connections() // the caller's client and the holder's
    const locks = createClient({ redis: io })
    try {
      assert.equal(await locks.tryAcquire('dup-close'), null) // no wait: no subscriber yet
      assert.equal(made, 0)
      const pending = locks.acquire('dup-close', { wait: 50_000, retryDelay: 30_000 })
      await waitUntil(async () => (await subscribers('{lock:dup-close}:released')) === 1, 'subscribed')
      assert.equal(made, 1)
      assert.equal(await connections(), base + 1)
      assert.equal(await held.release(), true)
      const lock = await bounded(pending, 'the waiter taking the lock')
      // A second wait reuses the subscriber.
      const again = await holder.acquire('dup-close-2', { ttl: 60_000 }).then(async (h) => {
        const p = locks.acquire('dup-close-2', { wait: 50_000, retryDelay: 30_000 })
        await waitUntil(async () => (await subscribers('{lock:dup-close-2}:released')) === 1, 'subscribed')
        await h.release()
        return bounded(p, 'the second waiter')
      })
      assert.equal(made, 1)
      await again.release()
      await lock.release()
    } finally {
      await locks.close()
      await holder.close()
    }
    // close() resolves once the subscriber's QUIT was answered; the server drops it right after.
    await waitUntil(async () => (await connections()) === base - 1, 'the duplicate closed', within(1000))
    assert.equal(await io.ping(), 'PONG') // the caller's own client stays open
    io.disconnect()
  })

  test('a duplicate that cannot connect: the waiters poll, it is closed, and none is made again for 2 s', async () => {
    const io = new Redis(server.port)
    const made = [] // { dup, closedAt }
    // A duplicate pointed at a port nobody listens on (ioredis keeps retrying in the background).
    io.duplicate = () => {
      const dup = new Redis({ port: 1, host: '127.0.0.1', retryStrategy: () => 50 })
      const entry = { dup, closedAt: null }
      const disconnect = dup.disconnect
      dup.disconnect = function (...args) {
        entry.closedAt ??= performance.now()
        return disconnect.apply(this, args)
      }
      made.push(entry)
      return dup
    }
    const holder = createClient({ redis: server.url })
    const locks = createClient({ redis: io })
    // One waiter through `locks`, served by polling once the holder releases.
    const round = async (name) => {
      const held = await holder.acquire(name, { ttl: 60_000 })
      const pending = locks.acquire(name, { wait: 50_000, retryDelay: 20 })
      return { held, pending }
    }
    try {
      const first = await round('unreachable-1')
      await waitUntil(() => made.length === 1, 'duplicate 1 asked for')
      assert.equal(await first.held.release(), true)
      assert.equal(await (await bounded(first.pending, 'the polling waiter')).release(), true)
      // The subscription is given up (after a second) and its duplicate closed.
      await waitUntil(() => made[0].closedAt !== null, 'duplicate 1 closed', within(3000))
      // Right after: no new duplicate (a refused SUBSCRIBE would otherwise cost one per wait).
      const second = await round('unreachable-2')
      assert.equal(await second.held.release(), true)
      assert.equal(await (await bounded(second.pending, 'the polling waiter')).release(), true)
      assert.equal(made.length, 1)
      // Once 2 s passed, a wait tries a new one.
      await waitUntil(() => performance.now() > made[0].closedAt + 2100, 'the retry pause over', within(3000))
      const third = await round('unreachable-3')
      await waitUntil(() => made.length === 2, 'duplicate 2 asked for')
      assert.equal(await third.held.release(), true)
      assert.equal(await (await bounded(third.pending, 'the polling waiter')).release(), true)
      await waitUntil(() => made[1].closedAt !== null, 'duplicate 2 closed', within(3000))
    } finally {
      await locks.close()
      await holder.close()
      io.disconnect()
    }
  })

  test('node_redis 4: a duplicate that cannot connect is closed, also by a close() while it connects', async () => {
    const c = redis4.createClient({ url: server.url })
    await c.connect()
    const made = [] // { dup, closed }
    c.duplicate = () => {
      // node_redis 4 retries its first connect for ever: connect() never settles.
      const dup = redis4.createClient({ socket: { host: '127.0.0.1', port: 1, reconnectStrategy: () => 50 } })
      const entry = { dup, closed: false }
      const disconnect = dup.disconnect
      dup.disconnect = function (...args) {
        entry.closed = true
        return disconnect.apply(this, args)
      }
      made.push(entry)
      return dup
    }
    const holder = createClient({ redis: server.url })
    try {
      // Given up after a second: closed, and the waiter polls.
      const locks = createClient({ redis: c })
      const held = await holder.acquire('v4-unreachable', { ttl: 60_000 })
      const pending = locks.acquire('v4-unreachable', { wait: 50_000, retryDelay: 20 })
      await waitUntil(() => made.length === 1, 'duplicate 1 asked for')
      assert.equal(await held.release(), true)
      assert.equal(await (await bounded(pending, 'the polling waiter')).release(), true)
      await waitUntil(() => made[0].closed, 'duplicate 1 closed', within(3000))
      await bounded(locks.close(), 'close()')
      // close() while the duplicate still connects: it settles and closes the duplicate.
      const other = createClient({ redis: c })
      const held2 = await holder.acquire('v4-unreachable-2', { ttl: 60_000 })
      const waiting = other.acquire('v4-unreachable-2', { wait: 50_000, retryDelay: 20 })
      const rejected = waiting.then(
        () => assert.fail('the waiter got the lock'),
        (err) => err,
      )
      await waitUntil(() => made.length === 2, 'duplicate 2 asked for')
      await bounded(other.close(), 'close() while the duplicate connects', within(2000))
      assert.equal(made[1].closed, true)
      assert.equal((await bounded(rejected, 'the waiter rejected by close()')).code, 'ERR_CLIENT_CLOSED')
      await held2.release()
    } finally {
      await holder.close()
      await c.quit()
    }
  })

  test('a duplicate made after one failed subscribes again to the channels the first one had', async () => {
    const io = new Redis(server.port)
    await io.ping()
    let made = 0
    const duplicate = io.duplicate
    io.duplicate = function (...args) {
      made++
      const dup = duplicate.apply(this, args)
      // The first duplicate refuses channels of "refused" names (as a server refusing an ACL
      // user's SUBSCRIBE would); later ones take every channel.
      if (made === 1) {
        const subscribe = dup.subscribe
        dup.subscribe = function (channel, cb) {
          if (String(channel).includes('refused'))
            return cb(new Error('NOPERM this user has no permissions to access one of the channels'))
          return subscribe.call(this, channel, cb)
        }
      }
      return dup
    }
    const holder = createClient({ redis: server.url })
    const locks = createClient({ redis: io })
    const heldA = await holder.acquire('resub-a', { ttl: 60_000 })
    const heldB = await holder.acquire('resub-refused', { ttl: 60_000 })
    const heldC = await holder.acquire('resub-c', { ttl: 60_000 })
    try {
      const a = locks.acquire('resub-a', { wait: 50_000, retryDelay: 30_000 })
      await waitUntil(async () => (await subscribers('{lock:resub-a}:released')) === 1, 'a subscribed')
      // B's subscription fails: the duplicate that carried A's is closed.
      const failedAt = performance.now()
      const b = locks.acquire('resub-refused', { wait: 50_000, retryDelay: 30_000 })
      await waitUntil(async () => (await subscribers('{lock:resub-a}:released')) === 0, 'the first duplicate closed')
      // After the retry pause, the next wait makes a new duplicate, which takes A's channel again.
      await waitUntil(() => performance.now() > failedAt + 2100, 'the retry pause over', within(3000))
      const c = locks.acquire('resub-c', { wait: 50_000, retryDelay: 30_000 })
      await waitUntil(async () => (await subscribers('{lock:resub-c}:released')) === 1, 'c subscribed')
      assert.equal(made, 2)
      assert.equal(await subscribers('{lock:resub-a}:released'), 1)
      for (const held of [heldA, heldB, heldC]) assert.equal(await held.release(), true)
      for (const lock of await bounded(Promise.all([a, b, c]), 'the three waiters'))
        assert.equal(await lock.release(), true)
    } finally {
      await locks.close()
      await holder.close()
      io.disconnect()
    }
  })

  test('an object without duplicate() still works: its waiters poll', async () => {
    const io = new Redis(server.port)
    const plain = { call: (...args) => io.call(...args) }
    const locks = createClient({ redis: plain })
    const { attempts, undo } = recordAttempts(plain, 'call')
    try {
      const held = await locks.acquire('no-dup', { ttl: 60_000 })
      const pending = locks.acquire('no-dup', { wait: 50_000, retryDelay: 20 })
      await waitUntil(() => attempts.length >= 4, 'three polls of the waiter')
      assert.equal(await subscribers('{lock:no-dup}:released'), 0)
      assert.equal(await connections(), 1) // the caller's client only
      assert.equal(await held.release(), true)
      const lock = await bounded(pending, 'the polling waiter')
      assert.equal(await lock.release(), true)
    } finally {
      undo()
      await locks.close()
      io.disconnect()
    }
  })
})
