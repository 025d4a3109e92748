// ferrolock benchmark: ferrolock against raw ioredis, redlock, redis-semaphore and dist-lock,
// in one run, on one redis-server that this script starts (on a free port) and stops.
// (Redlock over 3 masters and Redis Cluster rows come from bench/quorum.mjs.)
//
//   node bench/run.mjs [peer ...]      (npm run bench; default: every peer)
//
// Scenarios, each for every library:
//   1. sequential  one loop, acquire + release on one key                      -> cycles/s
//   2. 64 keys     64 concurrent loops on 64 distinct keys, one process, one client -> cycles/s
//   3. contention  8 workers on ONE key: 4 forked processes x 2 loops (worker.mjs)
//                  -> acquisitions/s, handoff gap p50/p99, same-worker share, Jain index, max wait
// plus the CPU time per cycle of the client(s) and of redis-server in each scenario.
// Prints the tables and writes bench/RESULTS.md (a block between the NOTES markers is kept).
import { fork, execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync, existsSync } from 'node:fs'
import os from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'
import { startRedis } from '../__test__/support/servers.mjs'
import { MS, PEERS, RETRY, TTL, cycles, now, openPeer } from './peers.mjs'

// Scenarios 1 and 2 run in ROUNDS rounds, the libraries taking turns, and report the median
// round: on a small shared machine a burst of outside load then cannot sink one library only.
const ROUNDS = 3
const WARM_MS = 200 // before each timed round of scenarios 1 and 2
const SEQ_MS = 1000
const CONC_MS = 1000
const CONC_KEYS = 64
const CONTEND_MS = 5000
const PROCS = 4
const PER_PROC = 2

const require = createRequire(import.meta.url)
const elapsedS = (t0) => Number(now() - t0) / 1e9

// ---- redis-server --------------------------------------------------------------------------

// redis-server on a free port, stopped by PID: the same helper the tests use.

/** Mean time of one PING round trip with ioredis (µs): a yardstick of the machine's speed now. */
async function pingUs(port) {
  const Redis = require('ioredis')
  const redis = new Redis({ host: '127.0.0.1', port })
  for (let i = 0; i < 500; i++) await redis.ping()
  const t0 = now()
  for (let i = 0; i < 3000; i++) await redis.ping()
  const us = Number(now() - t0) / 3000 / 1000
  await redis.quit()
  return us
}

// ---- CPU time -------------------------------------------------------------------------------

// CPU time spent by this process (all its threads, ferrolock's Rust threads too) and by
// redis-server, in µs: divided by the cycles, it shows where a library spends its time.
const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }))
function redisCpuUs(pid) {
  // /proc/<pid>/stat: fields 14 and 15 (utime, stime) in clock ticks, after the ")" of the name.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) * TICK_US
}
// /proc/stat counts in ticks and the processes' own times are exact, so the difference is only
// good to ~15% of a CPU: below that, call it nothing.
const outsideLoad = (share) =>
  share < 0.15 ? 'none detected (< 15% of one CPU)' : `about ${(share * 100).toFixed(0)}% of one CPU on average`

/** CPU time used by the whole machine (all CPUs, every process), in µs, from /proc/stat. */
function machineBusyUs() {
  // cpu  user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait.
  const t = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number)
  return (t.reduce((a, b) => a + b, 0) - t[3] - t[4]) * TICK_US
}
let workersCpuUs = 0 // CPU of the contention workers, summed by contend()
function clientCpuUs() {
  const { user, system } = process.cpuUsage()
  return user + system
}

// ---- scenarios 1 and 2 ---------------------------------------------------------------------

/** Runs `fn` (which returns a number of cycles) and adds throughput and CPU per cycle. */
async function measured(redisPid, fn) {
  const t0 = now()
  const c0 = clientCpuUs()
  const r0 = redisCpuUs(redisPid)
  const n = await fn()
  const seconds = elapsedS(t0) // includes the last cycles that ran past the deadline
  return { rate: n / seconds, cpu: (clientCpuUs() - c0) / n, redisCpu: (redisCpuUs(redisPid) - r0) / n }
}

