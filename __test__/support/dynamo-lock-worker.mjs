// Drives __test__/fixtures/dynamo-lock-worker.mjs: a dynamo-lock client (the real 0.1.3 or
// ferrolock's entry) in its own process, over IPC.
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'

import { watchChild } from './bounded.mjs'

const WORKER = fileURLToPath(new URL('../fixtures/dynamo-lock-worker.mjs', import.meta.url))

/**
 * Forks a worker (`impl`: 'old' or 'new') for `table` with createClient's `params`, in `env`
 * (default: this process's); `ask(msg)` resolves its answer `{ err, res }` to msg.
 */
export async function dynamoLockWorker(impl, table, params, env = process.env) {
  const child = fork(WORKER, [impl, table], {
    env: { ...env, FERROLOCK_TEST_DYNAMO_LOCK: JSON.stringify(params) },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  })
  const answer = watchChild(child, `dynamo-lock worker (${impl})`)
  const pending = new Map()
  let id = 0
  const ready = new Promise((resolve) => {
    child.on('message', (msg) => {
      if (msg.ready) return resolve()
      const p = pending.get(msg.id)
      pending.delete(msg.id)
      p?.({ err: msg.err, res: msg.res })
    })
  })
  await answer(ready, 'ready')
  return {
    // Rejects if the worker exits first, or after HANG_MS.
    ask: (msg) =>
      answer(
        new Promise((resolve) => {
          pending.set(++id, resolve)
          child.send({ ...msg, id })
        }),
        `an answer to ${msg.op}`,
      ),
    kill: () => child.kill('SIGKILL'),
  }
}
