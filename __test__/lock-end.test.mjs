// How a lock ends, as JS sees it: a release the server never confirmed ends the lock all the
// same, and `lost`, `signal.aborted` and the 'lost' event agree, also for a lock whose lease ran
// out before acquire() resolved.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, test } from 'node:test'

import { createClient } from '../index.js'
import { startProxy } from './support/proxy.mjs'
import { startRedis } from './support/servers.mjs'

let seq = 0
const unique = (p) => `${p}-${process.pid}-${++seq}`

// release() again until the client's connection is back (bounded: 30 s), then its answer.
async function releaseOnceConnected(lock) {
  const deadline = Date.now() + 30_000
  for (;;) {
    try {
      return await lock.release()
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`the second release kept failing: ${err.message}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
}

describe('how a lock ends', () => {
  let server
  before(async () => {
    server = await startRedis()
  })
  after(async () => {
    await server.stop()
  })

  test('a failed release ends the lock for its holder; a second release tries the delete again', async () => {
    const locks = createClient({ redis: server.url })
    const name = unique('unconfirmed')
    const lock = await locks.acquire(name, { ttl: 30_000 })
    const events = []
    lock.on('lost', (err) => events.push(['lost', err.message]))
    lock.on('released', () => events.push(['released']))
    await server.stop()
    await assert.rejects(lock.release(), (err) => err.code === 'ERR_BACKEND_UNAVAILABLE')
    // Over at once: lost, the signal aborted, nothing held, one 'lost' naming why.
    assert.equal(lock.lost, true)
    assert.equal(lock.signal.aborted, true)
    assert.equal(lock.signal.reason.code, 'ERR_LOCK_LOST')
    assert.equal(locks.stats().held, 0)
    assert.equal(events.length, 1)
    assert.match(events[0][1], /release was not confirmed/)

    // The server comes back empty: the second release answers false (the key is gone), with no
    // more events.
    await server.restart()
    const second = await releaseOnceConnected(lock)
    assert.equal(second, false)
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(events.length, 1)
    assert.equal(await lock.release(), false, 'a third release does nothing')
    await locks.close()
  })

  test('a release the server did not confirm, while the key is still ours: a second release deletes it', async () => {
    // The server hangs (a stalled connection) during the first release, the request is lost, and
    // the server answers again with the key intact. The lock auto-extends, as by default: its heartbeat must not make the
    // binding forget it before the second release.
    const proxy = await startProxy(server.port)
    const locks = createClient({ redis: `redis://127.0.0.1:${proxy.port}`, requestTimeout: 500 })
    const other = createClient({ redis: server.url })
    try {
      const name = unique('retry')
      const lock = await locks.acquire(name, { ttl: 30_000 })
      const events = []
      lock.on('lost', () => events.push('lost'))
      lock.on('released', () => events.push('released'))
      proxy.stall()
      await assert.rejects(lock.release(), (err) => err.code === 'ERR_BACKEND_UNAVAILABLE')
      assert.deepEqual(events, ['lost'])
      assert.notEqual(await other.inspect(name), null, 'the key is still there')
      // Drop the stalled request (a stalled proxy would deliver it on pass()), then pass again.
      proxy.cut()
      proxy.pass()
      const second = await releaseOnceConnected(lock)
      assert.equal(second, true, 'the second release deleted our key')
      assert.equal(await other.inspect(name), null)
      assert.deepEqual(events, ['lost'], 'no more events')
    } finally {
      await locks.close()
      await other.close()
      await proxy.close()
    }
  })

  test('a lease that ran out before acquire() resolved: lost and signal agree from the start', async () => {
    const locks = createClient({ redis: server.url })
    const name = unique('late')
    const pending = locks.acquire(name, { ttl: 300 })
    // Block this thread past the lease: the heartbeat cannot get an answer from it.
    const until = Date.now() + 1200
    while (Date.now() < until);
    const lock = await pending
    assert.equal(lock.lost, true, 'lost when first seen')
    assert.equal(lock.signal.aborted, true, 'the signal agrees')
    const seen = []
    lock.on('acquired', () => seen.push('acquired'))
    const [err] = await once(lock, 'lost')
    seen.push('lost')
    assert.equal(err.code, 'ERR_LOCK_LOST')
    assert.deepEqual(seen, ['acquired', 'lost'], 'the events still come, in order, on the next turn')
    assert.equal(locks.stats().held, 0)
    await locks.close()
  })
})
