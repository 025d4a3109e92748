// Failures under the Redis Cluster and Redlock backends, through the JS API: masters that die,
// come back empty or stall behind a proxy, and a cluster master killed under a holder and a waiter.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, test } from 'node:test'

import Redis from 'ioredis'

import { createClient } from '../index.js'
import { bounded, waitUntil } from './support/bounded.mjs'
import { startCluster, startMasters, startStallProxy } from './support/servers.mjs'

const exists = async (url, key) => {
  const redis = new Redis(url)
  try {
    return await redis.exists(key)
  } finally {
    redis.disconnect()
  }
}

describe('redlock faults', () => {
  test('one of three masters down: locks are still granted and exclusive', async () => {
    const { masters, urls, stop } = await startMasters(3)
    const locks = createClient({ redlock: urls })
    const other = createClient({ redlock: urls })
    try {
      await masters[0].stop()
      const lock = await locks.acquire('one-down', { ttl: 5000 })
      assert.equal(typeof lock.fence, 'bigint')
      assert.equal(await other.tryAcquire('one-down'), null)
      assert.equal((await other.inspect('one-down')).fence, lock.fence)
      assert.equal(await lock.release(), true)
      assert.equal(await exists(urls[1], 'lock:one-down'), 0)
    } finally {
      await locks.close()
      await other.close()
      await stop()
    }
  })

  test('two of three masters down: ERR_BACKEND_UNAVAILABLE at the deadline, nothing left behind', async () => {
    const { masters, urls, stop } = await startMasters(3)
    const locks = createClient({ redlock: urls, requestTimeout: 200 })
    try {
      await masters[0].stop()
      await masters[1].stop()
      const started = Date.now()
      await assert.rejects(locks.acquire('two-down', { wait: 300, retryDelay: 20 }), (err) => {
        assert.equal(err.code, 'ERR_BACKEND_UNAVAILABLE')
        assert.match(err.message, /only 1 of 3 masters answered \(a majority of 2 is needed\)/)
        return true
      })
      assert.ok(Date.now() - started >= 300)
      await assert.rejects(locks.tryAcquire('two-down'), { code: 'ERR_BACKEND_UNAVAILABLE' })
      // The live master granted every attempt; each was undone.
      assert.equal(await exists(urls[2], 'lock:two-down'), 0)
      assert.deepEqual(locks.stats(), { pending: 0, held: 0, watched: 0 })
    } finally {
      await locks.close()
      await stop()
    }
  })

  test('a master restarted empty mid-lease: the lock stays held on the majority', async () => {
    const { masters, urls, stop } = await startMasters(3)
    const locks = createClient({ redlock: urls })
    const other = createClient({ redlock: urls })
    try {
      const lock = await locks.acquire('restart', { ttl: 1000, refreshInterval: 100 })
      const lost = []
      lock.on('lost', (err) => lost.push(err))
      await masters[0].stop()
      await masters[0].restart()
      assert.equal(await exists(urls[0], 'lock:restart'), 0)
      // The restarted master alone cannot grant it to someone else.
      assert.equal(await other.tryAcquire('restart'), null)
      assert.equal(await exists(urls[0], 'lock:restart'), 0, 'the failed attempt was undone')
      for (let i = 0; i < 12; i++) await once(lock, 'refreshed') // past the ttl, still ours
      assert.equal(lock.lost, false)
      assert.deepEqual(lost, [])
      assert.equal(await lock.release(), true)
      const next = await other.acquire('restart', { ttl: 1000 })
      assert.ok(next.fence > lock.fence, `${next.fence} > ${lock.fence}`)
      await next.release()
    } finally {
      await locks.close()
      await other.close()
      await stop()
    }
  })

  test('a stalled master counts as down and is not waited on for ever', async () => {
    const { urls, masters, stop } = await startMasters(3)
    const proxies = [await startStallProxy(masters[0].port), await startStallProxy(masters[1].port)]
    const locks = createClient({ redlock: [proxies[0].url, proxies[1].url, urls[2]], requestTimeout: 200 })
    try {
      const warm = await locks.acquire('warm') // connections made while everything forwards
      await warm.release()

      proxies[0].stall(true)
      const lock = await locks.acquire('stalled', { ttl: 2000, autoExtend: false })
      assert.equal(await lock.extend(2000), true)
      assert.equal(await lock.release(), true)

      proxies[1].stall(true)
      const started = Date.now()
      await assert.rejects(locks.acquire('stalled-2', { wait: 500, retryDelay: 20 }), {
        code: 'ERR_BACKEND_UNAVAILABLE',
      })
      const took = Date.now() - started
      assert.ok(took >= 500 && took < 5000, `gave up after ${took} ms`)
      assert.equal(await exists(urls[2], 'lock:stalled-2'), 0)
    } finally {
      proxies[0].stall(false)
      proxies[1].stall(false)
      await locks.close()
      await Promise.all(proxies.map((p) => p.close()))
      await stop()
    }
  })
})

