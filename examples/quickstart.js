// Quick start: four workers take turns holding one lock and print its fencing token. It runs on
// the in-process memory backend: nothing to start. Run: node quickstart.js (a clone: npm run example)
'use strict'
const { createClient } = require('ferrolock')

const locks = createClient() // memory; createClient('redis://127.0.0.1:6379') for Redis

async function worker(id) {
  for (let round = 1; round <= 2; round++) {
    // using() waits for the lock, renews it while the function runs, and always releases it.
    await locks.using('report-job', { ttl: 2000, owner: `worker-${id}` }, async (signal, lock) => {
      console.log(`worker-${id} holds "${lock.name}" (round ${round}, fence ${lock.fence})`)
      await new Promise((resolve) => setTimeout(resolve, 50)) // the exclusive work
      if (signal.aborted) throw signal.reason // lost the lock: stop writing
    })
  }
}

async function main() {
  await Promise.all([1, 2, 3, 4].map(worker))
  console.log('free again:', (await locks.inspect('report-job')) === null)
  await locks.close()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
