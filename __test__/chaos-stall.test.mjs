// Chaos: a TCP stall (support/proxy.mjs) between a client and a real server, on one Redis, on
// Redlock (3 masters, each behind a proxy) and on DynamoDB (dynalite). Every `wait` deadline
// settles by deadline + 500 ms, single requests by `requestTimeout`; close() rejects waiters at
// once, reports only confirmed releases and makes no connection afterwards, healthy or stalled;
// no lock is granted twice. (A Redis Cluster: chaos-cluster.test.mjs.)
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'

import { createClient } from '../index.js'
import { SLACK, waitUntil } from './support/bounded.mjs'
import { startProxy } from './support/proxy.mjs'
import { startDynalite, startMasters, startRedis } from './support/servers.mjs'

const T = { timeout: 60_000 }
// What the deadline promise allows past the deadline.
const PAST_DEADLINE = 500

// How long `promise` takes to settle, and how: { ms, value } or { ms, error }.
async function timed(promise) {
  const start = performance.now()
  try {
    const value = await promise
    return { ms: performance.now() - start, value }
  } catch (error) {
    return { ms: performance.now() - start, error }
  }
}

// Resolves with the next `name` event's argument, or rejects after `ms` naming it.
function next(emitter, name, ms = 20_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${name}' event within ${ms} ms`)), ms)
    emitter.once(name, (arg) => {
      clearTimeout(timer)
      resolve(arg)
    })
  })
}

describe('a stalled single Redis', () => {
  let server, proxy
  before(async () => {
    server = await startRedis()
    proxy = await startProxy(server.port)
  })
  after(async () => {
    await proxy.close()
    await server.stop()
  })

  test('wait deadlines and single requests are bounded; nothing is granted twice', T, async () => {
    const stalled = createClient({ redis: `redis://127.0.0.1:${proxy.port}`, requestTimeout: 1000 })
    const direct = createClient({ redis: server.url })
    try {
      // Healthy first: the stall then hits a connection in use.
      const held = await stalled.acquire('chaos-held', { ttl: 2500 })
      const lost = next(held, 'lost') // its lease runs out during the checks below
      proxy.stall()
      for (const wait of [50, 500, 2000]) {
        const { ms, error } = await timed(stalled.acquire('chaos-free', { wait }))
        assert.equal(error?.code, 'ERR_BACKEND_UNAVAILABLE', `wait ${wait}: ${error}`)
        assert.ok(ms <= wait + PAST_DEADLINE, `acquire({ wait: ${wait} }) settled after ${Math.round(ms)} ms`)
      }
      const { ms, error } = await timed(stalled.tryAcquire('chaos-free'))
      assert.equal(error?.code, 'ERR_BACKEND_UNAVAILABLE')
      assert.ok(ms <= 1000 + PAST_DEADLINE, `tryAcquire settled after ${Math.round(ms)} ms`)
      const inspected = await timed(stalled.inspect('chaos-held'))
      assert.equal(inspected.error?.code, 'ERR_BACKEND_UNAVAILABLE')
      assert.ok(inspected.ms <= 1000 + PAST_DEADLINE, `inspect settled after ${Math.round(inspected.ms)} ms`)
      // The stalled holder cannot renew and loses the lock; only then does another client get
      // it, with a higher fence.
      const other = await direct.acquire('chaos-held', { wait: 10_000, ttl: 5000 })
      assert.ok(other.fence > held.fence)
      await lost
      assert.equal(held.lost, true)
      proxy.pass()
      // What waited in the stalled connection (cut attempts, their clean-ups) is delivered now:
      // nothing is left held by an attempt nobody waits for.
      await waitUntil(async () => (await direct.inspect('chaos-free')) === null, 'chaos-free to be free', 3000 * SLACK)
      await other.release()
    } finally {
      proxy.pass()
      await Promise.all([stalled.close(), direct.close()])
    }
  })

  test('close() rejects waiters at once, reports unconfirmed releases as lost and connects no more', T, async () => {
    const locks = createClient({ redis: `redis://127.0.0.1:${proxy.port}`, requestTimeout: 1000 })
    const direct = createClient({ redis: server.url })
    try {
      const held = await locks.acquire('chaos-close', { ttl: 20_000 })
      const blocker = await direct.acquire('chaos-busy', { ttl: 20_000 })
      const events = []
      held.on('lost', (err) => events.push(['lost', err.message]))
      held.on('released', () => events.push(['released']))
      const waiter = timed(locks.acquire('chaos-busy'))
      await delay(200) // the waiter polls through the proxy
      proxy.stall()
      await delay(100)
      const closing = performance.now()
      let rejectedAt
      waiter.then(() => (rejectedAt = performance.now()))
      const closed = await timed(locks.close())
      const { error } = await waiter
      assert.equal(error?.code, 'ERR_CLIENT_CLOSED')
      assert.ok(
        rejectedAt - closing <= 100,
        `the waiter was rejected ${Math.round(rejectedAt - closing)} ms after close()`,
      )
      assert.ok(closed.ms <= 1000 + PAST_DEADLINE, `close() took ${Math.round(closed.ms)} ms`)
      assert.equal(events.length, 1, JSON.stringify(events))
      assert.equal(events[0][0], 'lost')
      assert.match(events[0][1], /not confirmed/)
      // The key is still there: only its lease frees it.
      assert.notEqual(await direct.inspect('chaos-close'), null)
      const connections = proxy.connections
      proxy.pass()
      await delay(2500) // a reconnect would come within this (retries back off from 50 ms)
      assert.equal(proxy.connections, connections, 'a connection was made after close() resolved')
      await blocker.release()
    } finally {
      proxy.pass()
      await direct.close()
    }
  })
})

