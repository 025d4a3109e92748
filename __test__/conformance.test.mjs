// The shared conformance suite through the JS API, for every backend.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'

import { AbortedError, ClientClosedError, createClient, LockError, LockNotAcquiredError } from '../index.js'
import { bounded, waitUntil } from './support/bounded.mjs'
import { startCluster, startDynalite, startMasters, startRedis } from './support/servers.mjs'

const require = createRequire(import.meta.url)
const Redis = require('ioredis')
const redis3 = require('redis3')
const redis4 = require('redis4')

// Client objects the caller owns (the transport seam): made per ferrolock client, closed at the end.
function owned() {
  const clients = []
  const add = (c) => (clients.push(c), c)
  const close = async () => {
    for (const c of clients) {
      let v4 // node_redis 4 in legacy mode: the promise API is under `v4` (a getter that throws otherwise)
      try {
        v4 = c.v4
      } catch {}
      if (typeof c.disconnect === 'function' && c.isCluster !== undefined) c.disconnect()
      else if (v4) await v4.quit()
      else if (typeof c.quit === 'function')
        await new Promise((resolve) => Promise.resolve(c.quit(resolve)).then(resolve, resolve))
    }
  }
  return { add, close }
}

let seq = 0
const unique = (p) => `${p}-${process.pid}-${++seq}`

// `push`: a release wakes waiters by itself (DynamoDB has no notifications: waiters poll).
const backends = {
  memory: async () => ({ make: () => createClient(), stop: async () => {}, push: true }),
  // Two clients of one lock directory exclude each other as two processes do.
  file: async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferrolock-conf-'))
    const stop = async () => rmSync(dir, { recursive: true, force: true })
    return { make: () => createClient({ file: dir }), stop, push: true }
  },
  redis: async () => {
    const server = await startRedis()
    return { make: () => createClient({ redis: server.url, keyPrefix: 'conf:' }), stop: server.stop, push: true }
  },
  dynamodb: async () => {
    const server = await startDynalite()
    const make = () => createClient(server.options('conformance'))
    const admin = make()
    assert.deepEqual(await admin.createLockTable(), { table: 'conformance', created: true })
    await admin.close()
    return { make, stop: server.stop, push: false }
  },
  // The same stores, each command through a client object of the caller's (no push: waiters poll).
  'redis via ioredis': async () => {
    const server = await startRedis()
    const mine = owned()
    const make = () => createClient({ redis: mine.add(new Redis(server.port)), keyPrefix: 'conf:' })
    return { make, stop: async () => (await mine.close(), await server.stop()), kind: 'redis' }
  },
  'redis via node_redis 3': async () => {
    const server = await startRedis()
    const mine = owned()
    // Not connected yet: node_redis queues the commands until it is.
    const make = () => createClient({ redis: mine.add(redis3.createClient({ port: server.port })), keyPrefix: 'conf:' })
    return { make, stop: async () => (await mine.close(), await server.stop()), kind: 'redis' }
  },
  'redis via node_redis 4': async () => {
    const server = await startRedis()
    const mine = owned()
    const make = () => {
      const c = mine.add(redis4.createClient({ url: server.url }))
      c.connect()
      return createClient({ redis: c, keyPrefix: 'conf:' })
    }
    return { make, stop: async () => (await mine.close(), await server.stop()), kind: 'redis' }
  },
  'redis via node_redis 4 in legacy mode': async () => {
    const server = await startRedis()
    const mine = owned()
    const make = () => {
      const c = mine.add(redis4.createClient({ url: server.url, legacyMode: true }))
      c.connect()
      return createClient({ redis: c, keyPrefix: 'conf:' })
    }
    return { make, stop: async () => (await mine.close(), await server.stop()), kind: 'redis' }
  },
  'redis-cluster via ioredis Cluster': async () => {
    const cluster = await startCluster()
    const mine = owned()
    const nodes = cluster.urls.map((u) => ({ host: '127.0.0.1', port: Number(new URL(u).port) }))
    const make = () => createClient({ redis: mine.add(new Redis.Cluster(nodes)), keyPrefix: 'conf:' })
    return { make, stop: async () => (await mine.close(), await cluster.stop()), kind: 'redis-cluster' }
  },
  'redlock via ioredis': async () => {
    const masters = await startMasters(3)
    const mine = owned()
    const make = () =>
      createClient({ redlock: masters.masters.map((m) => mine.add(new Redis(m.port))), keyPrefix: 'conf:' })
    return { make, stop: async () => (await mine.close(), await masters.stop()), kind: 'redlock' }
  },
  'redis-cluster': async () => {
    const cluster = await startCluster()
    return { make: () => createClient({ redis: { cluster: cluster.urls }, keyPrefix: 'conf:' }), stop: cluster.stop }
  },
  redlock: async () => {
    const masters = await startMasters(3)
    return { make: () => createClient({ redlock: masters.urls, keyPrefix: 'conf:' }), stop: masters.stop }
  },
}

