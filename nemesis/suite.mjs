// A short nemesis run of every backend, one after another (the `npm test` step):
//   node nemesis/suite.mjs [--seconds 45]
// Each run is its own process (nemesis/run.mjs); this exits 1 if any of them failed.
import { spawnSync } from 'node:child_process'
import { parseArgs } from 'node:util'
import { BACKENDS } from './backends.mjs'

const { values: args } = parseArgs({ options: { seconds: { type: 'string', default: '45' } } })
const run = new URL('./run.mjs', import.meta.url).pathname

const results = []
for (const backend of BACKENDS) {
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