// close() of `locks` (its server(s) behind `proxies`) while it holds `held` and has a waiter
// pending, with every proxy stalled at close() time or not: close() settles within `limit` ms, the
// waiter is rejected ERR_CLIENT_CLOSED, `held` ends with 'released' (healthy) or 'lost' (stalled),
// and no proxy accepts a connection in the 2.5 s after close() resolved.
async function closeConnectsNoMore({ locks, held, waiter, proxies, stalled, limit }) {
  const events = []
  held.on('lost', (err) => events.push(['lost', err.message]))
  held.on('released', () => events.push(['released']))
  await waitUntil(() => locks.stats().pending === 1, 'a pending waiter')
  await delay(200) // the waiter polls (and subscribes) through the proxies
  if (stalled) for (const p of proxies) p.stall()
  await delay(100)
  const closed = await timed(locks.close())
  const { error } = await waiter
  assert.equal(error?.code, 'ERR_CLIENT_CLOSED')
  assert.ok(closed.ms <= limit * SLACK, `close() took ${Math.round(closed.ms)} ms (limit ${limit})`)
  assert.deepEqual(
    events.map(([kind]) => kind),
    [stalled ? 'lost' : 'released'],
    JSON.stringify(events),
  )
  const connections = proxies.map((p) => p.connections)
  for (const p of proxies) p.pass()
  await delay(2500) // a reconnect would come within this (retries back off from 50 ms)
  assert.deepEqual(
    proxies.map((p) => p.connections),
    connections,
    'a connection was made after close() resolved',
  )
}

describe('a stalled Redlock', () => {
  let servers, proxies
  before(async () => {
    servers = await startMasters(3)
    proxies = await Promise.all(servers.masters.map((m) => startProxy(m.port)))
  })
  after(async () => {
    await Promise.all(proxies.map((p) => p.close()))
    await servers.stop()
  })

  for (const stalled of [false, true]) {
    test(
      `close() ${stalled ? 'with every master stalled' : 'of a healthy client'}: bounded, connects no more`,
      T,
      async () => {
        const requestTimeout = 300
        const urls = proxies.map((p) => `redis://127.0.0.1:${p.port}`)
        const locks = createClient({ redlock: urls, requestTimeout })
        const direct = createClient({ redlock: servers.urls })
        try {
          const held = await locks.acquire(`rl-close-${stalled}`, { ttl: 20_000 })
          const blocker = await direct.acquire(`rl-busy-${stalled}`, { ttl: 20_000 })
          const waiter = timed(locks.acquire(`rl-busy-${stalled}`))
          // One Redlock operation takes at most 4 × requestTimeout (docs/operations.md).
          const limit = 4 * requestTimeout + PAST_DEADLINE
          await closeConnectsNoMore({ locks, held, waiter, proxies, stalled, limit })
          assert.equal(await blocker.release(), true)
        } finally {
          for (const p of proxies) p.pass()
          await Promise.all([locks.close(), direct.close()])
        }
      },
    )
  }
})

describe('a stalled DynamoDB', () => {
  let server, proxy
  const table = 'chaos'
  before(async () => {
    server = await startDynalite()
    const admin = createClient(server.options(table))
    await admin.createLockTable()
    await admin.close()
    proxy = await startProxy(server.port)
  })
  after(async () => {
    await proxy.close()
    await server.stop()
  })

  test('wait deadlines hold and nothing is granted twice', T, async () => {
    const options = server.options(table, { endpoint: `http://127.0.0.1:${proxy.port}`, requestTimeout: 1000 })
    const stalled = createClient(options)
    const direct = createClient(server.options(table))
    try {
      const held = await stalled.acquire('chaos-held', { ttl: 2500, refreshInterval: 500 })
      const lost = next(held, 'lost') // its lease runs out during the checks below
      proxy.stall()
      for (const wait of [50, 500, 2000]) {
        const { ms, error } = await timed(stalled.acquire('chaos-free', { wait, ttl: 3000 }))
        assert.equal(error?.code, 'ERR_BACKEND_UNAVAILABLE', `wait ${wait}: ${error}`)
        assert.ok(ms <= wait + PAST_DEADLINE, `acquire({ wait: ${wait} }) settled after ${Math.round(ms)} ms`)
      }
      const { ms, error } = await timed(stalled.tryAcquire('chaos-free'))
      assert.equal(error?.code, 'ERR_BACKEND_UNAVAILABLE')
      assert.ok(ms <= 1000 + PAST_DEADLINE, `tryAcquire settled after ${Math.round(ms)} ms`)
      const other = await direct.acquire('chaos-held', { wait: 15_000, ttl: 5000 })
      assert.ok(other.fence > held.fence)
      await lost
      proxy.pass()
      await other.release()
    } finally {
      proxy.pass()
      await Promise.all([stalled.close(), direct.close()])
    }
  })

  for (const stalled of [false, true]) {
    test(
      `close() ${stalled ? 'with the endpoint stalled' : 'of a healthy client'}: bounded, connects no more`,
      T,
      async () => {
        const requestTimeout = 1000
        const options = server.options(table, { endpoint: `http://127.0.0.1:${proxy.port}`, requestTimeout })
        const locks = createClient(options)
        const direct = createClient(server.options(table))
        try {
          const held = await locks.acquire(`close-${stalled}`, { ttl: 20_000 })
          const blocker = await direct.acquire(`busy-${stalled}`, { ttl: 20_000 })
          const waiter = timed(locks.acquire(`busy-${stalled}`, { retryDelay: 50 }))
          const limit = requestTimeout + PAST_DEADLINE
          await closeConnectsNoMore({ locks, held, waiter, proxies: [proxy], stalled, limit })
          assert.equal(await blocker.release(), true)
        } finally {
          proxy.pass()
          await Promise.all([locks.close(), direct.close()])
        }
      },
    )
  }
})
