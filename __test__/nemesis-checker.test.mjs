// The nemesis checker (nemesis/checker.mjs) on made-up histories: each kind of violation is
// found, and each documented overlap is classified as such (the suite's verdicts depend on it).
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'

import { check } from '../nemesis/checker.mjs'
import { FenceStore } from '../nemesis/fence-store.mjs'

const TTL = 1000

// A grant of `name` held from `start` to `end` (ms) with `fence`; its lease ends at start + ttl.
const grant = (id, fence, start, end, extra = {}) => ({
  id,
  name: 'n',
  fence: BigInt(fence),
  start,
  end,
  lease: start + TTL,
  pid: Number(id.split(':')[0]),
  ...extra,
})

function history(grants, { faults = [], stalls = [], writes = [], backend = 'redis', procs = new Map() } = {}) {
  return check({ grants: new Map(grants.map((g) => [g.id, g])), writes, faults, stalls, procs, backend, ttl: TTL })
}

const kinds = (r) => r.violations.map((v) => v.kind).sort()

describe('nemesis checker', () => {
  test('one holder after another with rising fences: nothing to report', () => {
    const r = history([grant('1:0:1', 10, 0, 100), grant('2:0:1', 11, 110, 200), grant('1:0:2', 12, 210, 300)])
    assert.deepEqual(r.violations, [])
    assert.deepEqual(r.overlaps, [])
  })

  test('duplicate fence and fence inversion', () => {
    const r = history([grant('1:0:1', 10, 0, 100), grant('2:0:1', 10, 110, 200), grant('3:0:1', 9, 210, 300)])
    // One inversion per later grant, against the highest fence that ended before it.
    assert.deepEqual(kinds(r), ['duplicate fence', 'fence inversion'])
    assert.equal(r.violations.find((v) => v.kind === 'fence inversion').later.id, '3:0:1')
  })

  test('a grant while the first lease was valid is an unexplained overlap', () => {
    const r = history([grant('1:0:1', 10, 0, 500), grant('2:0:1', 11, 300, 600)])
    assert.deepEqual(kinds(r), ['unexplained overlap'])
    assert.equal(r.violations[0].reason, 'granted while the first lease was valid')
  })

  test('a holder paused past its lease is documented, with the fault named', () => {
    const paused = [grant('1:0:1', 10, 0, 1600), grant('2:0:1', 11, 1200, 1300)]
    const r = history(paused, { faults: [{ type: 'worker-stop', pid: 1, from: 100, to: 1500 }] })
    assert.deepEqual(r.violations, [])
    assert.deepEqual(
      r.overlaps.map((o) => [o.documented, o.reason, o.fault]),
      [[true, 'holder paused past its lease', 'worker-stop']],
    )
    assert.equal(r.counts['worker-stop'].overlaps, 1)
    const lag = history(paused, { stalls: [{ pid: 1, from: 100, to: 1500 }] })
    assert.equal(lag.overlaps[0].fault, 'event-loop lag (load)')
  })

  test('an empty restart explains an overlap; on Redlock only for a client started after it', () => {
    const faults = [{ type: 'server-restart', dataLoss: true, from: 200, to: 250 }]
    const pair = [grant('1:0:1', 10, 0, 500), grant('2:0:1', 11, 300, 600)]
    assert.deepEqual(history(pair, { faults }).violations, [])
    const knewIt = new Map([[2, { started: 0 }]])
    const r = history(pair, { faults, backend: 'redlock', procs: knewIt })
    assert.equal(r.violations[0].reason, 'a restarted master voted during its quarantine')
    const startedAfter = new Map([[2, { started: 260 }]])
    assert.deepEqual(history(pair, { faults, backend: 'redlock', procs: startedAfter }).violations, [])
    // A restart that kept the data (DynamoDB) explains nothing.
    const kept = [{ type: 'server-restart', dataLoss: false, from: 200, to: 250 }]
    assert.deepEqual(kinds(history(pair, { faults: kept })), ['unexplained overlap'])
  })

  test('a lock lost before acquire() resolved held nothing', () => {
    const r = history([grant('1:0:1', 10, 0, 500), grant('2:0:1', 9, 300, 301, { dead: true })])
    assert.deepEqual(r.violations, [])
  })

  test('the fencing store rejects lower fences; the checker re-reads its log', () => {
    const store = new FenceStore()
    assert.equal(store.write({ name: 'n', fence: '11', grant: '2:0:1', at: 1 }), true)
    assert.equal(store.write({ name: 'n', fence: '10', grant: '1:0:1', at: 2 }), false)
    assert.equal(store.write({ name: 'n', fence: '11', grant: '2:0:1', at: 3 }), true)
    const r = history([], { writes: store.log })
    assert.deepEqual([r.accepted, r.rejected, r.violations.length], [2, 1, 0])
    // A log that accepted a lower fence (a broken store) is an accepted stale write.
    const broken = [...store.log, { name: 'n', fence: 10n, grant: '1:0:1', ok: true, at: 4 }]
    assert.deepEqual(kinds(history([], { writes: broken })), ['accepted stale write'])
  })
})
