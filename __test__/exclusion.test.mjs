// Mutual exclusion under load: 50 workers x 10 acquisitions of one lock, each incrementing a
// shared counter with an await between read and write. The counter must end at exactly 500 and
// no two critical sections may overlap (checked from recorded monotonic-clock intervals).
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { test } from 'node:test'

import Redis from 'ioredis'

import { createClient } from '../index.js'
import { HANG_MS } from './support/bounded.mjs'
import { startCluster, startMasters, startRedis } from './support/servers.mjs'

// Each child is bounded: past HANG_MS it is killed and the test fails naming the command.
const run = (cmd, args) => promisify(execFile)(cmd, args, { timeout: HANG_MS, killSignal: 'SIGKILL' })

function assertNoOverlap(intervals) {
  const sorted = intervals.map(([a, b]) => [BigInt(a), BigInt(b)]).sort((x, y) => (x[0] < y[0] ? -1 : 1))
  for (let i = 1; i < sorted.length; i++) {
    assert.ok(sorted[i][0] > sorted[i - 1][1], `critical sections ${i - 1} and ${i} overlap`)
  }
}

test('memory: 50 workers in one process, 500 increments, no overlap', async () => {
  const locks = createClient()
  let counter = 0
  const intervals = []
  const worker = async () => {
    for (let i = 0; i < 10; i++) {
      await locks.using('counter', { ttl: 5000 }, async () => {
        const start = process.hrtime.bigint()
        const value = counter
        await new Promise((resolve) => setImmediate(resolve))
        counter = value + 1
        intervals.push([start, process.hrtime.bigint()])
      })
    }
  }
  await Promise.all(Array.from({ length: 50 }, worker))
  await locks.close()
  assert.equal(counter, 500)
  assert.equal(intervals.length, 500)
  assertNoOverlap(intervals)
})

test('redis: 50 workers in 5 processes, 500 increments, no overlap', async () => {
  const server = await startRedis()
  try {
    const script = fileURLToPath(new URL('./fixtures/exclusion-worker.mjs', import.meta.url))
    const outputs = await Promise.all(
      Array.from({ length: 5 }, () => run(process.execPath, [script, server.url, server.url, 'counter', '10', '10'])),
    )
    const intervals = outputs.flatMap(({ stdout }) => JSON.parse(stdout))
    const redis = new Redis(server.url)
    assert.equal(Number(await redis.get('excl-counter')), 500)
    // Nothing is left behind: at most a companion key that expires within 60 s.
    for (const key of await redis.keys('*')) {
      if (key === 'excl-counter') continue
      assert.match(key, /^\{excl:counter\}:/)
      const pttl = await redis.pttl(key)
      assert.ok(pttl > 0 && pttl <= 60_000, `${key} expires in ${pttl} ms`)
    }
    redis.disconnect()
    assert.equal(intervals.length, 500)
    assertNoOverlap(intervals)
  } finally {
    await server.stop()
  }
})

// 5 processes x 10 workers x 10 rounds against `clientOptions`; the counter lives on `counterUrl`.
async function fiveProcesses(clientOptions, counterUrl) {
  const script = fileURLToPath(new URL('./fixtures/exclusion-worker.mjs', import.meta.url))
  const outputs = await Promise.all(
    Array.from({ length: 5 }, () =>
      run(process.execPath, [script, JSON.stringify(clientOptions), counterUrl, 'counter', '10', '10']),
    ),
  )
  const intervals = outputs.flatMap(({ stdout }) => JSON.parse(stdout))
  const redis = new Redis(counterUrl)
  const counter = Number(await redis.get('excl-counter'))
  redis.disconnect()
  assert.equal(counter, 500)
  assert.equal(intervals.length, 500)
  assertNoOverlap(intervals)
}

test('redis cluster: 50 workers in 5 processes, 500 increments, no overlap', async () => {
  const cluster = await startCluster()
  const counter = await startRedis()
  try {
    await fiveProcesses({ redis: { cluster: cluster.urls } }, counter.url)
  } finally {
    await counter.stop()
    await cluster.stop()
  }
})

test('redlock over 3 masters: 50 workers in 5 processes, 500 increments, no overlap', async () => {
  const masters = await startMasters(3)
  const counter = await startRedis()
  try {
    await fiveProcesses({ redlock: masters.urls }, counter.url)
    // Every master is left with fence counters only: no lock behind.
    for (const url of masters.urls) {
      const redis = new Redis(url)
      assert.deepEqual(await redis.keys('excl:*'), [])
      redis.disconnect()
    }
  } finally {
    await counter.stop()
    await masters.stop()
  }
})
