// The randomized fault suite (issue 16): `npm run nemesis -- --backend redis --minutes 1`.
//
// Worker processes (nemesis/worker.mjs) contend for a few lock names and make fenced writes to a
// fencing store kept here; a nemesis injects one fault every 1-3 s (see FAULTS); at the end every
// process must exit by itself, and the checker (nemesis/checker.mjs) classifies the history.
// Exits 1 on any fence inversion, duplicate fence, accepted stale write, unexplained overlap,
// hang or crash; prints a summary (and --json FILE writes the whole report).
import { fork } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { setTimeout as delay } from 'node:timers/promises'
import { BACKENDS, startBackend } from './backends.mjs'
import { FenceStore } from './fence-store.mjs'
import { check } from './checker.mjs'

const { values: args } = parseArgs({
  options: {
    backend: { type: 'string', default: 'redis' },
    minutes: { type: 'string' },
    seconds: { type: 'string' },
    processes: { type: 'string', default: '4' },
    workers: { type: 'string', default: '3' },
    names: { type: 'string', default: '2' },
    ttl: { type: 'string', default: '1000' },
    json: { type: 'string' },
    // Redlock: `off` runs without the restart quarantine (to see the checker catch finding 3).
    'restart-quarantine': { type: 'string', default: 'on' },
  },
})
if (!BACKENDS.includes(args.backend)) {
  console.error(`--backend must be one of ${BACKENDS.join(', ')}`)
  process.exit(2)
}
const seconds = args.seconds !== undefined ? Number(args.seconds) : Number(args.minutes ?? 1) * 60
const ttl = Number(args.ttl)
const names = Array.from({ length: Number(args.names) }, (_, i) => `nemesis-${i}`)
const HANG_MS = 30_000 // a worker silent this long (not stopped by us) hangs
const EXIT_MS = 30_000 // every worker must exit this soon after being asked to stop
// The run itself is bounded too: a fault or a server that never comes back fails it, naming that.
let phase = 'starting the servers'
setTimeout(
  () => {
    console.error(`nemesis: HANG: the run did not finish (while ${phase})`)
    process.exit(1)
  },
  seconds * 1000 + 180_000,
).unref()

const now = () => Number(process.hrtime.bigint()) / 1e6 // the workers' clock too
const rand = (lo, hi) => lo + Math.random() * (hi - lo)
const pick = (list) => list[Math.floor(Math.random() * list.length)]

const store = new FenceStore()
const grants = new Map()
const faults = []
const stalls = []
const procs = new Map() // pid -> { started, child, slot, lastSeen, stoppedByUs, killedByUs, exited }
const problems = [] // hangs and crashes
const refused = {}
let stopping = false

const backend = await startBackend(args.backend)
phase = 'running'
if (args['restart-quarantine'] === 'off') backend.client.restartQuarantine = false
const workerConfig = {
  client: backend.client,
  names,
  ttl,
  wait: 2 * ttl,
  writes: 3,
  holdMs: ttl / 3,
  logical: Number(args.workers),
}