/** Runs acquire + release on `key` until `endAt`; returns the number of cycles. */
async function sequential(peer, redisPid) {
  await cycles(peer, 'seq', now() + BigInt(WARM_MS * MS))
  return measured(redisPid, () => cycles(peer, 'seq', now() + BigInt(SEQ_MS * MS)))
}

async function concurrent(peer, redisPid) {
  const keys = Array.from({ length: CONC_KEYS }, (_, i) => `conc:${i}`)
  const all = async (ms) => {
    const endAt = now() + BigInt(ms * MS)
    const counts = await Promise.all(keys.map((key) => cycles(peer, key, endAt)))
    return counts.reduce((a, b) => a + b, 0)
  }
  await all(WARM_MS)
  return measured(redisPid, () => all(CONC_MS))
}

/** Runs `scenario(peer, redisPid)` ROUNDS times per library, interleaved; keeps the median. */
async function rounds(results, field, label, scenario, redis) {
  const peers = []
  for (const r of results) peers.push(await openPeer(r.peer, redis.port))
  const runs = results.map(() => [])
  for (let k = 0; k < ROUNDS; k++) {
    for (let i = 0; i < results.length; i++) runs[i].push(await scenario(peers[i], redis.pid))
  }
  for (let i = 0; i < results.length; i++) {
    const sorted = runs[i].sort((a, b) => a.rate - b.rate)
    const mid = sorted[Math.floor(sorted.length / 2)]
    results[i][field] = { ...mid, min: sorted[0].rate, max: sorted[sorted.length - 1].rate }
    console.log(
      `${label} ${results[i].peer.padEnd(16)} ${int(mid.rate).padStart(8)} cycles/s ` +
        `(rounds: ${runs[i].map((x) => int(x.rate)).join(', ')})`,
    )
  }
  for (const peer of peers) await peer.close()
}

// ---- scenario 3: contention across processes -----------------------------------------------

const WORKER = fileURLToPath(new URL('./worker.mjs', import.meta.url))

