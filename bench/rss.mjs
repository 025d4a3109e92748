// Memory growth over many lock cycles: each library in its own process (so one's heap cannot
// hide in another's), against one redis-server this script starts and stops.
//   node bench/rss.mjs [cycles]          (default 200,000; the figure is 1,000,000)
// Each child warms up (10,000 cycles), collects garbage, notes its RSS, runs the cycles
// sequentially, collects garbage again and reports the growth.
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { startRedis } from '../__test__/support/servers.mjs'
import { openPeer, TTL } from './peers.mjs'

const self = fileURLToPath(import.meta.url)
const CYCLES = Number(process.argv[2] || 200_000)
const LIBS = process.argv[3]
  ? process.argv[3].split(',')
  : ['ferrolock', 'raw', 'redis-semaphore', 'redlock', 'ferrolock-memory']

async function child(lib, port, cycles) {
  let peer
  if (lib === 'ferrolock-memory') {
    const { createRequire } = await import('node:module')
    const { createClient } = createRequire(import.meta.url)('..')
    const locks = createClient()
    peer = {
      acquire: (k) => locks.acquire(k, { ttl: TTL, autoExtend: false }),
      release: (l) => l.release(),
      close: () => locks.close(),
    }
  } else peer = await openPeer(lib, port)
  const run = async (n) => {
    for (let i = 0; i < n; i++) await peer.release(await peer.acquire(`rss-${i % 64}`))
  }
  await run(10_000)
  global.gc()
  const before = process.memoryUsage().rss
  const t0 = process.hrtime.bigint()
  await run(cycles)
  const secs = Number(process.hrtime.bigint() - t0) / 1e9
  global.gc()
  const after = process.memoryUsage().rss
  await peer.close()
  return { growthMB: (after - before) / 2 ** 20, cyclesPerSec: cycles / secs }
}

if (process.argv[2] === '--child') {
  const [, , , lib, port, cycles] = process.argv
  process.send(await child(lib, Number(port), Number(cycles)))
  process.exit(0)
} else {
  const server = await startRedis()
  const rows = []
  try {
    for (const lib of LIBS) {
      const c = fork(self, ['--child', lib, String(server.port), String(CYCLES)], { execArgv: ['--expose-gc'] })
      const [result] = await once(c, 'message')
      await once(c, 'exit')
      rows.push({
        library: lib,
        cycles: CYCLES,
        'RSS growth MB': result.growthMB.toFixed(1),
        'cycles/s': Math.round(result.cyclesPerSec),
      })
    }
  } finally {
    await server.stop()
  }
  console.table(rows)
}
