// Chaos: a TCP stall (support/proxy.mjs) between a client and a real server, on one Redis and on
// DynamoDB (dynalite). Every `wait` deadline settles by deadline + 500 ms, single requests by
// `requestTimeout`; close() rejects waiters at once, reports only confirmed releases and makes
// no connection afterwards; no lock is granted twice.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'

import { createClient } from '../index.js'
import { startProxy } from './support/proxy.mjs'
import { startDynalite, startRedis } from './support/servers.mjs'

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
})
