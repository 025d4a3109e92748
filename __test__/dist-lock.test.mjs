// ferrolock's native Redis layout is dist-lock 2.x's (a hash with `id` and `owner` at
// keyPrefix + name, with a PEXPIRE): the real dist-lock from npm and ferrolock exclude each
// other on one server, so a fleet can switch one process at a time.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { after, before, describe, test } from 'node:test'
import { promisify } from 'node:util'

import { createClient } from '../index.js'
import { startRedis } from './support/servers.mjs'

const require = createRequire(import.meta.url)
const distLock = require('dist-lock')
const redis3 = require('redis3')

describe('interop with the real dist-lock 2.0.1', () => {
  let server, client, old, locks
  before(async () => {
    server = await startRedis()
    client = redis3.createClient({ port: server.port })
    old = distLock(client, { ttl: 5000, retryDelay: 5, maxRetries: 0 })
    locks = createClient({ redis: server.url })
  })
  after(async () => {
    await locks.close()
    await promisify(client.quit).call(client)
    await server.stop()
  })

  const oldAcquire = (name, owner = 'old') =>
    new Promise((resolve, reject) => old.acquire(name, owner, (err, lock) => (err ? reject(err) : resolve(lock))))
  const oldRelease = (lock) =>
    new Promise((resolve, reject) => lock.release((err, ok) => (err ? reject(err) : resolve(ok))))

  test('a ferrolock lock is seen as held by dist-lock, with its id and owner', async () => {
    const lock = await locks.acquire('shared-1', { owner: 'new-process' })
    assert.equal(await oldAcquire('shared-1'), false)
    const seen = await new Promise((resolve, reject) =>
      old.getAcquiredLock('shared-1', (err, l) => (err ? reject(err) : resolve(l))),
    )
    assert.equal(seen.id, lock.token)
    assert.equal(seen.owner, 'new-process')
    assert.equal(await lock.release(), true)
    const oldLock = await oldAcquire('shared-1')
    assert.ok(oldLock, 'dist-lock gets it after the release')
    assert.equal(await oldRelease(oldLock), true)
  })

  test('a dist-lock lock is seen as held by ferrolock; release by dist-lock frees it', async () => {
    const oldLock = await oldAcquire('shared-2', 'old-process')
    assert.equal(await locks.tryAcquire('shared-2'), null)
    const info = await locks.inspect('shared-2')
    assert.equal(info.owner, 'old-process')
    assert.equal(info.fence, 0n) // dist-lock writes no fence
    assert.ok(info.remainingTtl > 0 && info.remainingTtl <= 5000)
    assert.equal(await oldRelease(oldLock), true)
    const lock = await locks.tryAcquire('shared-2')
    assert.ok(lock)
    await lock.release()
  })

  test('mixed fleet: old and new workers contend for one lock, never at once', async () => {
    const contended = distLock(client, { ttl: 5000, retryDelay: 3, maxRetries: -1 })
    let counter = 0
    let inside = 0
    const critical = async () => {
      assert.equal(++inside, 1, 'two holders at once')
      const value = counter
      await new Promise((resolve) => setImmediate(resolve))
      counter = value + 1
      inside--
    }
    const oldWorker = async () => {
      for (let i = 0; i < 25; i++) {
        const lock = await new Promise((resolve, reject) =>
          contended.acquire('mixed', (err, l) => (err ? reject(err) : resolve(l))),
        )
        await critical()
        assert.equal(await oldRelease(lock), true)
      }
    }
    const newWorker = async () => {
      for (let i = 0; i < 25; i++) {
        await locks.using('mixed', { ttl: 5000, retryDelay: 3, retryJitter: 2 }, critical)
      }
    }
    await Promise.all([oldWorker(), oldWorker(), newWorker(), newWorker()])
    assert.equal(counter, 100)
  })
})
