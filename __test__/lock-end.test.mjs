// How a lock ends, as JS sees it: a release the server never confirmed ends the lock all the
// same, and `lost`, `signal.aborted` and the 'lost' event agree, also for a lock whose lease ran
// out before acquire() resolved.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, test } from 'node:test'

import { createClient } from '../index.js'
import { startRedis } from './support/servers.mjs'

let seq = 0
const unique = (p) => `${p}-${process.pid}-${++seq}`

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
    let second
    const deadline = Date.now() + 30_000
    while (second === undefined) {
      try {
        second = await lock.release()
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`the second release kept failing: ${err.message}`)
        await new Promise((resolve) => setTimeout(resolve, 50)) // until the connection is back
      }
    }
    assert.equal(second, false)
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(events.length, 1)
    assert.equal(await lock.release(), false, 'a third release does nothing')
    await locks.close()
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
