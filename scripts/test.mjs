// The whole test suite, as `npm test` runs it: Rust formatting, lints and tests (against real
// redis-server processes they start), the generated loader's freshness, the TypeScript typings
// check, the JS linters, then the JS suites (node --test). Runs every step and fails at the end
// if any step failed.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const steps = [
  ['cargo fmt', 'cargo', ['fmt', '--all', '--', '--check']],
  ['cargo clippy', 'cargo', ['clippy', '--workspace', '--all-targets', '--', '-D', 'warnings']],
  ['cargo test', 'cargo', ['test', '-p', 'ferrolock-core']],
  ['generated loader is committed as built', 'git', ['diff', '--exit-code', '--', 'binding.js', 'binding.d.ts']],
  ['typings (tsc --strict)', 'npx', ['tsc', '-p', 'tsconfig.json']],
  ['oxlint', 'npx', ['oxlint', '--deny-warnings', '.']],
  ['prettier', 'npx', ['prettier', '--check', '.']],
  ['node --test', 'node', ['--test', '--test-concurrency=1', '--test-timeout=120000', '__test__/']],
]

const failed = []
for (const [name, cmd, args] of steps) {
  console.log(`\n=== ${name}: ${cmd} ${args.join(' ')}`)
  const started = Date.now()
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' })
  const secs = ((Date.now() - started) / 1000).toFixed(1)
  if (r.status === 0) console.log(`=== ${name}: ok (${secs} s)`)
  else {
    console.log(`=== ${name}: FAILED (exit ${r.status ?? r.signal}, ${secs} s)`)
    failed.push(name)
  }
}
console.log(failed.length ? `\nFailed steps: ${failed.join(', ')}` : '\nAll steps passed.')
process.exit(failed.length ? 1 : 0)