function spawnWorker(slot) {
  const child = fork(new URL('./worker.mjs', import.meta.url), {
    env: { ...process.env, NEMESIS_WORKER: JSON.stringify(workerConfig) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const proc = { started: now(), child, slot, lastSeen: now(), stoppedByUs: false, killedByUs: false, exited: null }
  procs.set(child.pid, proc)
  child.on('message', (m) => onMessage(proc, m))
  child.on('exit', (code, signal) => {
    proc.exited = { code, signal, at: now() }
    // Locks of a killed process end when it dies (by its own account): for a SIGKILL of ours, when
    // we sent it. The kernel frees a dead holder's file lock at once, and on a loaded machine this
    // event comes late (tens of ms): a grant in between is no overlap.
    const end = proc.killedAt ?? proc.exited.at
    for (const g of grants.values()) if (g.pid === child.pid && g.end === undefined) g.end = end
    if (proc.killedByUs) return
    if (code !== 0) problems.push({ kind: 'crash', pid: child.pid, code, signal })
  })
  return proc
}

function onMessage(proc, m) {
  proc.lastSeen = now()
  switch (m.t) {
    case 'grant':
      grants.set(m.grant, {
        id: m.grant,
        name: m.name,
        fence: BigInt(m.fence),
        start: m.at,
        lease: m.lease,
        pid: m.pid,
        dead: m.dead,
      })
      break
    case 'write': {
      const ok = store.write({ name: m.name, fence: m.fence, grant: m.grant, at: m.at })
      if (proc.child.connected) proc.child.send({ t: 'ack', id: m.id, ok })
      break
    }
    case 'end': {
      const g = grants.get(m.grant)
      if (g) Object.assign(g, { end: m.at, lease: m.lease, how: m.how, released: m.released })
      break
    }
    case 'stall':
      stalls.push({ pid: m.pid, from: m.from, to: m.to })
      break
    case 'refused':
      refused[m.code] = (refused[m.code] ?? 0) + 1
      break
  }
}

const live = () => [...procs.values()].filter((p) => !p.exited)

// The faults, each: { type, applies, run() } — run() records a fault window in `faults`.
const window = (f) => (faults.push({ ...f, from: now() }), faults.at(-1))
const FAULTS = [
  {
    type: 'worker-stop', // SIGSTOP a worker process, sometimes past its leases
    run: async () => {
      const p = pick(live())
      const f = window({ type: 'worker-stop', pid: p.child.pid })
      p.stoppedByUs = true
      p.child.kill('SIGSTOP')
      await delay(rand(0.3, 2.5) * ttl)
      p.child.kill('SIGCONT')
      p.stoppedByUs = false
      p.lastSeen = now()
      f.to = now()
    },
  },
  {
    type: 'worker-kill', // SIGKILL a worker process; a new one takes its place
    run: async () => {
      const p = pick(live())
      const f = window({ type: 'worker-kill', pid: p.child.pid })
      p.killedByUs = true
      p.killedAt = now()
      p.child.kill('SIGKILL')
      await new Promise((resolve) => (p.exited ? resolve() : p.child.once('exit', resolve)))
      f.to = now()
      spawnWorker(p.slot)
    },
  },
  {
    type: 'busy-loop', // a worker's event loop blocked (no timer, heartbeat or I/O runs)
    run: async () => {
      const p = pick(live())
      const ms = Math.round(rand(0.3, 2.5) * ttl)
      const f = window({ type: 'busy-loop', pid: p.child.pid })
      if (p.child.connected) p.child.send({ t: 'busy', ms })
      await delay(ms)
      f.to = now() + 50 // the message takes a moment to arrive
    },
  },
  {
    type: 'server-stop', // SIGSTOP a server (Cluster: may be failed over)
    applies: () => backend.servers.length > 0,
    run: async () => {
      // A server process that is not running (a Cluster node that exited on its own after a
      // failover put it back) cannot be stopped: said, and another fault comes next.
      const running = backend.servers.filter((s) => s.alive !== false)
      for (const s of backend.servers) {
        if (s.alive === false && !s.reportedDown) {
          s.reportedDown = true
          console.log(`nemesis: server ${s.id} is not running (it exited on its own); not stopped`)
        }
      }
      if (running.length === 0) return
      const s = pick(running)
      const f = window({ type: 'server-stop', server: s.id, dataLoss: Boolean(s.dataLossOnStop) })
      // A process that is gone by now (its exit not yet seen here) cannot be stopped: said, and
      // the run goes on (the clients see a server that went away, another fault).
      const signal = (sig) => {
        try {
          process.kill(s.pid, sig)
        } catch (err) {
          if (err.code !== 'ESRCH') throw err
          console.log(`nemesis: server ${s.id} (pid ${s.pid}) was gone at ${sig}`)
        }
      }
      signal('SIGSTOP')
      await delay(rand(0.3, 1.5) * ttl)
      signal('SIGCONT')
      f.to = now()
      // A stopped Cluster node that was failed over rejoins as a replica: wait until it has.
      if (s.dataLossOnStop) await delay(1500)
    },
  },
  {
    type: 'server-restart', // SIGKILL a server and start it again (Redis: empty)
    applies: () => backend.servers.length > 0 && !backend.failover,
    run: async () => {
      const s = pick(backend.servers)
      const f = window({ type: 'server-restart', server: s.id, dataLoss: s.restartLosesData })
      await s.restart()
      f.to = now()
    },
  },
  {
    type: 'proxy-stall', // the TCP connections to a server stop moving (both ways), then resume
    applies: () => backend.proxies.length > 0,
    run: async () => {
      const p = pick(backend.proxies)
      const f = window({ type: 'proxy-stall' })
      p.stall(true)
      await delay(rand(0.3, 1.5) * ttl)
      p.stall(false)
      f.to = now()
    },
  },
  {
    type: 'failover', // Cluster: kill a master, its replica takes over, the old one rejoins
    applies: () => Boolean(backend.failover),
    run: async () => {
      const f = window({ type: 'failover', dataLoss: true })
      await backend.failover(names)
      f.to = now()
    },
  },
].filter((f) => !f.applies || f.applies())

// Hang watch: a worker that says nothing for HANG_MS while running freely hangs.
const watch = setInterval(() => {
  for (const p of live()) {
    if (!p.stoppedByUs && now() - p.lastSeen > HANG_MS && !p.hung) {
      p.hung = true
      problems.push({ kind: 'hang', pid: p.child.pid, what: `worker silent for ${HANG_MS} ms` })
    }
  }
}, 1000)

const slots = Number(args.processes)
for (let i = 0; i < slots; i++) spawnWorker(i)
const started = now()
console.log(
  `nemesis: ${args.backend}, ${slots} processes x ${args.workers} workers, names ${names.join(', ')}, ttl ${ttl} ms, ${seconds} s; faults: ${FAULTS.map((f) => f.type).join(', ')}`,
)
await delay(500)
while (now() - started < seconds * 1000) {
  await delay(rand(1000, 3000))
  if (now() - started >= seconds * 1000) break
  const fault = pick(FAULTS)
  phase = `injecting ${fault.type}`
  try {
    await fault.run()
    phase = 'running'
  } catch (err) {
    problems.push({ kind: 'crash', what: `the nemesis itself (${fault.type}): ${err.message}` })
    break
  }
}

// The end: every worker is asked to stop and must exit by itself.
phase = 'stopping the workers'
stopping = true
for (const p of live()) {
  if (p.child.connected) p.child.send({ t: 'stop' })
}
const exitBy = now() + EXIT_MS
while (live().length > 0 && now() < exitBy) await delay(100)
for (const p of live()) {
  problems.push({ kind: 'hang', pid: p.child.pid, what: `did not exit within ${EXIT_MS} ms of being asked to stop` })
  p.killedByUs = true
  p.child.kill('SIGKILL')
}
clearInterval(watch)
phase = 'stopping the servers'
await backend.stop()

const result = check({ grants, writes: store.log, faults, stalls, procs, backend: args.backend, ttl })
const violations = [...result.violations, ...problems]
const summary = {
  backend: args.backend,
  seconds: Math.round((now() - started) / 1000),
  acquisitions: grants.size,
  writes: { accepted: result.accepted, rejected: result.rejected },
  refused,
  faults: result.counts,
  overlaps: {
    documented: result.overlaps.filter((o) => o.documented).length,
    violations: result.overlaps.filter((o) => !o.documented).length,
  },
  violations: violations.length,
}
console.log(JSON.stringify(summary, null, 2))
for (const v of violations.slice(0, 20))
  console.log(
    'VIOLATION',
    JSON.stringify(v, (k, x) => (typeof x === 'bigint' ? String(x) : x)),
  )
if (args.json) {
  const all = { summary, violations, overlaps: result.overlaps, faults, stalls }
  writeFileSync(
    args.json,
    JSON.stringify(all, (k, x) => (typeof x === 'bigint' ? String(x) : x), 2),
  )
}
if (stopping) process.exit(violations.length ? 1 : 0)
