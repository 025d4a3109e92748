// Faults against real redis-server processes: a server that dies and comes back, a lock deleted
// behind its holder's back, a holder whose event loop is blocked, mass cancellation.
import assert from 'node:assert/strict'
import { fork } from 'node:child_process'
import { getEventListeners, once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { after, before, describe, test } from 'node:test'

import Redis from 'ioredis'

import { createClient } from '../index.js'
import { bounded, waitUntil, watchChild } from './support/bounded.mjs'
import { freePort, startRedis } from './support/servers.mjs'

describe('redis faults', () => {
  let server
  before(async () => {
    server = await startRedis()
  })
  after(async () => {
    await server.stop()
  })

  test('a lock deleted behind its holder is reported lost by the next heartbeat', async () => {
    const locks = createClient({ redis: server.url })
    const lock = await locks.acquire('deleted', { ttl: 10_000, refreshInterval: 100 })
    const redis = new Redis(server.url)
    assert.equal(await redis.del('lock:deleted'), 1)
    const [err] = await once(lock, 'lost')
    assert.equal(err.code, 'ERR_LOCK_LOST')
    // Detected by a heartbeat (the store said "not ours"), long before the 10 s lease ran out.
    assert.match(err.message, /deleted or taken by another owner/)
    assert.equal(lock.lost, true)
    assert.equal(lock.signal.aborted, true)
    assert.equal(lock.signal.reason, err)
    assert.equal(await lock.release(), false)
    redis.disconnect()
    await locks.close()
  })

  test('a lost lock with no listeners does not crash the process', async () => {
    const locks = createClient({ redis: server.url })
    const lock = await locks.acquire('unwatched', { ttl: 10_000, refreshInterval: 50 })
    const aborted = once(lock.signal, 'abort') // a listener on the signal, none on the lock
    const redis = new Redis(server.url)
    await redis.del('lock:unwatched')
    await aborted
    assert.equal(lock.listenerCount('lost'), 0)
    assert.equal(lock.lost, true)
    assert.equal(lock.signal.reason.code, 'ERR_LOCK_LOST')
    redis.disconnect()
    await locks.close()
  })

  test('redis killed and restarted: typed errors while down, no double grant, recovery', async () => {
    const srv = await startRedis()
    const holder = createClient({ redis: srv.url })
    const waiter = createClient({ redis: srv.url })
    const lock = await holder.acquire('restart', { ttl: 1500 })
    const errors = []
    lock.on('error', (err) => errors.push(err))
    // (events.once would reject on the 'error' events this test expects)
    const expiring = new Promise((resolve) => lock.once('expiring', resolve))
    const lost = new Promise((resolve) => lock.once('lost', (err) => resolve([err])))
    let waiterGotIt = null
    const waiting = waiter.acquire('restart', { ttl: 5000, retryDelay: 50 }).then((l) => {
      waiterGotIt = { lock: l, holderLost: lock.lost }
      return l
    })
    await waitUntil(() => waiter.stats().pending > 0, 'the waiter to be pending')

    await srv.stop()
    await assert.rejects(waiter.tryAcquire('other'), (err) => {
      assert.equal(err.code, 'ERR_BACKEND_UNAVAILABLE')
      assert.ok(err.cause instanceof Error)
      return true
    })
    await assert.rejects(waiter.acquire('other', { wait: 200 }), { code: 'ERR_BACKEND_UNAVAILABLE' })
    await bounded(expiring, "'expiring' while the server is down")
    const [lostErr] = await bounded(lost, "'lost' while the server is down") // the lease ran out while the server was down
    assert.match(lostErr.message, /lease ran out/)
    assert.ok(errors.length > 0 && errors.every((e) => e.code === 'ERR_BACKEND_UNAVAILABLE'))
    assert.equal(waiterGotIt, null)

    await srv.restart() // empty: no persistence
    const next = await waiting
    assert.equal(waiterGotIt.holderLost, true, 'the old holder was lost before the waiter got the lock')
    // The fence survives the restart without persistence: it is seeded from the server clock.
    assert.ok(next.fence > lock.fence, `${next.fence} > ${lock.fence}`)
    assert.equal(await next.release(), true)
    await holder.close()
    await waiter.close()
    await srv.stop()
  })

  test('a holder whose event loop is blocked past the ttl loses the lock; its fence is stale', async () => {
    const script = fileURLToPath(new URL('./fixtures/blocked-holder.mjs', import.meta.url))
    const child = fork(script, [server.url, 'blocked', '300', '1500'], { stdio: 'inherit' })
    const answer = watchChild(child, 'the blocked holder')
    const messages = []
    let wake = () => {}
    child.on('message', (m) => {
      messages.push(m)
      wake()
    })
    const next = async () => {
      while (!messages.length) await answer(new Promise((resolve) => (wake = resolve)), 'a message')
      return messages.shift()
    }
    const first = await next()
    assert.equal(first.acquired, true)
    const locks = createClient({ redis: server.url })
    const waiting = locks.acquire('blocked', { ttl: 5000, retryDelay: 20 })
    child.send('go')
    const lock = await waiting // granted while the child is still blocked
    const report = await next()
    assert.deepEqual(report, { lost: true, aborted: true, fence: first.fence })
    assert.ok(lock.fence > BigInt(report.fence), 'the new holder has the greater fence')
    assert.equal(lock.lost, false)
    await lock.release()
    await bounded(once(child, 'exit'), 'the blocked holder to exit')
    await locks.close()
  })

  for (const backend of ['memory', 'redis']) {
    test(`${backend}: 10,000 cancelled waiters leave no listeners, timers or subscriptions`, async () => {
      const locks = backend === 'memory' ? createClient() : createClient({ redis: server.url })
      const name = `mass-${backend}`
      const lock = await locks.acquire(name)
      const resourcesBefore = process.getActiveResourcesInfo().length
      const controllers = Array.from({ length: 10_000 }, () => new AbortController())
      const waits = controllers.map((ac) =>
        locks.acquire(name, { signal: ac.signal, retryDelay: 60_000 }).then(
          () => 'acquired',
          (err) => err.code,
        ),
      )
      await waitUntil(() => locks.stats().pending >= 10_000 && locks.stats().watched > 0, '10,000 pending waiters')
      for (const ac of controllers) ac.abort()
      const outcomes = await Promise.all(waits)
      assert.ok(outcomes.every((o) => o === 'ERR_ABORTED'))
      assert.deepEqual(locks.stats(), { pending: 0, held: 1, watched: 0 })
      assert.ok(controllers.every((ac) => getEventListeners(ac.signal, 'abort').length === 0))
      // Nothing is left behind once the settled operations' own handles are gone (on a loaded
      // machine one may still be closing as the last rejection arrives): bounded, and named.
      await waitUntil(
        () => process.getActiveResourcesInfo().length <= resourcesBefore,
        `active resources back to the ${resourcesBefore} there were before the waiters`,
      )
      // Each cancelled waiter leaves the server's queue by a request of its own, which may still be
      // on its way under load: wait (bounded) until the queue is gone.
      if (backend === 'redis') {
        const redis = new Redis(server.url)
        await waitUntil(async () => (await redis.exists(`{lock:${name}}:queue`)) === 0, 'the queue to empty')
        redis.disconnect()
      }
      // The queue is empty again: after the release a single attempt wins at once.
      await lock.release()
      const again = await locks.tryAcquire(name)
      assert.ok(again)
      await locks.close()
      if (backend === 'redis') {
        const redis = new Redis(server.url)
        assert.deepEqual(await redis.keys(`{lock:${name}}:queue`), [])
        redis.disconnect()
      }
    })
  }

  test('an unreachable server gives ERR_BACKEND_UNAVAILABLE without leaking the password', async () => {
    const port = await freePort()
    const locks = createClient({ redis: `redis://user:s3cret-pw@127.0.0.1:${port}` })
    await assert.rejects(locks.tryAcquire('x'), (err) => {
      assert.equal(err.code, 'ERR_BACKEND_UNAVAILABLE')
      assert.ok(!err.message.includes('s3cret-pw') && !String(err.cause).includes('s3cret-pw'))
      return true
    })
    await locks.close()
  })
})
