// A short nemesis run of every backend, one after another (the `npm test` step):
//   node nemesis/suite.mjs [--seconds 45]
// Each run is its own process (nemesis/run.mjs); this exits 1 if any of them failed. A backend
// this build does not have (the file backend before it lands) is reported as not run.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { BACKENDS } from './backends.mjs'

const { values: args } = parseArgs({ options: { seconds: { type: 'string', default: '45' } } })
const require = createRequire(import.meta.url)
const run = new URL('./run.mjs', import.meta.url).pathname

// Whether createClient knows the file backend (it refuses unknown options before any I/O).
function hasFileBackend() {
  const { createClient } = require('../index.js')
  const dir = mkdtempSync(join(tmpdir(), 'ferrolock-probe-'))
  try {
    createClient({ file: dir })
      .close()
      .catch(() => {})
    return true
  } catch (err) {
    if (err.code !== 'ERR_INVALID_ARG') throw err
    return false
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const results = []
for (const backend of BACKENDS) {
  if (backend === 'file' && !hasFileBackend()) {
    console.log('\n--- nemesis file: NOT RUN (this build has no file backend)')
    results.push([backend, 'not run'])
    continue
  }
  console.log(`\n--- nemesis ${backend} (${args.seconds} s)`)
  const started = Date.now()
  const r = spawnSync(process.execPath, [run, '--backend', backend, '--seconds', args.seconds], {
    stdio: 'inherit',
    timeout: (Number(args.seconds) + 240) * 1000, // run.mjs bounds itself; this is the backstop
  })
  const secs = ((Date.now() - started) / 1000).toFixed(0)
  results.push([backend, r.status === 0 ? `ok (${secs} s)` : `FAILED (exit ${r.status ?? r.signal}, ${secs} s)`])
}
console.log('\nnemesis suite:')
for (const [backend, verdict] of results) console.log(`  ${backend}: ${verdict}`)
process.exit(results.some(([, v]) => v.startsWith('FAILED')) ? 1 : 0)
