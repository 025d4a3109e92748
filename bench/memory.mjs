// The memory backend against a minimal in-process JavaScript mutex, in one run:
//   node bench/memory.mjs
// 1. sequential: one loop, acquire + release of one name (autoExtend off, then on)
// 2. 64 names: 64 concurrent loops on 64 names
// 3. contended: 64 loops on ONE name (every acquire but one waits)
// Each scenario runs 3 rounds of 1000 ms after a 200 ms warm-up and reports the median round,
// with the CPU time per cycle of this process (all its threads: ferrolock's I/O thread too).
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { createClient } = require('..')

const ROUNDS = 3
const WARM_MS = 200
const RUN_MS = 1000
const now = () => process.hrtime.bigint()

// The smallest correct async mutex: a FIFO queue of resolvers per name.
class JsMutex {
  #queues = new Map()
  acquire(name) {
    const q = this.#queues.get(name)
    if (q === undefined) {
      this.#queues.set(name, [])
      return Promise.resolve(name)
    }
    return new Promise((resolve) => q.push(resolve))
  }
  release(name) {
    const q = this.#queues.get(name)
    const next = q.shift()
    if (next) next(name)
    else this.#queues.delete(name)
  }
}

function peers() {
  const locks = createClient()
  const mutex = new JsMutex()
  return {
    'ferrolock memory (autoExtend off)': {
      acquire: (name) => locks.acquire(name, { autoExtend: false, ttl: 10_000 }),
      release: (lock) => lock.release(),
    },
    'ferrolock memory (defaults)': {
      acquire: (name) => locks.acquire(name),
      release: (lock) => lock.release(),
    },
    'minimal JS mutex': {
      acquire: (name) => mutex.acquire(name),
      release: (name) => mutex.release(name),
    },
    close: () => locks.close(),
  }
}

async function loop(peer, name, endAt) {
  let n = 0
  while (now() < endAt) {
    await peer.release(await peer.acquire(name))
    n++
  }
  return n
}

async function timed(peer, loops, sameName, ms) {
  const cpu0 = process.cpuUsage()
  const t0 = now()
  const endAt = t0 + BigInt(ms * 1e6)
  const counts = await Promise.all(
    Array.from({ length: loops }, (_, i) => loop(peer, sameName ? 'contended' : `name-${i}`, endAt)),
  )
  const secs = Number(now() - t0) / 1e9
  const cpu = process.cpuUsage(cpu0)
  const n = counts.reduce((a, b) => a + b, 0)
  return { perSec: n / secs, cpuUs: (cpu.user + cpu.system) / n }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function main() {
  const all = peers()
  const names = Object.keys(all).filter((k) => k !== 'close')
  const scenarios = [
    ['sequential', 1, false],
    ['64 names', 64, false],
    ['contended (64 loops, 1 name)', 64, true],
  ]
  const rows = []
  for (const [label, loops, same] of scenarios) {
    const runs = Object.fromEntries(names.map((n) => [n, []]))
    for (let r = 0; r < ROUNDS; r++) {
      for (const name of names) {
        await timed(all[name], loops, same, WARM_MS)
        runs[name].push(await timed(all[name], loops, same, RUN_MS))
      }
    }
    for (const name of names) {
      const m = median(runs[name].map((x) => x.perSec))
      const pick = runs[name].find((x) => x.perSec === m)
      rows.push({ scenario: label, library: name, 'cycles/s': Math.round(m), 'CPU µs/cycle': pick.cpuUs.toFixed(2) })
    }
  }
  await all.close()
  console.log(`Node ${process.version}, ${process.env.FERROLOCK_RUNTIME || 'current-thread'} runtime`)
  console.table(rows)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
