// Runs an example as a user would (`node examples/...`), bounded: each run gets its own process
// group, killed (SIGKILL, the whole group: cluster workers and forks too) when its time is up, when
// the test calls kill(), or when the test process exits.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const groups = new Set()
process.on('exit', () => {
  for (const pid of groups) killGroup(pid)
})

function killGroup(pid) {
  try {
    process.kill(-pid, 'SIGKILL')
  } catch {
    // already gone
  }
}

/**
 * Starts `node <script> ...args` from the repository root with `env` added to this process's.
 * Everything must be over within `timeout` ms, or the group is killed and `exited` says so.
 */
export function startExample(script, { args = [], env = {}, timeout = 60_000 } = {}) {
  const child = spawn(process.execPath, [script, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so one kill reaches every process it started
  })
  groups.add(child.pid)
  let output = ''
  const listeners = new Set()
  const onData = (d) => {
    output += d
    for (const check of listeners) check()
  }
  child.stdout.on('data', onData)
  child.stderr.on('data', onData)
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    killGroup(child.pid)
  }, timeout)
  const exited = new Promise((resolve) => {
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      killGroup(child.pid) // anything it left behind
      groups.delete(child.pid)
      for (const check of listeners) check()
      resolve({ code, signal, timedOut, output })
    })
  })
  return {
    child,
    exited,
    get output() {
      return output
    },
    /** Resolves the first match of `regex` in the output; rejects if the process ends first. */
    waitFor(regex, what) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = regex.exec(output)
          if (m) {
            listeners.delete(check)
            resolve(m)
          } else if (child.exitCode !== null || child.signalCode !== null) {
            listeners.delete(check)
            const why = timedOut ? `was killed after ${timeout} ms` : 'exited'
            reject(new Error(`${script} ${why} before ${what}; its output:\n${output}`))
          }
        }
        listeners.add(check)
        check()
      })
    },
    /** Sends `signal` to the example's main process. */
    signal: (signal) => child.kill(signal),
    kill: () => killGroup(child.pid),
  }
}

/** Runs an example to its end; resolves its output, rejects (with the output) unless it exits 0. */
export async function runExample(script, options) {
  const run = startExample(script, options)
  const { code, signal, timedOut, output } = await run.exited
  if (code !== 0) {
    const why = timedOut ? `was killed after ${options?.timeout ?? 60_000} ms` : `exited with ${code ?? signal}`
    throw new Error(`${script} ${why}; its output:\n${output}`)
  }
  return output
}
