// Batched renewals as a holder sees them, against real redis-server processes: in a batch, exactly
// the locks deleted behind their holders emit 'lost' and the rest 'refreshed'; a hung server
// (SIGSTOP) gives 'error' and 'expiring' before 'lost', at the documented times.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, test } from 'node:test'

import Redis from 'ioredis'

import { createClient } from '../index.js'
import { startRedis } from './support/servers.mjs'

/** `promise`, or a failure naming what hung after `ms`. */
function bounded(promise, ms, what) {
  let timer
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)
  })
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer))
}

describe('batched renewals', () => {
  let server
  before(async () => {
    server = await startRedis()
  })
  after(async () => {
    await server.stop()
  })

  test('in one round, exactly the deleted locks emit lost and every other one refreshed', async () => {
    const locks = createClient({ redis: server.url })
    const names = Array.from({ length: 300 }, (_, i) => `round-${i}`)
    const held = await Promise.all(names.map((n) => locks.acquire(n, { ttl: 6000, refreshInterval: 2000 })))
    const gone = names.map((_, i) => i % 3 === 0)
    const redis = new Redis(server.url)
    assert.equal(await redis.del(...names.filter((_, i) => gone[i]).map((n) => `lock:${n}`)), 100)
    const outcomes = held.map((lock, i) => {
      const events = []
      for (const kind of ['refreshed', 'lost', 'expiring']) lock.on(kind, () => events.push(kind))
      // A deleted lock ends with 'lost' (it may have been renewed once before the deletion);
      // the others' first event is 'refreshed'.
      const first = gone[i] ? once(lock, 'lost') : once(lock, 'refreshed')
      return bounded(first, 20_000, `lock ${names[i]}`).then(() => events)
    })
    const seen = await Promise.all(outcomes)
    for (let i = 0; i < names.length; i++) {
      if (gone[i]) {
        assert.equal(seen[i].at(-1), 'lost', names[i])
        assert.ok(
          seen[i].slice(0, -1).every((k) => k === 'refreshed'),
          `${names[i]}: ${seen[i]}`,
        )
        assert.equal(held[i].lost, true)
      } else {
        assert.deepEqual(seen[i], ['refreshed'], names[i])
        assert.equal(held[i].lost, false)
      }
    }
    assert.equal(await redis.dbsize(), 200)
    await locks.close()
    assert.equal(await redis.dbsize(), 0)
    redis.disconnect()
  })

  test('close() releases every held lock in batches; a release() during close() resolves as its delete went', async () => {
    const locks = createClient({ redis: server.url })
    const names = Array.from({ length: 2000 }, (_, i) => `closing-${i}`)
    const held = await Promise.all(names.map((n) => locks.acquire(n, { ttl: 30_000 })))
    const redis = new Redis(server.url)
    assert.equal(await redis.dbsize(), 2000)
    const ends = held.map(() => [])
    held.forEach((lock, i) => {
      lock.on('released', () => ends[i].push('released'))
      lock.on('lost', () => ends[i].push('lost'))
    })
    // One release on its way before close(), one called while close() runs.
    const first = held[0].release()
    const closing = locks.close()
    const second = held[1].release()
    assert.deepEqual(await bounded(Promise.all([first, second, closing]), 20_000, 'close()'), [true, true, undefined])
    assert.equal(await redis.dbsize(), 0)
    for (let i = 0; i < names.length; i++) assert.deepEqual(ends[i], ['released'], names[i])
    assert.ok(held.every((lock) => !lock.lost && lock.signal.aborted))
    redis.disconnect()
  })

  for (const [safeTime, errorAt] of [
    [1500, 1500],
    [undefined, 2000],
  ]) {
    test(`a hung server: error and expiring come before lost (ttl 3000, safeTime ${safeTime ?? 'default'})`, async () => {
      const hung = await startRedis()
      const locks = createClient({ redis: hung.url })
      try {
        const lock = await locks.acquire('hung', { ttl: 3000, ...(safeTime ? { safeTime } : {}) })
        const t0 = Date.now()
        const seen = []
        lock.on('error', (err) => seen.push(['error', Date.now() - t0, err.code]))
        lock.on('expiring', ({ remaining }) => seen.push(['expiring', Date.now() - t0, remaining]))
        lock.on('refreshed', () => seen.push(['refreshed', Date.now() - t0]))
        // Not events.once: it rejects on the 'error' this test expects.
        const lost = new Promise((resolve) => lock.once('lost', resolve)).then((err) =>
          seen.push(['lost', Date.now() - t0, err.code]),
        )
        process.kill(hung.pid, 'SIGSTOP')
        await bounded(lost, 20_000, 'lost on a hung server')
        process.kill(hung.pid, 'SIGCONT')
        // Then an 'error' for each retry that gets no answer, and 'lost' when the lease ends.
        const kinds = seen.map(([kind]) => kind)
        assert.deepEqual(kinds.slice(0, 2), ['error', 'expiring'], JSON.stringify(seen))
        assert.equal(kinds.at(-1), 'lost', JSON.stringify(seen))
        assert.ok(
          kinds.slice(2, -1).every((k) => k === 'error'),
          JSON.stringify(seen),
        )
        const [[, errorMs, code], [, expiringMs, remaining]] = seen
        const [, lostMs, lostCode] = seen.at(-1)
        assert.equal(code, 'ERR_BACKEND_UNAVAILABLE')
        assert.equal(lostCode, 'ERR_LOCK_LOST')
        // t0 is taken after acquire resolved, a little after the lease started.
        assert.ok(errorMs >= errorAt - 100, `error at ${errorMs} ms, expected from ${errorAt}`)
        assert.ok(expiringMs >= errorMs && lostMs > expiringMs, JSON.stringify(seen))
        assert.ok(remaining > 0 && remaining <= 3000 - errorAt, `expiring with ${remaining} ms left`)
        assert.ok(lostMs >= 2900, `lost at ${lostMs} ms, before the lease ended`)
        assert.match(lock.signal.reason.message, /lease ran out/)
      } finally {
        process.kill(hung.pid, 'SIGCONT')
        await locks.close()
        await hung.stop()
      }
    })
  }
})
