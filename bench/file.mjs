// The file backend beside proper-lockfile 4.1.2 (what users pick for one host today) and
// ferrolock's own memory and Redis backends, on this machine:
//   1. sequential: one loop acquire + release on one name, cycles/s;
//   2. 64 names: 64 concurrent loops in one process, one name each, cycles/s;
//   3. contended: 4 processes x 2 loops on one name: acquisitions/s, handoff gap (next holder's
//      acquire resolved - previous release resolved), Jain index of the per-worker counts.
// Options, the same for every library: a lease of TTL (10 s) that never runs out within a run,
// no extension by the caller, a lock directory of its own in os.tmpdir() per round, waiting
// until the lock is ours. ferrolock: `{ ttl: TTL, autoExtend: false }`. proper-lockfile:
// `{ stale: TTL, realpath: false }`; its mtime refresh (its auto-extension) cannot be turned
// off and is a timer of stale/2 set and cleared per lock, which never fires within a cycle.
// The memory backend does no I/O: its number is the ceiling of the JS + binding overhead that
// every ferrolock backend shares.
// Each library runs 3 rounds of 1 and 2 (median shown) and one round of 3. Prints a markdown
// section, and writes it into bench/RESULTS.md between the FILE markers (bench/run.mjs keeps
// it). `node bench/file.mjs --no-write` only prints. Indicative only: note the load average.
import { fork } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const now = () => process.hrtime.bigint()
const MS = 1e6
const TTL = 10000
const ALL = ['ferrolock file', 'proper-lockfile', 'ferrolock memory', 'ferrolock redis']
// `node bench/file.mjs file proper-lockfile` runs a subset (names matched by their last word).
const picked = process.argv.slice(2).filter((a) => !a.startsWith('--'))
const LIBS = picked.length ? ALL.filter((l) => picked.includes(l.split(' ').pop())) : ALL

// One adapter per library: acquire(key) waits until the lock is ours; release(handle).
async function open(lib, dir, redisUrl) {
  if (lib === 'proper-lockfile') {
    const lockfile = require('proper-lockfile')
    // Its own `retries` option precomputes every retry's timeout on each call (10 ms for a long
    // wait), so it waits here instead: one attempt, then again every 2 ms while the lock is taken
    // (it has no wake-up). Never stale within a run.
    const opts = { realpath: false, stale: TTL }
    const acquire = async (key) => {
      for (;;) {
        try {
          return await lockfile.lock(join(dir, key), opts)
        } catch (err) {
          if (err.code !== 'ELOCKED') throw err
          await new Promise((resolve) => setTimeout(resolve, 2))
        }
      }
    }
    return { acquire, release: (unlock) => unlock(), close: async () => {} }
  }
  const { createClient } = require('..')
  const backend = { 'ferrolock file': { file: dir }, 'ferrolock memory': {}, 'ferrolock redis': { redis: redisUrl } }
  const locks = createClient(backend[lib])
  const options = { ttl: TTL, autoExtend: false }
  return {
    acquire: (key) => locks.acquire(key, options),
    release: (lock) => lock.release(),
    close: () => locks.close(),
  }
}

async function loop(peer, key, startAt, endAt, log) {
  let n = 0
  while (now() < startAt) await new Promise((resolve) => setImmediate(resolve))
  while (now() < endAt) {
    const h = await peer.acquire(key)
    const acquired = now()
    await Promise.resolve() // the critical section
    const releasing = now()
    await peer.release(h)
    if (log) log.push([String(acquired), String(releasing), String(now())])
    n++
  }
  return n
}

// ---- worker process of scenario 3 -----------------------------------------------------------
if (process.argv[2] === '--worker') {
  const [, , , lib, dir, redisUrl, startAt, endAt] = process.argv
  const peer = await open(lib, dir, redisUrl)
  const logs = [[], []]
  await Promise.all(logs.map((log) => loop(peer, 'contended', BigInt(startAt), BigInt(endAt), log)))
  await peer.close()
  process.send(logs)
  process.exit(0)
}

async function throughput(lib, dir, redisUrl, keys) {
  const peer = await open(lib, dir, redisUrl)
  const run = async (ms) => {
    const startAt = now()
    const endAt = startAt + BigInt(ms * MS)
    const counts = await Promise.all(Array.from({ length: keys }, (_, i) => loop(peer, `k${i}`, startAt, endAt)))
    return counts.reduce((a, b) => a + b, 0) / (ms / 1000)
  }
  await run(200) // warm-up
  const rate = await run(1000)
  await peer.close()
  return rate
}