for (const [backend, setup] of Object.entries(backends)) {
  describe(`conformance: ${backend}`, () => {
    let env, locks, other
    before(async () => {
      env = await setup()
      locks = env.make()
      other = env.make()
    })
    after(async () => {
      await locks.close()
      await other.close()
      await env.stop()
    })

    test('acquire, inspect, tryAcquire, release, fences', async () => {
      assert.equal(locks.backend, env.kind || backend)
      const name = unique('basic')
      const lock = await locks.acquire(name, { ttl: 5000, owner: 'worker-1', data: 'hello' })
      assert.equal(lock.name, name)
      assert.equal(lock.owner, 'worker-1')
      assert.equal(typeof lock.fence, 'bigint')
      assert.match(lock.token, /^[0-9a-f-]{36}$/)
      assert.equal(lock.lost, false)
      assert.ok(lock.expiresAt > Date.now() && lock.expiresAt <= Date.now() + 5000)

      assert.equal(await other.tryAcquire(name), null)
      const info = await other.inspect(name)
      assert.equal(info.owner, 'worker-1')
      assert.equal(info.fence, lock.fence)
      assert.equal(info.data, 'hello')
      assert.ok(info.remainingTtl > 4000 && info.remainingTtl <= 5000, `remainingTtl ${info.remainingTtl}`)

      assert.equal(await lock.release(), true)
      assert.equal(lock.signal.aborted, true)
      assert.equal(await lock.release(), false)
      assert.equal(await other.inspect(name), null)

      const next = await other.tryAcquire(name, { ttl: 1000 })
      assert.ok(next.fence > lock.fence, `${next.fence} > ${lock.fence}`)
      assert.equal(await next.release(), true)
    })

    test('extend sets the lease to ms from now; only the owner can', async () => {
      const name = unique('extend')
      const lock = await locks.acquire(name, { ttl: 1000, autoExtend: false })
      assert.equal(await lock.extend(60_000), true)
      const info = await other.inspect(name)
      assert.ok(info.remainingTtl > 59_000, `remainingTtl ${info.remainingTtl}`)
      assert.equal(await lock.release(), true)
      assert.equal(await lock.extend(1000), false)
      assert.equal(lock.lost, false, 'a released lock is not lost')
    })

    test('events arrive in order: acquired, refreshed, released', async () => {
      const name = unique('events')
      // ttl 1500: a renewal every 500 ms, with a second of slack for a heartbeat on a loaded machine.
      const lock = await locks.acquire(name, { ttl: 1500 })
      const seen = []
      lock.on('acquired', () => seen.push('acquired'))
      // The first renewal, or the loss that stops it (then the order check below names it).
      const renewedOrLost = new Promise((resolve) => {
        lock.on('refreshed', (e) => {
          seen.push(`refreshed:${e.ttl}`)
          resolve()
        })
        lock.on('lost', () => {
          seen.push('lost')
          resolve()
        })
      })
      lock.on('released', () => seen.push('released'))
      await bounded(renewedOrLost, 'the first renewal')
      assert.equal(await lock.release(), true, `events so far: ${seen.join(', ')}`)
      // In order, each once, with as many renewals as happened before the release (at least one).
      const renewals = seen.filter((e) => e === 'refreshed:1500').length
      assert.ok(renewals >= 1, `events: ${seen.join(', ')}`)
      assert.deepEqual(seen, ['acquired', ...Array(renewals).fill('refreshed:1500'), 'released'])
    })

    test('auto-extend keeps the lock across several ttls', async () => {
      const name = unique('auto')
      // ttl 900: a renewal every 300 ms, with 600 ms of slack for a heartbeat on a loaded machine.
      const lock = await locks.acquire(name, { ttl: 900 })
      const lost = once(lock, 'lost').then(([err]) =>
        Promise.reject(new Error(`lost while refreshing: ${err.message}`)),
      )
      lost.catch(() => {}) // raced below; unhandled only if never raced
      let refreshes = 0
      while (refreshes < 7) {
        await Promise.race([once(lock, 'refreshed'), lost])
        refreshes++
      }
      // Seven refreshes at ttl/3 span more than two ttls: still ours.
      assert.equal(lock.lost, false)
      assert.equal(await other.tryAcquire(name), null)
      assert.equal(await lock.release(), true)
    })

    test('a waiter gets the lock once it is released', async () => {
      const name = unique('wake')
      const lock = await locks.acquire(name, { ttl: 30_000 })
      // With push, the fallback poll period is far beyond the test timeout: only the release
      // can wake the waiter. Without, it polls.
      const retryDelay = env.push ? 600_000 : 50
      const waiting = other.acquire(name, { ttl: 5000, retryDelay, retryJitter: 0 })
      await waitUntil(() => other.stats().pending > 0, 'a pending waiter')
      await new Promise((r) => setTimeout(r, 20)) // let it queue and subscribe
      assert.equal(await lock.release(), true)
      const next = await waiting
      assert.ok(next.fence > lock.fence)
      assert.equal(await next.release(), true)
    })

    test('wait deadline, wait: false and maxRetries reject ERR_LOCK_NOT_ACQUIRED', async () => {
      const name = unique('deadline')
      const lock = await locks.acquire(name)
      for (const options of [{ wait: 50 }, { wait: false }, { maxRetries: 2, retryDelay: 5 }]) {
        await assert.rejects(other.acquire(name, options), (err) => {
          assert.ok(err instanceof LockNotAcquiredError)
          assert.ok(err instanceof LockError)
          assert.equal(err.code, 'ERR_LOCK_NOT_ACQUIRED')
          assert.match(err.message, new RegExp(name))
          return true
        })
      }
      await lock.release()
    })

    test('callbacks: every async function takes one and returns undefined', async () => {
      const name = unique('cb')
      const lock = await new Promise((resolve, reject) => {
        const ret = locks.acquire(name, { ttl: 5000 }, (err, l) => (err ? reject(err) : resolve(l)))
        assert.equal(ret, undefined)
      })
      const held = await new Promise((resolve, reject) =>
        other.tryAcquire(name, (err, l) => (err ? reject(err) : resolve(l))),
      )
      assert.equal(held, null)
      const info = await new Promise((resolve, reject) =>
        other.inspect(name, (err, i) => (err ? reject(err) : resolve(i))),
      )
      assert.equal(info.fence, lock.fence)
      const extended = await new Promise((resolve, reject) =>
        lock.extend(2000, (err, ok) => (err ? reject(err) : resolve(ok))),
      )
      assert.equal(extended, true)
      const released = await new Promise((resolve, reject) =>
        lock.release((err, ok) => (err ? reject(err) : resolve(ok))),
      )
      assert.equal(released, true)
      const err = await new Promise((resolve) => other.acquire(name, { ttl: 0 }, resolve))
      assert.equal(err.code, 'ERR_INVALID_ARG')
    })

    test('using: passes (signal, lock), returns the result, always releases', async () => {
      const name = unique('using')
      const result = await locks.using(name, { ttl: 5000 }, async (signal, lock) => {
        assert.equal(signal.aborted, false)
        assert.equal(lock.name, name)
        assert.equal(await other.tryAcquire(name), null)
        return 42
      })
      assert.equal(result, 42)
      assert.equal(await other.inspect(name), null)
      await assert.rejects(
        locks.using(name, async () => {
          throw new Error('boom')
        }),
        /boom/,
      )
      assert.equal(await other.inspect(name), null)
    })

    test('await using releases at the end of the block', async () => {
      const name = unique('dispose')
      const lock = await locks.acquire(name)
      await lock[Symbol.asyncDispose]()
      assert.equal(lock.signal.aborted, true)
      assert.equal(await other.inspect(name), null)
    })

    test('an AbortSignal cancels a wait and leaves nothing behind', async () => {
      const name = unique('abort')
      const lock = await locks.acquire(name)
      const ac = new AbortController()
      const waiting = other.acquire(name, { signal: ac.signal })
      await waitUntil(() => other.stats().pending > 0, 'a pending waiter')
      ac.abort()
      await assert.rejects(waiting, (err) => err instanceof AbortedError && err.code === 'ERR_ABORTED')
      await assert.rejects(other.acquire(name, { signal: ac.signal }), { code: 'ERR_ABORTED' })
      assert.deepEqual(other.stats(), { pending: 0, held: 0, watched: 0 })
      await lock.release()
      // The cancelled waiter left the queue: a single attempt gets the lock at once.
      const next = await other.tryAcquire(name)
      assert.ok(next)
      await next.release()
    })

    test('close releases held locks, rejects waiters, and later calls', async () => {
      const client = env.make()
      const name = unique('close')
      const lock = await client.acquire(name)
      const released = once(lock, 'released')
      const blocker = await other.acquire(unique('close-other'))
      const waiting = client.acquire(blocker.name)
      await waitUntil(() => client.stats().pending > 0, 'a pending waiter')
      const rejected = assert.rejects(
        waiting,
        (err) => err instanceof ClientClosedError && err.code === 'ERR_CLIENT_CLOSED',
      )
      await client.close()
      await released
      await rejected
      assert.equal(await other.inspect(name), null)
      await assert.rejects(client.acquire(name), { code: 'ERR_CLIENT_CLOSED' })
      await assert.rejects(client.inspect(name), { code: 'ERR_CLIENT_CLOSED' })
      await blocker.release()
    })
  })
}
