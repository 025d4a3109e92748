// Bounded waits for the JS tests: every wait ends, and a hang fails naming what hung.
//
// Use these in new tests instead of a bare `await` on something that may never happen:
//
//   import { SLACK, within, scaled, bounded, watchChild, waitUntil } from './support/bounded.mjs'
//
//   within(300)                       // a liveness bound: (300 ms + 1 s) × FERROLOCK_TEST_SLACK
//   await bounded(p, 'the lost event') // p, or a rejection after HANG_MS naming 'the lost event'
//   await bounded(p, 'x', within(500)) // ... or after a bound of your own
//   const answer = watchChild(child, 'worker 3') // right after spawn/fork, then:
//   await answer(p, "'done'")        // p, or a rejection as soon as the child exits first
//   await waitUntil(() => locks.stats().pending > 0, 'a pending waiter')
//
// FERROLOCK_TEST_SLACK (a number ≥ 1, default 1) scales every liveness bound, for loaded or slow
// machines; it never loosens a safety check (those have no time in them). The Rust tests read the
// same variable (crates/core/tests/support/mod.rs: `slack()`, `within()`, `wait_until()`).
import { setImmediate as tick, setTimeout as delay } from 'node:timers/promises'

/** The factor from FERROLOCK_TEST_SLACK (≥ 1; default 1). */
export const SLACK = (() => {
  const raw = process.env.FERROLOCK_TEST_SLACK
  if (raw === undefined || raw === '') return 1
  const n = Number(raw)
  if (!Number.isFinite(n) || n < 1) throw new Error(`FERROLOCK_TEST_SLACK must be a number >= 1 (got ${raw})`)
  return n
})()

/** How long a wait may take before it counts as a hang: 60 s under the node --test timeout. */
export const HANG_MS = 50_000

/** A liveness bound for something promised within `ms`: (ms + 1 s) × SLACK. */
export const within = (ms) => Math.ceil((ms + 1000) * SLACK)

/** `ms` scaled by SLACK, for a lease or delay a test needs to outlast its own IPC round trips. */
export const scaled = (ms) => Math.ceil(ms * SLACK)

/** `promise`, or a rejection "<what> did not happen within <ms> ms" once `ms` passed. */
export function bounded(promise, what, ms = HANG_MS) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hung: ${what} did not happen within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/**
 * Watches a child process from its start (call it right after spawn/fork) and returns
 * `answer(promise, label?, ms?)`: `promise`, or a rejection as soon as the child has exited and
 * closed its stdio and IPC without settling it ("<what>: <label>: exited (code) first"), or
 * after `ms` (default HANG_MS). Waiting for 'close' rather than 'exit' lets the child's last
 * output and messages arrive first.
 */
export function watchChild(child, what) {
  const gone = new Promise((_, reject) => {
    child.once('close', (code, signal) => reject(new Error(`${what} exited (${code ?? signal})`)))
  })
  gone.catch(() => {}) // reported only through the answers that race it
  return (promise, label = 'an answer', ms = HANG_MS) =>
    bounded(
      Promise.race([promise, gone]).catch((err) => {
        throw err?.message?.startsWith?.(what) ? new Error(`${err.message} before ${label}`) : err
      }),
      `${what}: ${label}`,
      ms,
    )
}

/** Resolves once `cond()` is true (checked every event-loop turn, then every 5 ms); bounded. */
export async function waitUntil(cond, what, ms = HANG_MS) {
  const end = Date.now() + ms
  for (let i = 0; !(await cond()); i++) {
    if (Date.now() > end) throw new Error(`hung: ${what} did not happen within ${ms} ms`)
    if (i < 1000) await tick()
    else await delay(5)
  }
}
