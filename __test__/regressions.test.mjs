// Regressions found in review: manual extend under auto-extend, an abort right after the call,
// close() with auto-extend off, events after release.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, test } from 'node:test'

import { createClient } from '../index.js'
import { rawCommand, startRedis } from './support/servers.mjs'

describe('regressions (redis)', () => {
  let server, locks, other
  before(async () => {
    server = await startRedis()
    locks = createClient({ redis: server.url })
    other = createClient({ redis: server.url })
  })
  after(async () => {
    await locks.close()
    await other.close()
    await server.stop()
  })

  test("another library's string lock at the key counts as held, and is never touched", async () => {
    // e.g. redlock 4 or exclusive-lock holding `lock:foreign` as a string (was: WRONGTYPE errors).
    assert.equal(await rawCommand(server.port, 'SET lock:foreign theirs PX 60000'), '+OK')
    assert.equal(await locks.tryAcquire('foreign'), null)
    await assert.rejects(locks.acquire('foreign', { wait: 150, retryDelay: 20 }), { code: 'ERR_LOCK_NOT_ACQUIRED' })
    const info = await locks.inspect('foreign')
    assert.equal(info.owner, '')
    assert.equal(info.fence, 0n)
    assert.ok(info.remainingTtl > 50_000, `remaining ${info.remainingTtl}`)
    assert.equal(await rawCommand(server.port, 'GET lock:foreign'), 'theirs')
  })

  test('a manual extend to a longer ttl is what the next heartbeats renew', async () => {
    const lock = await locks.acquire('extend-longer', { ttl: 300 })
    assert.equal(await lock.extend(30_000), true)
    await once(lock, 'refreshed') // the extend's own event
    const [{ ttl }] = await once(lock, 'refreshed') // the next heartbeat
    assert.equal(ttl, 30_000)
    const info = await other.inspect('extend-longer')
    assert.ok(info.remainingTtl > 20_000, `server lease ${info.remainingTtl} ms`)
    await lock.release()
  })

  test('a manual extend to a shorter ttl reschedules the heartbeat', async () => {
    const lock = await locks.acquire('extend-shorter', { ttl: 30_000 })
    assert.equal(await lock.extend(300), true)
    await once(lock, 'refreshed') // the extend's own event
    const [{ ttl }] = await once(lock, 'refreshed') // a heartbeat within 300 ms, not 10 s
    assert.equal(ttl, 300)
    assert.equal(lock.lost, false)
    assert.equal(await other.tryAcquire('extend-shorter'), null)
    await lock.release()
  })

  test('an abort right after acquire() is never missed', async () => {
    const lock = await locks.acquire('abort-now')
    for (let i = 0; i < 50; i++) {
      const ac = new AbortController()
      const waiting = other.acquire('abort-now', { signal: ac.signal, wait: 60_000 })
      ac.abort()
      await assert.rejects(waiting, { code: 'ERR_ABORTED' })
    }
    await lock.release()
  })

  test('close() ends locks without auto-extend too: released, signal aborted', async () => {
    const client = createClient({ redis: server.url })
    const lock = await client.acquire('close-no-extend', { autoExtend: false })
    const released = once(lock, 'released')
    await client.close()
    await released
    assert.equal(lock.signal.aborted, true)
    assert.equal(await other.inspect('close-no-extend'), null)
  })

  test('an acquire whose reply timed out still gets the lock it took', async () => {
    // Writes pause longer than the 3 s response timeout: the first attempt's script runs on the
    // server after the client gave up on it, so the lock is already ours when we retry.
    const srv = await startRedis()
    const client = createClient({ redis: srv.url })
    await client.inspect('warm-up') // connect before the pause
    assert.equal(await srv.command('CLIENT PAUSE 3500 WRITE'), '+OK')
    const lock = await client.acquire('paused', { ttl: 20_000, wait: 8000, retryDelay: 50 })
    const info = await client.inspect('paused')
    assert.equal(info.fence, lock.fence)
    assert.equal(await lock.release(), true)
    assert.equal(await client.inspect('paused'), null)
    await client.close()
    await srv.stop()
  })

  test('using() refuses autoExtend: false', async () => {
    await assert.rejects(
      locks.using('x', { autoExtend: false }, async () => {}),
      { code: 'ERR_INVALID_ARG' },
    )
  })

  test('nothing is emitted after released', async () => {
    const lock = await locks.acquire('after-release', { ttl: 60, refreshInterval: 1 })
    await once(lock, 'refreshed')
    const after = []
    await lock.release()
    lock.on('refreshed', () => after.push('refreshed'))
    await new Promise((resolve) => setTimeout(resolve, 50))
    assert.deepEqual(after, [])
  })
})