describe('redis cluster faults', () => {
  test('waiters use sharded pub/sub on the lock slot', async () => {
    const cluster = await startCluster()
    const locks = createClient({ redis: { cluster: cluster.urls } })
    const other = createClient({ redis: { cluster: cluster.urls } })
    try {
      const lock = await locks.acquire('sharded', { ttl: 30_000 })
      const waiting = other.acquire('sharded', { retryDelay: 600_000, retryJitter: 0 })
      const master = await cluster.masterOf('lock:sharded')
      const redis = new Redis(master.url)
      let subscribers = 0
      await waitUntil(async () => {
        ;[, subscribers] = await redis.call('PUBSUB', 'SHARDNUMSUB', '{lock:sharded}:released')
        return subscribers > 0
      }, 'the waiter subscribing to the release channel')
      redis.disconnect()
      assert.equal(subscribers, 1)
      await lock.release()
      const next = await waiting // woken by the SPUBLISH of the release (the poll period is 10 min)
      assert.ok(next.fence > lock.fence)
      await next.release()
    } finally {
      await locks.close()
      await other.close()
      await cluster.stop()
    }
  })

  test(
    'a master killed while a lock is held and a waiter waits: the replica takes over',
    { timeout: 60_000 },
    async (t) => {
      const cluster = await startCluster()
      const holder = createClient({ redis: { cluster: cluster.urls } })
      const waiter = createClient({ redis: { cluster: cluster.urls } })
      try {
        const lock = await holder.acquire('failover', { ttl: 3000, refreshInterval: 200 })
        const events = []
        for (const name of ['refreshed', 'error', 'expiring', 'lost']) lock.on(name, () => events.push(name))
        const waiting = waiter.acquire('failover', { ttl: 3000, retryDelay: 50 })
        waiting.catch(() => {}) // awaited below; a failure before that must not go unhandled
        await waitUntil(() => waiter.stats().pending > 0, 'the waiter to be pending')

        const master = await cluster.masterOf('lock:failover')
        await cluster.replicated(master) // the replica has the lock, as it usually has before a crash
        await master.stop()
        await cluster.ready()

        // The holder recovers (heartbeats succeed on the promoted replica) or reports the loss;
        // it does not hang.
        // (Heartbeat errors while the cluster fails over are 'error' events, recorded above.)
        const before = events.length
        while (!lock.lost && events.slice(before).filter((e) => e === 'refreshed').length < 3) {
          await bounded(
            new Promise((resolve) => {
              lock.once('refreshed', resolve)
              lock.once('lost', resolve)
            }),
            "the holder's next 'refreshed' or 'lost' after the failover",
          )
        }
        const keptByHolder = !lock.lost
        const released = await lock.release()
        const next = await waiting
        // Recorded, not hidden: what the failover did to this lock.
        t.diagnostic(
          `holder kept the lock: ${keptByHolder}, release: ${released}, events: ${events.join(',')}, fences ${lock.fence} -> ${next.fence}`,
        )
        // Either way, release tells the truth: a lock the holder kept is releasable, a lost one is not.
        assert.equal(released, keptByHolder, 'release() after the failover')
        // Whatever happened, the fence orders the holders.
        assert.ok(next.fence > lock.fence)
        assert.equal(await next.release(), true)
      } finally {
        await holder.close()
        await waiter.close()
        await cluster.stop()
      }
    },
  )

  test(
    'a lock the replica never received: granted again after the failover; lost and fence show it',
    { timeout: 60_000 },
    async (t) => {
      const cluster = await startCluster()
      const holder = createClient({ redis: { cluster: cluster.urls } })
      const waiter = createClient({ redis: { cluster: cluster.urls } })
      try {
        const master = await cluster.masterOf('lock:unreplicated')
        await cluster.replicated(master)
        // Cut the replication link while the replica is frozen, then write the lock: the replica
        // never receives it (the window asynchronous replication leaves). Then the master dies.
        const replica = await cluster.replicaOf(master)
        process.kill(replica.pid, 'SIGSTOP')
        const admin = new Redis(master.url)
        await admin.client('KILL', 'TYPE', 'replica')
        admin.disconnect()
        let lock, lost
        try {
          lock = await holder.acquire('unreplicated', { ttl: 10_000, refreshInterval: 200 })
          lost = new Promise((resolve) => lock.once('lost', resolve))
          await master.stop()
        } finally {
          process.kill(replica.pid, 'SIGCONT')
        }

        // The promoted replica does not know the lock: another client gets it long before the
        // first holder's 10 s lease ran out (a double grant, for as long as the first holder has
        // not noticed) ...
        const next = await waiter.acquire('unreplicated', { ttl: 10_000, retryDelay: 50 })
        const lostBeforeSecondGrant = lock.lost
        // ... the first holder learns it at its next heartbeat (lost), and the fence orders the two.
        const err = await lost
        t.diagnostic(
          `double grant: first holder lost=${lostBeforeSecondGrant} when the second got the lock; fences ${lock.fence} -> ${next.fence}`,
        )
        assert.equal(err.code, 'ERR_LOCK_LOST')
        assert.match(err.message, /deleted or taken by another owner/)
        assert.ok(next.fence > lock.fence, `${next.fence} > ${lock.fence}`)
        assert.equal(await lock.release(), false)
        assert.equal(await next.release(), true)
      } finally {
        await holder.close()
        await waiter.close()
        await cluster.stop()
      }
    },
  )
})
