// Lease + heartbeat on DynamoDB: a job that runs longer than its lease keeps the lock because
// ferrolock renews the lease with heartbeats; a second process started meanwhile waits, and takes
// over when the first releases (or one lease after its heartbeats stop, if it dies). No clocks are
// compared: a waiter times the holder's lease on its own clock.
// Run two at once against a local DynamoDB-compatible server (DynamoDB Local, dynalite, moto):
//   export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:8000 AWS_REGION=us-east-1 \
//     AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
//   node examples/dynamodb/job.js & node examples/dynamodb/job.js
// On AWS, leave out the endpoint: the region and credentials come from the usual AWS chain.
// Env: LOCK_TABLE (ferrolock-example-locks), JOB_OWNER (default hostname:pid), STEPS (6), STEP_MS (500).
'use strict'
const { createClient } = require('ferrolock')
const { setTimeout: delay } = require('node:timers/promises')

const steps = Number(process.env.STEPS || 6)
const stepMs = Number(process.env.STEP_MS || 500)
const name = 'nightly-export'

async function main() {
  // The endpoint, region and credentials come from the environment (AWS_ENDPOINT_URL_DYNAMODB, ...).
  const locks = createClient({
    dynamodb: {
      table: process.env.LOCK_TABLE || 'ferrolock-example-locks',
      leaseDuration: 2000, // a waiter takes over after 2 s without a heartbeat
      heartbeatPeriod: 500, // so renew every 0.5 s
      ...(process.env.JOB_OWNER ? { ownerName: process.env.JOB_OWNER } : {}),
    },
  })
  const owner = process.env.JOB_OWNER || 'this process'
  const log = (msg) => console.log(`[${owner}] ${msg}`)
  await locks.createLockTable() // once ACTIVE; { created: false } when it exists

  const holder = await locks.get(name) // the record, released or not; null if never taken
  if (holder && !holder.released) log(`${name} is held by ${holder.owner} (fence ${holder.fence}); waiting`)

  const lock = await locks.acquire(name) // waits while the holder heartbeats
  const since = Date.now()
  let heartbeats = 0
  lock.on('refreshed', () => heartbeats++)
  lock.on('lost', (err) => log(`lost the lease: ${err.message}`))
  log(`acquired ${name} (fence ${lock.fence})`)
  try {
    for (let step = 1; step <= steps; step++) {
      await delay(stepMs, undefined, { signal: lock.signal }) // one step of the export; stops if the lease is lost
      log(`step ${step}/${steps}`)
    }
  } finally {
    const released = await lock.release()
    log(`released: ${released}; held ${Date.now() - since} ms with ${heartbeats} heartbeats (fence ${lock.fence})`)
    await locks.close()
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
