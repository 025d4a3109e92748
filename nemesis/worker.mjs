// A nemesis worker process: LOGICAL workers contend for NAMES through one ferrolock client. Each
// grant, fenced write and end is reported to the runner (process.send), timestamped with the
// machine's monotonic clock (process.hrtime: one clock for every process, unlike each process's
// wall-clock origin, which differ by a millisecond or so).
// The runner's fencing store accepts or rejects each write and answers; the worker waits for
// that answer, as it would for a real downstream write.
import { setTimeout as delay } from 'node:timers/promises'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { createClient } = require('../index.js')

const cfg = JSON.parse(process.env.NEMESIS_WORKER)
const now = () => Number(process.hrtime.bigint()) / 1e6
// A lock's expiresAt (epoch ms) on the monotonic clock.
const mono = (epochMs) => epochMs - Date.now() + now()
const send = (msg) => process.connected && process.send({ ...msg, pid: process.pid })
const rand = (lo, hi) => lo + Math.random() * (hi - lo)

let stopping = false
let seq = 0
const pending = new Map() // write id -> resolve
process.on('message', (msg) => {
  if (msg.t === 'ack') {
    pending.get(msg.id)?.(msg.ok)
    pending.delete(msg.id)
  } else if (msg.t === 'busy') {
    // A fault: block this event loop (no timer, heartbeat or I/O runs meanwhile).
    const until = Date.now() + msg.ms
    while (Date.now() < until) {
      // spin
    }
  } else if (msg.t === 'stop') stopping = true
})
process.on('disconnect', () => (stopping = true))

// A blocked or stopped event loop, however caused (a fault, or load on the machine), is reported
// (> 100 ms late) as a stall window: the checker needs it to explain a holder that noticed its loss late.
let tick = now()
setInterval(() => {
  const t = now()
  if (t - tick > 150) send({ t: 'stall', from: tick, to: t })
  tick = t
}, 50).unref()
setInterval(() => send({ t: 'alive', at: now() }), 1000).unref()

// One fenced write, answered by the runner's store (true: accepted).
function write(name, grant, fence) {
  const id = `${process.pid}:${++seq}`
  return new Promise((resolve) => {
    pending.set(id, resolve)
    send({ t: 'write', id, grant, name, fence, at: now() })
  })
}

async function worker(client, index) {
  while (!stopping) {
    const name = cfg.names[Math.floor(Math.random() * cfg.names.length)]
    let lock
    try {
      lock = await client.acquire(name, { ttl: cfg.ttl, wait: cfg.wait })
    } catch (err) {
      send({ t: 'refused', code: err.code ?? 'ERR_UNKNOWN', message: String(err.message).slice(0, 200), at: now() })
      await delay(rand(10, 50))
      continue
    }
    const grant = `${process.pid}:${index}:${++seq}`
    const at = now()
    let lease = mono(lock.expiresAt)
    let lostAt = null
    lock.on('refreshed', () => (lease = mono(lock.expiresAt)))
    lock.signal.addEventListener('abort', () => (lostAt ??= now()))
    // A lock whose lease ran out before acquire() resolved was never held by its own account.
    const dead = lock.lost
    send({ t: 'grant', grant, name, fence: String(lock.fence), at, lease, dead })
    let writes = 0
    for (let i = 0; i < cfg.writes && !stopping; i++) {
      if (lock.signal.aborted) break // the library says it is over: no more writes
      await write(name, grant, String(lock.fence))
      writes++
      await delay(rand(5, cfg.holdMs / cfg.writes))
    }
    // The end by its own account: when it saw the loss, or now, before it calls release() (its
    // signal aborts again when the release is done, after the server deleted the key).
    const endAt = lostAt ?? now()
    let how = lock.lost ? 'lost' : 'released'
    let released = null
    if (!lock.lost) {
      try {
        released = await lock.release()
      } catch (err) {
        how = 'release-failed'
        released = err.code ?? 'ERR_UNKNOWN'
      }
    }
    send({ t: 'end', grant, name, at: endAt, how, released, lease, writes })
  }
}

const client = createClient(cfg.client)
client.on?.('error', () => {})
const workers = Array.from({ length: cfg.logical }, (_, i) => worker(client, i))
await Promise.all(workers)
await client.close()
send({ t: 'done', at: now() })
process.disconnect?.()
