// Cron across processes: WORKERS processes run the same scheduled job; each tick's job runs
// exactly once, whichever process gets there first. The job writes to a store that checks
// fences, so a holder that stalls past its lease cannot overwrite its successor's work: at tick
// STALL_TICK the first holder blocks its event loop longer than the lease, and the store refuses
// its late write. The lock lives in files on this host (the file backend); set REDIS_URL to use
// Redis instead.
// Run: node examples/worker-cron/index.js
// Env: WORKERS (3), TICKS (4), TICK_MS (3000), STALL_TICK (1; -1: none), LOCK_DIR (default
// <tmpdir>/ferrolock-worker-cron), REDIS_URL (redis://host:6379).
'use strict'
const { fork } = require('node:child_process')
const os = require('node:os')
const path = require('node:path')
const { serveStore } = require('./fenced-store')

const env = (key, fallback) => Number(process.env[key] ?? fallback)
const workers = env('WORKERS', 3)
const ttl = 1000

async function main() {
  const writes = []
  const server = await serveStore((w) => {
    writes.push(w)
    const what = w.value.done === w.value.started ? `done of tick ${w.value.done}` : `start of tick ${w.value.started}`
    console.log(
      `[store] ${w.ok ? 'accepted' : 'REFUSED'} ${what} from ${w.by} (fence ${w.fence}, highest ${w.highest})`,
    )
  })
  const plan = {
    storeUrl: `http://127.0.0.1:${server.address().port}`,
    ticks: env('TICKS', 4),
    tickMs: env('TICK_MS', 3000),
    stallTick: env('STALL_TICK', 1),
    stallMs: ttl + 1500, // past the lease: another process takes over meanwhile
    ttl,
  }
  const lockDir = process.env.LOCK_DIR || path.join(os.tmpdir(), 'ferrolock-worker-cron')
  const children = Array.from({ length: workers }, (_, i) =>
    fork(path.join(__dirname, 'worker.js'), {
      env: { ...process.env, WORKER_NAME: `worker-${i + 1}`, LOCK_DIR: lockDir },
    }),
  )
  // Start the ticks together, once every process is up; if one fails to start, stop them all.
  const up = (c) =>
    new Promise((resolve, reject) => {
      c.once('message', resolve)
      c.once('exit', (code) => reject(new Error(`a worker exited with ${code} before it was ready`)))
    })
  await Promise.all(children.map(up)).catch((err) => {
    for (const c of children) c.kill()
    server.close()
    throw err
  })
  plan.start = Date.now() + 200
  for (const c of children) c.send(plan)
  const codes = await Promise.all(children.map((c) => new Promise((resolve) => c.once('exit', resolve))))
  server.close()

  // Who wrote each tick's result, as the store accepted it; and the writes it refused.
  const done = {}
  for (const w of writes.filter((w) => w.ok && w.value.done === w.value.started)) {
    ;(done[w.value.done] ??= []).push(w.by)
  }
  const refused = writes.filter((w) => !w.ok).map(({ by, fence, highest, value }) => ({ by, fence, highest, value }))
  console.log(`summary ${JSON.stringify({ done, refused })}`)
  if (codes.some((code) => code !== 0)) throw new Error(`worker exit codes: ${codes.join(', ')}`)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
