// The native boundary: the memory fast path (a free lock taken and released inside the JS call)
// beside waiters that go the long way, results coalesced through the one completion queue, and
// cancellation racing a grant.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { hostname } from 'node:os'
import { after, before, describe, test } from 'node:test'

import { createClient } from '../index.js'
import { bounded, waitUntil } from './support/bounded.mjs'
import { startRedis } from './support/servers.mjs'

const require = createRequire(import.meta.url)
const ops = require('../lib/ops.js')

let seq = 0
const unique = (p) => `${p}-${process.pid}-${++seq}`

describe('memory fast path', () => {
  test('a free lock is granted and released in the call itself: no turn of the event loop', async () => {
    const locks = createClient()
    const name = unique('now')
    let turned = false
    setImmediate(() => (turned = true))
    const lock = await locks.acquire(name, { autoExtend: false })
    assert.equal(await lock.release(), true)
    const again = await locks.tryAcquire(name)
    assert.ok(again)
    assert.equal(await locks.tryAcquire(name), null, 'held: a single attempt answers null at once')
    await again.release()
    assert.equal(turned, false, 'every step settled before the event loop turned')
    await locks.close()
  })

  test('fast-path holders and waiting acquires exclude each other; fences increase; events in order', async () => {
    const locks = createClient()
    const name = unique('mixed')
    let inside = 0
    let overlaps = 0
    const grants = [] // fences in the order the critical sections ran
    const events = []
    const worker = async (w) => {
      for (let i = 0; i < 25; i++) {
        const lock = await locks.acquire(name, { ttl: 10_000, autoExtend: w % 2 === 0 })
        const seen = []
        events.push(seen)
        lock.on('acquired', () => seen.push('acquired'))
        lock.on('released', () => seen.push('released'))
        inside++
        if (inside > 1) overlaps++
        grants.push(lock.fence)
        // Half the holds end in the same turn (the next acquirer may take the fast path), half
        // after a turn of the event loop (the waiters queue and are woken).
        if (i % 2) await new Promise((resolve) => setImmediate(resolve))
        inside--
        assert.equal(await lock.release(), true)
      }
    }
    await Promise.all(Array.from({ length: 8 }, (_, w) => worker(w)))
    assert.equal(overlaps, 0)
    assert.equal(grants.length, 200)
    for (let i = 1; i < grants.length; i++) assert.ok(grants[i] > grants[i - 1], `fence ${i} increases`)
    await new Promise((resolve) => setImmediate(resolve))
    for (const seen of events) assert.deepEqual(seen, ['acquired', 'released'])
    assert.deepEqual(locks.stats(), { pending: 0, held: 0, watched: 0 })
    await locks.close()
  })

  test('options on the fast path reach the core as given, each read once', async () => {
    const locks = createClient()
    const name = unique('packed')
    // Defaults: the client's owner, a heartbeat (a listener of its events), a bigint fence.
    const first = await locks.acquire(name)
    assert.equal(first.owner, `${hostname()}:${process.pid}`)
    assert.equal(typeof first.fence, 'bigint')
    assert.match(first.token, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    assert.equal(ops.counters().listeners, 1, 'autoExtend on by default: its events are listened to')
    // Held: one attempt answers at once, by each of the ways to ask for one.
    assert.equal(await locks.tryAcquire(name, { wait: true }), null)
    await assert.rejects(locks.acquire(name, { wait: false }), { code: 'ERR_LOCK_NOT_ACQUIRED' })
    await assert.rejects(locks.acquire(name, { wait: 0 }), { code: 'ERR_LOCK_NOT_ACQUIRED' })
    await assert.rejects(locks.acquire(name, { wait: 30, retryDelay: 5, retryJitter: 0 }), {
      code: 'ERR_LOCK_NOT_ACQUIRED',
    })
    assert.equal(await first.release(), true)
    // Every option given: owner, data and ttl as inspect reads them; no heartbeat.
    const data = Buffer.from([0, 1, 2, 255])
    const second = await locks.acquire(name, { ttl: 4000, autoExtend: false, owner: 'me', data, maxRetries: 3 })
    assert.equal(second.owner, 'me')
    assert.ok(second.fence > first.fence)
    assert.equal(ops.counters().listeners, 0, 'autoExtend: false: no events to listen to')
    const info = await locks.inspect(name)
    assert.equal(info.owner, 'me')
    assert.deepEqual(info.data, data)
    assert.ok(info.remainingTtl > 2000 && info.remainingTtl <= 4000, `remainingTtl ${info.remainingTtl}`)
    assert.equal(info.fence, second.fence)
    await second.release()
    // safeTime watches a lock without heartbeat: it has events.
    const third = await locks.acquire(name, { ttl: 4000, autoExtend: false, safeTime: 1000, refreshInterval: 500 })
    assert.equal(ops.counters().listeners, 1)
    await third.release()
    // Each option is read once, so a getter that changes its answer cannot slip a value of
    // another type past the shape check; only own keys count.
    let reads = 0
    const tricky = Object.create(
      { ttl: 0 },
      {
        ttl: { enumerable: true, get: () => (reads++ === 0 ? 5000 : 'not a number') },
        autoExtend: { enumerable: true, value: false },
        owner: { enumerable: true, get: () => (reads++ < 2 ? 'x' : 'a\uD800') },
      },
    )
    const fourth = await locks.acquire(name, tricky)
    assert.equal(reads, 2, 'ttl and owner read once each')
    assert.equal(fourth.owner, 'x')
    const remaining = (await locks.inspect(name)).remainingTtl
    assert.ok(remaining > 3000 && remaining <= 5000, `remainingTtl ${remaining}`)
    await fourth.release()
    assert.ok(
      (await locks.acquire(name, Object.create({ ttl: 0 }))).fence > fourth.fence,
      'inherited keys are not options',
    )
    await locks.close()
  })

  test('options of an acquire that must wait are read once too, signal included', async () => {
    const locks = createClient()
    const name = unique('packed-wait')
    const held = await locks.acquire(name, { autoExtend: false })
    const reads = { ttl: 0, owner: 0, signal: 0 }
    const controller = new AbortController()
    const tricky = Object.create(null, {
      ttl: { enumerable: true, get: () => (reads.ttl++ === 0 ? 5000 : 'not a number') },
      owner: { enumerable: true, get: () => (reads.owner++ === 0 ? 'waiter' : 'a\uD800') },
      signal: { enumerable: true, get: () => (reads.signal++, controller.signal) },
      wait: { enumerable: true, value: 10_000 },
    })
    // The lock is held: this acquire goes the waiting way, through the I/O thread.
    const pending = locks.acquire(name, tricky)
    assert.equal(await held.release(), true)
    const lock = await bounded(pending, 'the waiter')
    assert.deepEqual(reads, { ttl: 1, owner: 1, signal: 1 })
    assert.equal(lock.owner, 'waiter')
    const remaining = (await locks.inspect(name)).remainingTtl
    assert.ok(remaining > 3000 && remaining <= 5000, `remainingTtl ${remaining}`)
    await lock.release()
    // A getter that acquires a lock while the options are read: a clear error, not the inner
    // call's options.
    const nested = {
      get ttl() {
        locks.acquire(unique('inner'), { ttl: 1000, autoExtend: false }).then((l) => l.release())
        return 2000
      },
    }
    await assert.rejects(locks.acquire(name, nested), { code: 'ERR_INVALID_ARG', message: /getter/ })
    await locks.close()
  })

  test('a lock released before its first turn still emits acquired, then released, once each', async () => {
    const locks = createClient()
    const lock = await locks.acquire(unique('early'), { autoExtend: false })
    const seen = []
    lock.on('acquired', () => seen.push('acquired')).on('released', () => seen.push('released'))
    await lock.release()
    assert.deepEqual(seen, ['acquired', 'released'])
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepEqual(seen, ['acquired', 'released'])
    assert.equal(lock.signal.aborted, true)
    assert.equal(lock.signal.reason.code, 'ERR_LOCK_RELEASED')
    await locks.close()
  })
})

describe('completion queue', () => {
  let server
  before(async () => {
    server = await startRedis()
  })
  after(async () => {
    await server.stop()
  })

  test('10,000 concurrent operations settle with their own results, coalesced into fewer wake-ups', async () => {
    const locks = createClient({ redis: server.url })
    const names = Array.from({ length: 10_000 }, (_, i) => unique(`c${i}`))
    const before = ops.counters().batches
    const granted = await Promise.all(names.map((n) => locks.tryAcquire(n, { autoExtend: false })))
    const woke = ops.counters().batches - before
    assert.ok(
      granted.every((l, i) => l && l.name === names[i]),
      'each acquire settled with its own lock',
    )
    assert.ok(woke < names.length, `10,000 results came in ${woke} wake-ups`)
    const infos = await Promise.all(names.map((n) => locks.inspect(n)))
    assert.ok(infos.every((info, i) => info && info.fence === granted[i].fence))
    const released = await Promise.all(granted.map((l) => l.release()))
    assert.ok(released.every((ok) => ok === true))
    assert.deepEqual(locks.stats(), { pending: 0, held: 0, watched: 0 })
    assert.equal(ops.counters().pending, 0)
    await locks.close()
  })

  for (const backend of ['memory', 'redis']) {
    test(`${backend}: an abort racing the grant either wins or leaves the lock held, never both or neither`, async () => {
      const locks = backend === 'memory' ? createClient() : createClient({ redis: server.url })
      const name = unique('race')
      let aborted = 0
      let won = 0
      for (let i = 0; i < 100; i++) {
        const holder = await locks.acquire(name, { autoExtend: false })
        const ac = new AbortController()
        const waiting = locks.acquire(name, { signal: ac.signal, autoExtend: false, retryDelay: 5 }).then(
          (lock) => lock,
          (err) => err,
        )
        // Let the waiter reach the store (queued / subscribed), then release and abort at once.
        await waitUntil(() => locks.stats().pending > 0, 'a pending waiter')
        const releasing = holder.release()
        if (i % 2) await new Promise((resolve) => setImmediate(resolve))
        ac.abort()
        await releasing
        const outcome = await waiting
        if (outcome instanceof Error) {
          assert.equal(outcome.code, 'ERR_ABORTED')
          aborted++
          assert.equal(locks.stats().held, 0, 'an aborted waiter holds nothing')
        } else {
          won++
          assert.equal(locks.stats().held, 1)
          assert.equal(await outcome.release(), true)
        }
        assert.equal(locks.stats().pending, 0)
      }
      assert.equal(aborted + won, 100)
      // Nothing is left behind: the name is free for a single attempt.
      const last = await locks.tryAcquire(name, { autoExtend: false })
      assert.ok(last)
      await last.release()
      await locks.close()
    })
  }
})