/** Forks the workers, runs them for CONTEND_MS, returns the merged acquisition records. */
async function contend(peerName, port, redisPid) {
  const children = []
  const ready = []
  const done = []
  for (let p = 0; p < PROCS; p++) {
    const spec = { peer: peerName, port, key: 'contended', workers: PER_PROC, firstId: p * PER_PROC }
    const child = fork(WORKER, [JSON.stringify(spec)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    children.push(child)
    const failed = new Promise((_, reject) =>
      child.once('exit', (code) => reject(new Error(`${peerName} worker ${p} exited with code ${code}`))),
    )
    const message = (type) =>
      Promise.race([new Promise((resolve) => child.on('message', (m) => m.type === type && resolve(m))), failed])
    ready.push(message('ready'))
    done.push(message('done'))
  }
  try {
    await Promise.all(ready)
    // Start everyone at the same instant, a little in the future.
    const startAt = now() + BigInt(100 * MS)
    const endAt = startAt + BigInt(CONTEND_MS * MS)
    for (const child of children) child.send({ type: 'go', startAt: String(startAt), endAt: String(endAt) })
    const redis0 = redisCpuUs(redisPid)
    const timeout = sleep(CONTEND_MS + 30_000).then(() => {
      throw new Error(`${peerName} contention did not finish in time`)
    })
    const results = await Promise.race([Promise.all(done), timeout])
    const redisCpu = redisCpuUs(redisPid) - redis0
    const clientCpu = results.reduce((sum, m) => sum + m.cpu, 0)
    workersCpuUs += results.reduce((sum, m) => sum + m.cpuTotal, 0)
    return { records: results.flatMap((m) => m.records), clientCpu, redisCpu }
  } finally {
    // Give each worker a moment to close its client and exit, then make sure it is gone.
    const exited = (child) => new Promise((resolve) => child.once('exit', resolve))
    const running = children.filter((c) => c.exitCode === null && c.signalCode === null)
    await Promise.all(running.map((c) => Promise.race([exited(c), sleep(2000)])))
    for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
}

/** Nearest-rank percentile of a sorted array. */
const pct = (sorted, q) => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]

function analyze({ records: flat, clientCpu, redisCpu }) {
  const recs = []
  for (let i = 0; i < flat.length; i += 5) {
    recs.push({ id: flat[i], asked: flat[i + 1], acquired: flat[i + 2], releasing: flat[i + 3], released: flat[i + 4] })
  }
  recs.sort((a, b) => a.acquired - b.acquired)
  const counts = Array.from({ length: PROCS * PER_PROC }, () => 0)
  const waits = []
  for (const r of recs) {
    counts[r.id]++
    waits.push(r.acquired - r.asked)
  }
  waits.sort((a, b) => a - b)
  const gaps = []
  const crossGaps = [] // only where the lock went to another worker: the real handoffs
  let same = 0
  let overlaps = 0
  for (let i = 1; i < recs.length; i++) {
    const prev = recs[i - 1]
    const next = recs[i]
    gaps.push(next.acquired - prev.released)
    if (next.id === prev.id) same++
    else crossGaps.push(next.acquired - prev.released)
    // A sure overlap: the next holder had the lock before the previous one even asked to
    // release it. (Comparing with `released` instead would flag false overlaps: the next
    // holder may hear of its grant before the releaser hears that its DEL was applied.)
    if (next.acquired < prev.releasing) overlaps++
  }
  gaps.sort((a, b) => a - b)
  crossGaps.sort((a, b) => a - b)
  const sum = counts.reduce((a, b) => a + b, 0)
  const sumSq = counts.reduce((a, b) => a + b * b, 0)
  const inWindow = recs.filter((r) => r.acquired <= CONTEND_MS * MS).length
  return {
    rate: inWindow / (CONTEND_MS / 1000),
    total: recs.length,
    p50: pct(gaps, 0.5) / MS,
    p99: pct(gaps, 0.99) / MS,
    crossP50: pct(crossGaps, 0.5) / MS,
    crossP99: pct(crossGaps, 0.99) / MS,
    same: same / Math.max(1, recs.length - 1),
    jain: sumSq === 0 ? 0 : (sum * sum) / (counts.length * sumSq),
    waitP99: pct(waits, 0.99) / MS,
    cpu: clientCpu / recs.length,
    redisCpu: redisCpu / recs.length,
    maxWait: waits[waits.length - 1] / MS,
    overlaps,
    counts,
  }
}

// ---- report --------------------------------------------------------------------------------

const int = (x) => Math.round(x).toLocaleString('en-US')
const ms = (x) => x.toFixed(3)
const range = (x) => `<sub>(${int(x.min)}–${int(x.max)})</sub>`
const ratio = (x, base) => (base ? `${(x / base).toFixed(2)}×` : 'n/a')

function machine() {
  const cpu = readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m)?.[1] ?? 'unknown'
  const redis = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).match(/v=(\S+)/)?.[1] ?? '?'
  const nproc = execFileSync('nproc', { encoding: 'utf8' }).trim()
  return { nproc, cpu, node: process.version, redis, kernel: os.release(), load: os.loadavg()[0].toFixed(2) }
}

function tables(results) {
  const raw = results.find((r) => r.peer === 'raw')
  const us = (x) => x.toFixed(0)
  const throughput = [
    '| library | 1. sequential cycles/s | ×raw | 2. 64 keys cycles/s | ×raw | 3. contended acq/s | ×raw |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...results.map(
      (r) =>
        `| ${r.peer} | ${int(r.seq.rate)} ${range(r.seq)} | ${ratio(r.seq.rate, raw?.seq.rate)} | ` +
        `${int(r.conc.rate)} ${range(r.conc)} | ` +
        `${ratio(r.conc.rate, raw?.conc.rate)} | ${int(r.c.rate)} | ${ratio(r.c.rate, raw?.c.rate)} |`,
    ),
  ]
  const cpu = [
    '| library | 1. client | 1. redis | 2. client | 2. redis | 3. clients (4 processes) | 3. redis |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...results.map(
      (r) =>
        `| ${r.peer} | ${us(r.seq.cpu)} | ${us(r.seq.redisCpu)} | ${us(r.conc.cpu)} | ${us(r.conc.redisCpu)} | ` +
        `${us(r.c.cpu)} | ${us(r.c.redisCpu)} |`,
    ),
  ]
  const contention = [
    '| library | gap p50 ms | gap p99 ms | p50 ×raw | other-worker gap p50 ms | p99 ms | same-worker share | ' +
      'Jain index | wait p99 ms | max wait ms | acquisitions | overlaps |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map(
      (r) =>
        `| ${r.peer} | ${ms(r.c.p50)} | ${ms(r.c.p99)} | ${ratio(r.c.p50, raw?.c.p50)} | ${ms(r.c.crossP50)} | ` +
        `${ms(r.c.crossP99)} | ${(r.c.same * 100).toFixed(1)}% | ${r.c.jain.toFixed(3)} | ${r.c.waitP99.toFixed(1)} | ` +
        `${r.c.maxWait.toFixed(1)} | ${r.c.total} | ` +
        `${r.c.overlaps}${r.c.overlaps ? ' **WARNING: overlapping holds**' : ''} |`,
    ),
  ]
  return { throughput, cpu, contention }
}

