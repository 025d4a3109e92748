// Many locks held at once under auto-extension, on one redis-server this script starts and stops:
// what each held lock costs in memory, and what one renewal round costs in CPU and round trips.
//   node bench/held.mjs [counts] [libraries]
//   (default counts 1000,20000,100000; libraries ferrolock,redis-semaphore,redlock)
// Each library and count runs in a process of its own (one client connection), ttl 30 s, renewed
// every 10 s: ferrolock `refreshInterval: 10000`, redis-semaphore Mutex `refreshInterval: 10000`,
// redlock 5 `using()` with `automaticExtensionThreshold: 20000` (it extends once 20 s are left).
// Measured:
//   - RSS per lock: RSS after acquiring N locks minus RSS before (both after a full GC), over N;
//     again after the renewal round (10 s later: V8 has given back pages it kept after the
//     acquires by then); JS heap per lock: the same for the V8 heap in use; V8 heap per lock: the
//     same for the V8 heap's size (in use, plus the pages V8 keeps: its young generation grows
//     during a burst of allocation and shrinks later), right after acquiring and after the round.
//     The rest of the RSS is native memory (malloc: the lock state in Rust, the binding's tables,
//     and what the allocator keeps of freed memory);
//   - CPU per renewal round: the process's user + system CPU over one refresh interval (10 s)
//     right after the last acquire, with nothing else to do: each lock renews once in it;
//   - round trips per round: the server's `total_reads_processed` (INFO stats) over that window,
//     i.e. how many separate reads the server had to do (a pipelined batch arrives in one read or
//     a few); commands: `total_commands_processed` over it.
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import os from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { startRedis } from '../__test__/support/servers.mjs'

const require = createRequire(import.meta.url)
const self = fileURLToPath(import.meta.url)
const TTL = 30_000
const REFRESH = 10_000
const COUNTS = (process.argv[2] || '1000,20000,100000').split(',').map(Number)
const LIBS = (process.argv[3] || 'ferrolock,redis-semaphore,redlock').split(',')

/** How each library holds a lock until `release()`; one client connection per process. */
const holders = {
  async ferrolock(port) {
    const { createClient } = require('..')
    const locks = createClient({ redis: `redis://127.0.0.1:${port}`, keyPrefix: 'held:ferrolock:' })
    const options = { ttl: TTL, refreshInterval: REFRESH, wait: false }
    return {
      hold: (key) => locks.acquire(key, options),
      release: (lock) => lock.release(),
      close: () => locks.close(),
    }
  },
  async 'redis-semaphore'(port) {
    const Redis = require('ioredis')
    const { Mutex } = require('redis-semaphore')
    const redis = new Redis({ host: '127.0.0.1', port })
    const options = { lockTimeout: TTL, refreshInterval: REFRESH, acquireAttemptsLimit: 1 }
    return {
      hold: async (key) => {
        const mutex = new Mutex(redis, `held:semaphore:${key}`, options)
        await mutex.acquire()
        return mutex
      },
      release: (mutex) => mutex.release(),
      close: () => redis.quit(),
    }
  },
  async redlock(port) {
    const Redis = require('ioredis')
    const { default: Redlock } = require('redlock')
    const redis = new Redis({ host: '127.0.0.1', port })
    const redlock = new Redlock([redis], { retryCount: 0, automaticExtensionThreshold: TTL - REFRESH })
    redlock.on('error', () => {})
    return {
      // using() holds the lock until the routine returns: the routine waits for release().
      hold: (key) =>
        new Promise((resolve, reject) => {
          let done
          const finished = new Promise((r) => (done = r))
          const using = redlock.using([`held:redlock:${key}`], TTL, async () => {
            resolve({ done, using })
            await finished
          })
          using.catch(reject)
        }),
      release: async ({ done, using }) => {
        done()
        await using
      },
      close: () => redis.quit(),
    }
  },
}

const gcMemory = async () => {
  for (let i = 0; i < 3; i++) {
    global.gc()
    await sleep(50)
  }
  return process.memoryUsage()
}

async function child(lib, port, n) {
  const Redis = require('ioredis')
  const admin = new Redis({ host: '127.0.0.1', port })
  const stats = async () => {
    const info = await admin.info('stats')
    const field = (name) => Number(info.match(new RegExp(`${name}:(\\d+)`))[1])
    return { reads: field('total_reads_processed'), commands: field('total_commands_processed') }
  }
  const holder = await holders[lib](port)
  // Warm up: connections, scripts, code paths.
  for (let i = 0; i < 200; i++) await holder.release(await holder.hold(`warm-${i}`))
  const before = await gcMemory()
  const held = []
  const t0 = Date.now()
  for (let i = 0; i < n; i += 1000) {
    const chunk = []
    for (let j = i; j < Math.min(n, i + 1000); j++) chunk.push(holder.hold(`lock-${j}`))
    held.push(...(await Promise.all(chunk)))
  }
  const acquireMs = Date.now() - t0
  const after = await gcMemory()
  // One refresh interval with nothing else to do: every lock renews once in it.
  const s0 = await stats()
  const cpu0 = process.cpuUsage()
  await sleep(REFRESH)
  const cpu = process.cpuUsage(cpu0)
  const s1 = await stats()
  const settled = await gcMemory()
  const keys = await admin.dbsize()
  for (let i = 0; i < held.length; i += 1000) await Promise.all(held.slice(i, i + 1000).map((h) => holder.release(h)))
  await holder.close()
  await admin.quit()
  return {
    acquireMs,
    keys,
    rssPerLockKB: (after.rss - before.rss) / n / 1024,
    settledPerLockKB: (settled.rss - before.rss) / n / 1024,
    heapPerLockKB: (after.heapUsed - before.heapUsed) / n / 1024,
    v8PerLockKB: (after.heapTotal - before.heapTotal) / n / 1024,
    v8SettledPerLockKB: (settled.heapTotal - before.heapTotal) / n / 1024,
    cpuMs: (cpu.user + cpu.system) / 1000,
    // The two INFO calls are one read and one command each.
    reads: s1.reads - s0.reads - 1,
    commands: s1.commands - s0.commands - 1,
  }
}

if (process.argv[2] === '--child') {
  const [, , , lib, port, n] = process.argv
  process.send(await child(lib, Number(port), Number(n)))
  process.exit(0)
} else {
  const rows = []
  console.log(
    `load average before: ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  )
  for (const n of COUNTS) {
    for (const lib of LIBS) {
      // A fresh server each time: nothing left over from the previous library.
      const server = await startRedis()
      try {
        const c = fork(self, ['--child', lib, String(server.port), String(n)], {
          execArgv: ['--expose-gc', '--max-old-space-size=4096'],
        })
        const [r] = await once(c, 'message')
        await once(c, 'exit')
        rows.push({
          library: lib,
          locks: n,
          'RSS/lock KB': r.rssPerLockKB.toFixed(2),
          'RSS/lock KB after the round': r.settledPerLockKB.toFixed(2),
          'JS heap/lock KB': r.heapPerLockKB.toFixed(2),
          'V8 heap/lock KB': `${r.v8PerLockKB.toFixed(2)} / ${r.v8SettledPerLockKB.toFixed(2)}`,
          'CPU/round ms': r.cpuMs.toFixed(0),
          'round trips/round': r.reads,
          'commands/round': r.commands,
          'keys held': r.keys,
          'acquire all ms': r.acquireMs,
          load: os.loadavg()[0].toFixed(2),
        })
        console.log(JSON.stringify(rows[rows.length - 1]))
      } finally {
        await server.stop()
      }
    }
  }
  console.table(rows)
}
