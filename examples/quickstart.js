// Quick start on the embedded memory backend: several workers in one process contend for one
// lock; each prints when it holds it, with its fencing token. Run: npm run example
'use strict'
const { createClient } = require('..')

const locks = createClient() // memory: nothing to install or start

async function worker(id) {
  for (let round = 1; round <= 2; round++) {
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