// ferrolock through the caller's own ioredis client (the transport seam) against raw ioredis.
function seam(io, raw, row) {
  if (!io) return []
  return [
    row(
      'through your ioredis, sequential vs raw',
      ratio(io.seq.rate, raw.seq.rate),
      '≥ 0.80×',
      io.seq.rate / raw.seq.rate >= 0.8,
    ),
    row(
      'through your ioredis, 64 keys vs raw',
      ratio(io.conc.rate, raw.conc.rate),
      '≥ 0.80×',
      io.conc.rate / raw.conc.rate >= 0.8,
    ),
  ]
}

function targets(results) {
  const f = results.find((r) => r.peer === 'ferrolock')
  const raw = results.find((r) => r.peer === 'raw')
  if (!f || !raw) return ['(needs both ferrolock and raw in the run)']
  const row = (what, value, goal, ok) => `| ${what} | ${value} | ${goal} | ${ok ? 'met' : '**missed**'} |`
  return [
    '| target | measured | goal | |',
    '|---|---:|---:|---|',
    // The goals of "One fast native boundary" (aim for 1.2× with 64 keys).
    row('sequential vs raw ioredis', ratio(f.seq.rate, raw.seq.rate), '≥ 1.00×', f.seq.rate / raw.seq.rate >= 1),
    row('64 keys vs raw ioredis', ratio(f.conc.rate, raw.conc.rate), '≥ 1.00×', f.conc.rate / raw.conc.rate >= 1),
    row(
      'client CPU per sequential cycle vs raw',
      `${Math.round(f.seq.cpu)} µs / ${Math.round(raw.seq.cpu)} µs`,
      '≤ raw',
      f.seq.cpu <= raw.seq.cpu,
    ),
    row('contended handoff p50', `${ms(f.c.p50)} ms`, '≤ 0.25 ms', f.c.p50 <= 0.25),
    row('contended handoff p99', `${ms(f.c.p99)} ms`, '≤ 2 ms', f.c.p99 <= 2),
    row('contended Jain index', f.c.jain.toFixed(3), '≥ 0.95', f.c.jain >= 0.95),
    ...seam(
      results.find((r) => r.peer === 'ferrolock-ioredis'),
      raw,
      row,
    ),
  ]
}

const RESULTS = fileURLToPath(new URL('./RESULTS.md', import.meta.url))
const NOTES_START = '<!-- NOTES: kept across runs -->'
const NOTES_END = '<!-- /NOTES -->'

// The Redlock and cluster section, written by bench/quorum.mjs and kept here.
const QUORUM_START = '<!-- QUORUM: written by bench/quorum.mjs -->'
const QUORUM_END = '<!-- /QUORUM -->'

