// exclusive-lock (compat/exclusive-lock.js) around release: is_refreshing is already false when
// a failed refresh's 'released' is emitted; nothing goes through the caller's connection once
// release() resolved, so a quit() right after it ends cleanly; and two processes exclude each
// other.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createRequire } from 'node:module'
import { after, before, describe, test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

import Redis from 'ioredis'

import { rawCommand, startRedis } from './support/servers.mjs'

const require = createRequire(import.meta.url)
const ExclusiveLock = require('ferrolock/exclusive-lock')
const run = promisify(execFile)

const T = { timeout: 30_000 }
let seq = 0

// Resolves with the arguments of the next `name` event, or rejects after 10 s naming it.
const next = (emitter, name) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${name}' event within 10 s`)), 10_000)
    emitter.once(name, (...args) => {
      clearTimeout(timer)
      resolve(args)
    })
  })

describe('exclusive-lock release', () => {
  let server
  before(async () => {
    server = await startRedis()
  })
  after(async () => {
    await server.stop()
  })

  test('after a failed PEXPIRE, is_refreshing is false when released is emitted', T, async () => {
    const conn = new Redis(server.url)
    try {
      const lock = new ExclusiveLock({
        name: `refresh-fails-${++seq}`,
        cache_connection: conn,
        lock_ttl_ms: 1000,
        lock_refresh_ms: 100,
      })
      const seen = []
      lock.on('error', (err) => seen.push(['error', err.message, lock.is_refreshing]))
      lock.on('released', () => seen.push(['released', lock.is_refreshing]))
      assert.equal(await lock.acquire(), true)
      conn.pexpire = () => Promise.reject(new Error('PEXPIRE failed'))
      await next(lock, 'released')
      assert.deepEqual(seen, [
        ['error', 'PEXPIRE failed', false],
        ['released', false],
      ])
      assert.equal(await rawCommand(server.port, `EXISTS ${lock.key}`), ':0')
    } finally {
      delete conn.pexpire
      await conn.quit()
    }
  })

  test('a refresh in flight sends nothing once release() resolved; quit() then ends cleanly', T, async () => {
    const conn = new Redis(server.url)
    const problems = []
    const onWarning = (w) => problems.push(`warning: ${w.message}`)
    const onRejection = (err) => problems.push(`unhandled rejection: ${err && err.message}`)
    process.on('warning', onWarning)
    process.on('unhandledRejection', onRejection)
    try {
      const lock = new ExclusiveLock({
        name: `quit-after-release-${++seq}`,
        cache_connection: conn,
        lock_ttl_ms: 2000,
        lock_refresh_ms: 100,
        lock_contents: 'mine',
      })
      lock.on('error', (err) => problems.push(`error event: ${err.message}`))
      assert.equal(await lock.acquire(), true)
      // Hold the refresh's GET until release() resolved; count what is sent after that.
      const get = conn.get.bind(conn)
      let releaseGet
      const refreshGetHeld = new Promise((resolve) => {
        conn.get = (key) => {
          delete conn.get // only the refresh's GET waits; release()'s own passes
          resolve()
          return new Promise((r) => {
            releaseGet = () => r(get(key))
          })
        }
      })
      await Promise.race([
        refreshGetHeld,
        delay(10_000).then(() => {
          throw new Error('no refresh within 10 s')
        }),
      ])
      await lock.release()
      const sentAfter = []
      for (const method of ['pexpire', 'del', 'get', 'set']) {
        conn[method] = (...args) => {
          sentAfter.push(method)
          return Redis.prototype[method].apply(conn, args)
        }
      }
      releaseGet() // the refresh resumes after release() resolved
      await conn.quit()
      await delay(400) // several refresh periods: a timer left running would fire by now
      assert.deepEqual(sentAfter, [])
      assert.deepEqual(problems, [])
      assert.equal(lock.acquired, false)
      assert.equal(lock.is_refreshing, false)
      assert.equal(await rawCommand(server.port, `EXISTS ${lock.key}`), ':0')
    } finally {
      process.off('warning', onWarning)
      process.off('unhandledRejection', onRejection)
      conn.disconnect()
    }
  })

  test('two processes exclude each other', T, async () => {
    const name = `cross-process-${++seq}`
    const worker = fileURLToPath(new URL('./fixtures/exclusive-lock-worker.mjs', import.meta.url))
    const rounds = 15
    await rawCommand(server.port, 'DEL excl-counter')
    const runs = await Promise.all(
      [0, 1].map(() => run(process.execPath, [worker, server.url, name, String(rounds)], { timeout: 25_000 })),
    )
    const intervals = runs
      .flatMap(({ stdout }) => JSON.parse(stdout))
      .map(([a, b]) => [BigInt(a), BigInt(b)])
      .sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))
    assert.equal(intervals.length, 2 * rounds)
    for (let i = 1; i < intervals.length; i++) {
      assert.ok(intervals[i][0] > intervals[i - 1][1], `critical sections ${i - 1} and ${i} overlap`)
    }
    assert.equal(await rawCommand(server.port, 'GET excl-counter'), String(2 * rounds))
  })
})
