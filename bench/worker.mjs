// Contention worker, forked by run.mjs: runs `workers` loops in this process that all take the
// SAME lock over and over, and sends back one record per acquisition.
//
// Protocol (IPC messages):
//   parent -> { peer, port, key, workers, firstId }   (argv[2] as JSON)
//   child  -> { type: 'ready' }                       client connected and warmed up
//   parent -> { type: 'go', startAt, endAt }          process.hrtime.bigint() values as strings
//   child  -> { type: 'done', records, cpu }          records: flat array, 5 numbers per
//                                                     acquisition; cpu: µs used during the run
//                                                     (cpuTotal: since the process started)
//
// Times in records are nanoseconds since `startAt`, read with process.hrtime.bigint(), which is
// CLOCK_MONOTONIC on Linux: the same clock in every process, so the parent can merge them.
import { openPeer } from './peers.mjs'

const { peer: peerName, port, key, workers, firstId } = JSON.parse(process.argv[2])
process.on('disconnect', () => process.exit(1)) // the parent died: do not linger

const now = () => process.hrtime.bigint()
const peer = await openPeer(peerName, port)

// Warm up the connection (and any script cache) on a private key before the clock starts.
for (let i = 0; i < 20; i++) await peer.release(await peer.acquire(`warm:${process.pid}`))
process.send({ type: 'ready' })

const go = await new Promise((resolve) => process.once('message', resolve))
const startAt = BigInt(go.startAt)
const endAt = BigInt(go.endAt)
const rel = (t) => Number(t - startAt)
const cpu0 = process.cpuUsage()

async function loop(workerId, out) {
  while (now() < startAt) await new Promise((resolve) => setImmediate(resolve))
  while (now() < endAt) {
    const asked = now()
    const handle = await peer.acquire(key)
    const acquired = now()
    await Promise.resolve() // the critical section: one tiny await, ~0 ms hold
    const releasing = now()
    await peer.release(handle)
    const released = now()
    out.push(workerId, rel(asked), rel(acquired), rel(releasing), rel(released))
  }
}

const perWorker = Array.from({ length: workers }, () => [])
await Promise.all(perWorker.map((out, i) => loop(firstId + i, out)))
const records = perWorker.flat()
const { user, system } = process.cpuUsage(cpu0)
const total = process.cpuUsage() // since this process started, for run.mjs's load accounting
process.send({ type: 'done', records, cpu: user + system, cpuTotal: total.user + total.system }, () => {
  peer.close().finally(() => process.exit(0))
})
