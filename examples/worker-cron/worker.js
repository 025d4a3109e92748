// One cron process of the example (index.js forks several). On every tick, each process waits
// for the job's lock until the tick ends; the first holder runs the job, the others find it done.
'use strict'
const { createClient } = require('ferrolock')
const { storeClient, StaleFenceError } = require('./fenced-store')

const name = process.env.WORKER_NAME
const log = (msg) => console.log(`[${name}] ${msg}`)
const locks = process.env.REDIS_URL ? createClient(process.env.REDIS_URL) : createClient({ file: process.env.LOCK_DIR })

// Blocks this process's JavaScript thread, as a long GC pause or a CPU-bound loop would. The
// lease is renewed only while JavaScript runs, so it runs out and another process takes over.
const pause = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)

async function runTick(lock, tick, plan, store) {
  // Every request carries the fence: from here on, no older holder can write this key.
  const state = (await store.read('report', lock.fence)) ?? { started: -1, done: -1 }
  if (state.done >= tick) return log(`tick ${tick}: already done`)
  if (state.started === tick) log(`tick ${tick}: taking over (the last holder did not finish)`)
  await store.write('report', { ...state, started: tick }, lock.fence)

  const report = `report of tick ${tick} by ${name}` // the job's work
  if (lock.signal.aborted) throw lock.signal.reason // checking the lock helps, but is not enough:
  if (tick === plan.stallTick && state.started < tick) {
    log(`tick ${tick}: stalling for ${plan.stallMs} ms before the write (fence ${lock.fence})`)
    pause(plan.stallMs) // ... a pause can come between the check and the write
  }
  await store.write('report', { started: tick, done: tick, report }, lock.fence)
  log(`tick ${tick}: done (fence ${lock.fence})`)
}

async function main(plan) {
  const store = storeClient(plan.storeUrl, name)
  for (let tick = 0; tick < plan.ticks; tick++) {
    const start = plan.start + tick * plan.tickMs
    const end = start + plan.tickMs
    if (Date.now() < start) await new Promise((resolve) => setTimeout(resolve, start - Date.now()))
    let lock
    try {
      // Wait for the lock until the tick is over; later holders of this tick find it done.
      lock = await locks.acquire('report-job', { ttl: plan.ttl, wait: Math.max(1, end - Date.now()), owner: name })
    } catch (err) {
      if (err.code !== 'ERR_LOCK_NOT_ACQUIRED') throw err
      continue
    }
    try {
      await runTick(lock, tick, plan, store)
    } catch (err) {
      if (err instanceof StaleFenceError) log(`tick ${tick}: the store refused my write: ${err.message}`)
      else if (err.code === 'ERR_LOCK_LOST') log(`tick ${tick}: lost the lock; the next holder finishes the tick`)
      else throw err
    } finally {
      if (!(await lock.release())) log(`tick ${tick}: my lease had run out before the release`)
    }
  }
  await locks.close()
}

process.once('message', (plan) => {
  main(plan).catch((err) => {
    console.error(`[${name}]`, err)
    process.exit(1)
  })
})
process.send('ready')
