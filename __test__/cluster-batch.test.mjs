// Batched renewals and releases on a Redis Cluster as a holder sees them, against a real 6-node
// cluster: in a renewal round (one pipeline per master), exactly the locks deleted behind their
// holders emit 'lost' and every other one 'refreshed'; close() then releases every held lock.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, test } from 'node:test'

import Redis from 'ioredis'

import { createClient } from '../index.js'
import { bounded, within } from './support/bounded.mjs'
import { startCluster } from './support/servers.mjs'

/** The number of keys on every master of the cluster. */
async function keysOnMasters(redis) {
  const sizes = await Promise.all(redis.nodes('master').map((node) => node.dbsize()))
  return sizes.reduce((a, b) => a + b, 0)
}

describe('batched renewals on a redis cluster', () => {
  let cluster
  before(async () => {
    cluster = await startCluster()
  })
  after(async () => {
    await cluster.stop()
  })

  test('in one round, exactly the deleted locks emit lost and every other one refreshed; close() releases the rest', async () => {
    const locks = createClient({ redis: { cluster: cluster.urls } })
    const redis = new Redis.Cluster(
      cluster.urls.map((url) => new URL(url)).map((u) => ({ host: u.hostname, port: Number(u.port) })),
    )
    try {
      const names = Array.from({ length: 300 }, (_, i) => `cround-${i}`)
      const held = await Promise.all(names.map((n) => locks.acquire(n, { ttl: 6000, refreshInterval: 2000 })))
      const gone = names.map((_, i) => i % 3 === 0)
      // One DEL per key: the keys are spread over the slots of every master.
      const deleted = await Promise.all(names.filter((_, i) => gone[i]).map((n) => redis.del(`lock:${n}`)))
      assert.equal(
        deleted.reduce((a, b) => a + b, 0),
        100,
      )
      const outcomes = held.map((lock, i) => {
        const events = []
        for (const kind of ['refreshed', 'lost', 'expiring']) lock.on(kind, () => events.push(kind))
        // A deleted lock ends with 'lost' (it may have been renewed once before the deletion);
        // the others' first event is 'refreshed'.
        const first = gone[i] ? once(lock, 'lost') : once(lock, 'refreshed')
        return bounded(first, `lock ${names[i]}`, within(6000)).then(() => events)
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
      assert.equal(await keysOnMasters(redis), 200)
      const released = held.map((lock) => (lock.lost ? null : once(lock, 'released')))
      await bounded(locks.close(), 'close()', within(3000))
      await Promise.all(released.filter(Boolean))
      assert.equal(await keysOnMasters(redis), 0)
    } finally {
      await locks.close()
      redis.disconnect()
    }
  })
})
