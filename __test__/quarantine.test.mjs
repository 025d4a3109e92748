// Redlock restart quarantine through the JS API (issue 16, finding 3): a master restarted empty
// grants no vote while a lease it forgot may still be valid; `restartQuarantine: false` turns
// that off (and then the same scenario is a double grant). The core's own test is
// crates/core/tests/quarantine.rs.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { createClient } from '../index.js'
import { startMasters } from './support/servers.mjs'

let seq = 0
const unique = (p) => `${p}-${process.pid}-${++seq}`

describe('Redlock restart quarantine', () => {
  let m
  before(async () => {
    m = await startMasters(3)
  })
  after(async () => {
    await m.stop()
  })

  test('restartQuarantine: false or a whole number of ms; only with redlock', () => {
    for (const bad of [0, -1, 1.5, Infinity, NaN]) {
      assert.throws(
        () => createClient({ redlock: m.urls, restartQuarantine: bad }),
        (err) => err.code === 'ERR_INVALID_ARG' && /restartQuarantine/.test(err.message),
        String(bad),
      )
    }
    for (const bad of [true, '1000', null]) {
      assert.throws(
        () => createClient({ redlock: m.urls, restartQuarantine: bad }),
        (err) => err.code === 'ERR_INVALID_ARG' && /restartQuarantine must be false or a number/.test(err.message),
        String(bad),
      )
    }
    assert.throws(
      () => createClient({ redis: m.urls[0], restartQuarantine: false }),
      (err) => err.code === 'ERR_INVALID_ARG' && /applies to the redlock backend only/.test(err.message),
    )
  })

  test('a master restarted empty grants no vote while the first lease is valid', async () => {
    const name = unique('restart')
    const holder = createClient({ redlock: m.urls, requestTimeout: 300 })
    const guarded = createClient({ redlock: m.urls, requestTimeout: 300, restartQuarantine: 60_000 })
    const unguarded = createClient({ redlock: m.urls, requestTimeout: 300, restartQuarantine: false })
    // Both know every master (their run ids) before the restart.
    for (const c of [guarded, unguarded]) await (await c.acquire(unique('warm-up'), { ttl: 10_000 })).release()

    const lock = await holder.acquire(name, { ttl: 10_000, autoExtend: false })
    // The holder has a bare majority: masters 0 and 1 (master 2 missed it).
    assert.equal(await m.masters[2].command(`DEL lock:${name}`), ':1')
    await m.masters[0].stop()
    await m.masters[0].restart()

    // The first attempt after the restart finds the old connection gone; the next ones reach the
    // restarted master, whose grant is no vote for 60 s.
    for (let i = 0; i < 5; i++) {
      assert.equal(await guarded.tryAcquire(name, { ttl: 10_000 }).catch(() => null), null, `attempt ${i}`)
    }
    // Without the quarantine it is the double grant.
    let stolen = null
    for (let i = 0; i < 5 && !stolen; i++) stolen = await unguarded.tryAcquire(name, { ttl: 10_000 }).catch(() => null)
    assert.ok(stolen, 'restartQuarantine: false lets the restarted master vote at once')
    assert.ok(lock.expiresAt > Date.now(), "the holder's lease was still valid")
    assert.notEqual(stolen.fence, lock.fence)
    assert.equal(await stolen.release(), true)
    // The holder's connection to master 0 broke with the restart: its release may be unconfirmed.
    await lock.release().catch((err) => assert.equal(err.code, 'ERR_BACKEND_UNAVAILABLE'))
    await Promise.all([holder.close(), guarded.close(), unguarded.close()])
  })
})