async function writeResults(results, info, started) {
  const { throughput, cpu, contention } = tables(results)
  let notes = `${NOTES_START}\n${NOTES_END}`
  let quorum = ''
  if (existsSync(RESULTS)) {
    const old = readFileSync(RESULTS, 'utf8')
    const a = old.indexOf(NOTES_START)
    const b = old.indexOf(NOTES_END)
    if (a >= 0 && b > a) notes = old.slice(a, b + NOTES_END.length)
    const qa = old.indexOf(QUORUM_START)
    const qb = old.indexOf(QUORUM_END)
    if (qa >= 0 && qb > qa) quorum = `\n${old.slice(qa, qb + QUORUM_END.length)}\n`
    // The block of bench/dynamodb.mjs is kept too.
    const d = old.indexOf('<!-- DYNAMODB:')
    const e = old.indexOf('<!-- /DYNAMODB -->')
    if (d >= 0 && e > d) notes += `\n\n${old.slice(d, e + '<!-- /DYNAMODB -->'.length)}`
    // And the block of bench/file.mjs.
    const fa = old.indexOf('<!-- FILE:')
    const fb = old.indexOf('<!-- /FILE -->')
    if (fa >= 0 && fb > fa) notes += `\n\n${old.slice(fa, fb + '<!-- /FILE -->'.length)}`
  }
  const text = `# ferrolock benchmark results

Generated by \`bench/run.mjs\`; the tables below are from the run of ${started.toISOString()}.

## Machine

- CPUs (nproc): ${info.nproc}, ${info.cpu}
- Linux ${info.kernel}, Node.js ${info.node}, redis-server ${info.redis}
- ioredis PING round trip over loopback (sequential, mean): ${info.ping.toFixed(0)} µs at the
  start of the run, ${info.pingEnd.toFixed(0)} µs at the end; a yardstick for comparing runs on this
  virtual machine, whose round trips get much slower when its CPUs sit idle (see the notes).
- Load average (1 min) when the run started: ${info.load}. CPU used by other processes during
  the run, from /proc/stat minus the benchmark's own processes: ${outsideLoad(info.outside)}.
- Everything (redis-server, the benchmark process, the 4 contention workers) runs on this one
  machine over loopback TCP.

## Reproduce

\`\`\`
npm run bench        # = node scripts/ensure.mjs && node bench/run.mjs
\`\`\`

\`node bench/run.mjs ferrolock raw\` runs a subset of the libraries.

## Setup

- One \`redis-server --port <free> --bind 127.0.0.1 --save '' --appendonly no\`, started by the
  benchmark and stopped by PID at the end. Every library gets its own key prefix.
- Every library: one client connection per process, ttl ${TTL} ms, no auto-extension
  (ferrolock \`autoExtend: false\`, redis-semaphore \`refreshInterval: 0\`).
- raw ioredis: \`SET key token NX PX ttl\`, release by a compare-and-delete Lua script
  (\`defineCommand\`, i.e. EVALSHA: one round trip).
- redlock ${'5.0.0-beta.2'} with one instance, \`retryCount: -1\` (forever).
- dist-lock 2.0.1 over the node_redis v3 client (\`redis3\`).
- Scenario 1, sequential: one loop on one key, ${WARM_MS} ms warm-up, then ${SEQ_MS} ms timed.
- Scenario 2, 64 keys: ${CONC_KEYS} concurrent loops on ${CONC_KEYS} keys in one process, ${WARM_MS} ms
  warm-up, then ${CONC_MS} ms timed.
- Scenarios 1 and 2 run ${ROUNDS} rounds, the libraries taking turns; the tables show the median
  round with the range of all rounds in brackets, and the CPU figures of that median round.
- Scenario 3, contention: ${PROCS * PER_PROC} workers on one key, ${PROCS} processes × ${PER_PROC} loops,
  ${CONTEND_MS} ms. Loop: acquire (waiting), one \`await Promise.resolve()\` as the critical section, release.
  Each acquisition records (worker, asked, acquired, release called, release resolved) with
  \`process.hrtime.bigint()\` (CLOCK_MONOTONIC, one clock for all processes).
  - acq/s: acquisitions resolved inside the window / window.
  - handoff gap: next holder's acquire resolved − previous holder's release resolved, over all
    acquisitions sorted by acquire time (can be slightly negative: the next holder may hear of
    its grant before the releaser hears its reply).
  - other-worker gap: the same, only over pairs where the lock went to a different worker (a
    worker that re-takes the lock it just released makes a near-zero "gap" that is no handoff).
  - same-worker share: consecutive acquisitions by the same worker / all consecutive pairs.
  - Jain index: (Σx)² / (n·Σx²) over the ${PROCS * PER_PROC} per-worker acquisition counts (1 = equal).
  - wait p99 / max wait: duration of single acquire calls.
  - overlaps: next acquire resolved before the previous holder even called release (a safety
    violation; must be 0).
- Waiting strategies:
${PEERS.filter((p) => results.some((r) => r.peer === p))
  .map((p) => `  - ${p}: ${RETRY[p]}`)
  .join('\n')}

## Results

Throughput (higher is better; ×raw = library / raw ioredis):

${throughput.join('\n')}

CPU time in µs per cycle (per acquisition in 3; lower is better). client = the benchmark
process (in 3: the 4 worker processes together, counted from the start signal until their
last release, including any native threads); redis = redis-server. On this ${info.nproc}-CPU
machine all of them compete for the same cores:

${cpu.join('\n')}

Contention, ${PROCS * PER_PROC} workers on one key (gaps lower is better; Jain closer to 1 is fairer):

${contention.join('\n')}

Per-worker acquisition counts:

${results.map((r) => `- ${r.peer}: ${r.c.counts.join(', ')}`).join('\n')}

## ferrolock against the project's targets

${targets(results).join('\n')}

## Notes

${notes}
${quorum}`
  writeFileSync(RESULTS, await prettier(text))
}