async function contended(lib, dir, redisUrl) {
  const startAt = now() + BigInt(1500 * MS) // all 4 processes started and connected
  const endAt = startAt + BigInt(3000 * MS)
  const self = fileURLToPath(import.meta.url)
  const procs = Array.from({ length: 4 }, () =>
    fork(self, ['--worker', lib, dir, redisUrl, String(startAt), String(endAt)], { stdio: 'inherit' }),
  )
  const logs = await Promise.all(
    procs.map(
      (p) =>
        new Promise((resolve, reject) => {
          p.once('message', resolve)
          p.once('exit', (code) => reject(new Error(`${lib}: a contention worker exited with ${code}`)))
        }),
    ),
  )
  const workers = logs.flat()
  const all = workers
    .flatMap((log, w) => log.map(([a, c, r]) => ({ w, a: BigInt(a), c: BigInt(c), r: BigInt(r) })))
    .sort((x, y) => (x.a < y.a ? -1 : 1))
  const gaps = []
  let overlaps = 0
  for (let i = 1; i < all.length; i++) {
    gaps.push(Number(all[i].a - all[i - 1].r) / MS)
    if (all[i].a < all[i - 1].c) overlaps++ // taken before the previous holder let go
  }
  gaps.sort((a, b) => a - b)
  const counts = workers.map((l) => l.length)
  const sum = counts.reduce((a, b) => a + b, 0)
  const sumSq = counts.reduce((a, b) => a + b * b, 0)
  return {
    rate: sum / 3,
    p50: gaps[Math.floor(gaps.length / 2)] ?? NaN,
    p99: gaps[Math.floor(gaps.length * 0.99)] ?? NaN,
    jain: sumSq === 0 ? 0 : (sum * sum) / (counts.length * sumSq),
    overlaps,
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

const { startRedis } = await import('../__test__/support/servers.mjs')
const redis = await startRedis()
const load = os.loadavg()[0]
const results = {}
try {
  for (const lib of LIBS) results[lib] = { seq: [], keys: [] }
  for (let round = 0; round < 3; round++) {
    for (const lib of LIBS) {
      const dir = mkdtempSync(join(os.tmpdir(), 'ferrolock-bench-'))
      results[lib].seq.push(await throughput(lib, dir, redis.url, 1))
      results[lib].keys.push(await throughput(lib, dir, redis.url, 64))
      console.error(
        `round ${round + 1}: ${lib} ${Math.round(results[lib].seq.at(-1))} / ${Math.round(results[lib].keys.at(-1))}`,
      )
      rmSync(dir, { recursive: true, force: true })
    }
  }
  // Memory locks are per process: across 4 processes they exclude nothing, so no contended row.
  for (const lib of LIBS.filter((l) => l !== 'ferrolock memory')) {
    const dir = mkdtempSync(join(os.tmpdir(), 'ferrolock-bench-'))
    results[lib].c = await contended(lib, dir, redis.url)
    console.error(`contended: ${lib} ${JSON.stringify(results[lib].c)}`)
    rmSync(dir, { recursive: true, force: true })
  }
} finally {
  await redis.stop()
}
const loadEnd = os.loadavg()[0]

const f = (n) => Math.round(n).toLocaleString('en-US')
const plf = results['proper-lockfile'] ? median(results['proper-lockfile'].seq) : NaN
const rows = LIBS.map((lib) => {
  const r = results[lib]
  const s = median(r.seq)
  const c = r.c
    ? `${f(r.c.rate)} | ${r.c.p50.toFixed(3)} | ${r.c.p99.toFixed(3)} | ${r.c.jain.toFixed(3)} | ${r.c.overlaps}`
    : 'n/a (one process only) | | | |'
  return `| ${lib} | ${f(s)} | ${(s / plf).toFixed(1)}x | ${f(median(r.keys))} | ${c} |`
})
const section = `<!-- FILE: written by bench/file.mjs -->

## File backend (\`node bench/file.mjs\`)

Run of ${new Date().toISOString()} on ${os.cpus().length} CPUs, Node.js ${process.version}, lock directory in
${os.tmpdir()}; load average (1 min) ${load.toFixed(2)} at the start, ${loadEnd.toFixed(2)} at the end (other
work shares this machine: the numbers are indicative). Same options for every library: ttl ${TTL} ms (proper-lockfile:
\`stale\`), no auto-extension (proper-lockfile's 5 s mtime refresh timer cannot be turned off and never fires in a
cycle); proper-lockfile 4.1.2 with \`realpath: false\` polled every 2 ms while taken (it has no wake-up). The memory
backend does no I/O: the ceiling of ferrolock's JS + binding overhead. Sequential and 64 names: median of 3 rounds of
1 s. Contended: 4 processes x 2 loops on one name for 3 s; the gap is the next holder's acquire resolved minus the
previous release resolved (ms; slightly negative when the next holder hears of its grant before the releaser hears
its reply); Jain over the 8 per-worker counts (1 = equal); overlaps (a holder's acquire resolved before the previous
holder called release) must be 0.

| library | sequential cycles/s | vs proper-lockfile | 64 names cycles/s | contended acq/s | gap p50 ms | gap p99 ms | Jain | overlaps |
| --- | --: | --: | --: | --: | --: | --: | --: | --: |
${rows.join('\n')}

<!-- /FILE -->`
console.log(section)
if (!process.argv.includes('--no-write')) {
  const path = fileURLToPath(new URL('./RESULTS.md', import.meta.url))
  let text = readFileSync(path, 'utf8')
  const a = text.indexOf('<!-- FILE:')
  const b = text.indexOf('<!-- /FILE -->')
  text =
    a >= 0 && b > a
      ? text.slice(0, a) + section + text.slice(b + '<!-- /FILE -->'.length)
      : `${text.trimEnd()}\n\n${section}\n`
  writeFileSync(path, text)
}
