// The checker: reads the history of a nemesis run (grants, writes, faults, stalls) and finds
//   - duplicate fences (two grants of one name with the same fence),
//   - fence inversions (a grant after another one ended, with a lower fence),
//   - accepted stale writes (the store's log accepting a fence below one it accepted before),
//   - overlaps (two holders of one name at once, each by its own account), each classified:
//       documented: an empty restart or failover of a server (data lost) while the first held
//       it, or the second granted only after the first one's lease had ended by the first one's
//       own count (the first was paused, or saw its loss late);
//       otherwise (granted while the first lease was valid) a violation.
// Intervals are each holder's own account, from acquire() resolving to calling release() or
// seeing the loss: inside the time the server really gave it the lock, so an overlap of two
// such intervals is a real one.

const SLACK_MS = 5 // clock-reading tolerance between processes of one machine

/**
 * history: { grants: Map(id -> grant), writes: store log, faults: [...], stalls: [...],
 * procs: Map(pid -> { started }), backend, ttl }. Returns { violations, overlaps, counts }.
 */
export function check(history) {
  const { grants, writes, faults, stalls, procs, backend, ttl } = history
  const violations = []
  const overlaps = []
  const byName = new Map()
  for (const g of grants.values()) {
    if (g.end === undefined) continue // still open when the run ended: the runner closes all
    // Lost before acquire() resolved (its lease ran out on the way): never held, no writes. Its
    // fence was given when it was granted, before later holders' fences, not when it resolved.
    if (g.dead) continue
    if (!byName.has(g.name)) byName.set(g.name, [])
    byName.get(g.name).push(g)
  }

  for (const [name, list] of byName) {
    // Duplicate fences.
    const seen = new Map()
    for (const g of list) {
      const other = seen.get(g.fence)
      if (other) violations.push({ kind: 'duplicate fence', name, fence: String(g.fence), grants: [other.id, g.id] })
      else seen.set(g.fence, g)
    }
    // Fence inversions: sweep grants in start order against those already ended.
    const starts = [...list].sort((a, b) => a.start - b.start)
    const ends = [...list].sort((a, b) => a.end - b.end)
    let j = 0
    let top = null
    for (const g of starts) {
      while (j < ends.length && ends[j].end < g.start) {
        if (!top || ends[j].fence > top.fence) top = ends[j]
        j++
      }
      if (top && g.fence < top.fence) {
        violations.push({
          kind: 'fence inversion',
          name,
          earlier: { id: top.id, fence: String(top.fence) },
          later: { id: g.id, fence: String(g.fence) },
        })
      }
    }
    // Overlaps.
    for (let a = 0; a < starts.length; a++) {
      const g1 = starts[a]
      for (let b = a + 1; b < starts.length && starts[b].start < g1.end; b++) {
        const g2 = starts[b]
        const cause = explain(g1, g2, { faults, stalls, procs, backend, ttl })
        overlaps.push({ name, first: g1.id, second: g2.id, ...cause })
        if (!cause.documented) violations.push({ kind: 'unexplained overlap', name, first: g1, second: g2, ...cause })
      }
    }
  }

  // The store's log, verified on its own: per name, accepted fences never go down.
  const highest = new Map()
  let rejected = 0
  for (const w of writes) {
    if (!w.ok) {
      rejected++
      continue
    }
    const top = highest.get(w.name)
    if (top !== undefined && w.fence < top) {
      violations.push({ kind: 'accepted stale write', name: w.name, fence: String(w.fence), after: String(top) })
    }
    if (top === undefined || w.fence > top) highest.set(w.name, w.fence)
  }

  // Counts per fault type: injected, and the overlaps they explain.
  const counts = {}
  const count = (type) => (counts[type] ??= { injected: 0, overlaps: 0, staleWritesStopped: 0 })
  for (const f of faults) count(f.type).injected++
  for (const o of overlaps) count(o.fault ?? o.reason).overlaps++
  for (const w of writes) {
    if (w.ok) continue
    const o = overlaps.find((x) => x.first === w.grant || x.second === w.grant)
    count(o ? (o.fault ?? o.reason) : 'no overlap (late writer)').staleWritesStopped++
  }
  return { violations, overlaps, counts, rejected, accepted: writes.length - rejected }
}

// Why g1 and g2 (g2 granted while g1 still thought it held) overlap.
function explain(g1, g2, { faults, stalls, procs, backend, ttl }) {
  // Data lost on a server while g1 held the lock (an empty restart, a failover).
  const lost = faults.find((f) => f.dataLoss && f.from <= g2.start && (f.to ?? f.from) >= g1.start - ttl)
  if (lost) {
    if (backend !== 'redlock') return { documented: true, reason: 'empty restart or failover', fault: lost.type }
    // Redlock's restart quarantine keeps a restarted master out for the longest lease, for
    // every client that knew the master before: only a client started after the restart (it has
    // nothing to compare the run id with) can be granted through it.
    const started = procs.get(g2.pid)?.started ?? 0
    if (started > lost.from) {
      return { documented: true, reason: 'empty restart, second client started after it', fault: lost.type }
    }
    return { documented: false, reason: 'a restarted master voted during its quarantine', fault: lost.type }
  }
  // g2 was granted after g1's lease had ended by g1's own count: the library promised g1 the lock
  // only until then, and g1 saw its loss late (paused, or its timers ran late). Fences are for this.
  if (g2.start >= g1.lease - SLACK_MS) {
    const paused = faults.find(
      (f) =>
        f.pid === g1.pid && (f.type === 'worker-stop' || f.type === 'busy-loop') && overlapsIn(f, g1.start, g1.end),
    )
    if (paused) return { documented: true, reason: 'holder paused past its lease', fault: paused.type }
    const stall = stalls.find((s) => s.pid === g1.pid && overlapsIn(s, g1.start, g1.end))
    if (stall) return { documented: true, reason: 'holder paused past its lease', fault: 'event-loop lag (load)' }
    return { documented: true, reason: 'holder saw its loss late', fault: 'late timers (load)' }
  }
  return { documented: false, reason: 'granted while the first lease was valid' }
}

const overlapsIn = (w, from, to) => w.from <= to && (w.to ?? Infinity) >= from