/** Formats the report with the project's prettier settings (a devDependency) when available. */
async function prettier(text) {
  try {
    const { format, resolveConfig } = await import('prettier')
    return await format(text, { ...(await resolveConfig(RESULTS)), parser: 'markdown' })
  } catch {
    return text
  }
}

// ---- main ----------------------------------------------------------------------------------

async function main() {
  const chosen = process.argv.slice(2)
  for (const p of chosen) if (!PEERS.includes(p)) throw new Error(`unknown peer ${p} (choose from ${PEERS})`)
  const peers = chosen.length ? PEERS.filter((p) => chosen.includes(p)) : PEERS
  const started = new Date()
  const info = machine()
  console.log(`node ${info.node}, redis-server ${info.redis}, ${info.nproc} CPUs (${info.cpu}), load ${info.load}`)
  const redis = await startRedis()
  console.log(`redis-server pid ${redis.pid} on port ${redis.port}`)
  // To tell how much CPU other processes took during the run (the machine may be shared).
  const t0 = now()
  const busy0 = machineBusyUs()
  const own0 = clientCpuUs()
  info.ping = await pingUs(redis.port)
  console.log(`ioredis PING round trip: ${info.ping.toFixed(0)} µs`)
  const results = peers.map((peer) => ({ peer }))
  try {
    // Scenario-major order: every library sees the same server state and machine load.
    await rounds(results, 'seq', '1. sequential  ', sequential, redis)
    await rounds(results, 'conc', '2. 64 keys     ', concurrent, redis)
    for (const r of results) {
      r.c = analyze(await contend(r.peer, redis.port, redis.pid))
      console.log(
        `3. contention   ${r.peer.padEnd(16)} ${int(r.c.rate).padStart(8)} acq/s, gap p50 ${ms(r.c.p50)} ms, ` +
          `p99 ${ms(r.c.p99)} ms (other worker: p50 ${ms(r.c.crossP50)}), same ${(r.c.same * 100).toFixed(1)}%, Jain ${r.c.jain.toFixed(3)}, ` +
          `max wait ${r.c.maxWait.toFixed(1)} ms${r.c.overlaps ? `, WARNING ${r.c.overlaps} overlaps` : ''}`,
      )
    }
    const own = clientCpuUs() - own0 + redisCpuUs(redis.pid) + workersCpuUs
    info.outside = (machineBusyUs() - busy0 - own) / (elapsedS(t0) * 1e6)
    info.pingEnd = await pingUs(redis.port)
    console.log(`other processes: ${outsideLoad(info.outside)}`)
  } finally {
    await redis.stop('SIGTERM')
  }
  const { throughput, cpu, contention } = tables(results)
  const all = [throughput, cpu, contention, targets(results)].map((t) => t.join('\n'))
  console.log(`\n${all.join('\n\n')}`)
  await writeResults(results, info, started)
  console.log(`\nwrote ${RESULTS}`)
}

main().then(
  () => process.exit(0), // some clients keep timers alive after close; the run is over
  (err) => {
    console.error(err)
    process.exit(1)
  },
)
