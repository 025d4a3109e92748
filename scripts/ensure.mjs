// Makes a fresh clone ready to run: installs redis-server and moto_server (tests only) and the npm
// dependencies when they are missing, and builds the native addon when it is missing or older
// than its Rust sources (`npm run release:pack` for this host, which also packs dist/). Every
// step says what it does; a failing step stops with its exit code.
//
//   --servers   also redis-server and moto_server (what the tests start)
//   --no-build  install only: `npm test` builds the addon as a step of scripts/test.mjs, beside
//               the Rust lints and tests
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const wantServers = process.argv.includes('--servers')
const build = !process.argv.includes('--no-build')

function run(cmd, args, env = process.env) {
  console.log(`[ensure] ${cmd} ${args.join(' ')}`)
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env })
  if (r.status !== 0) process.exit(r.status ?? 1)
}
const onPath = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0

if (wantServers && !(onPath('redis-server') && onPath('redis-cli'))) {
  // The tests start their own redis-server processes; install the server where we can.
  if (process.getuid?.() === 0 && onPath('apt-get')) {
    run('apt-get', ['update', '-qq'])
    run('apt-get', ['install', '-y', '-qq', 'redis-server'])
  } else {
    console.error('[ensure] redis-server is required for the tests: install it (apt-get install redis-server)')
    process.exit(1)
  }
}

if (wantServers && spawnSync('python3', ['-c', 'import moto.server'], { stdio: 'ignore' }).status !== 0) {
  // moto_server: a DynamoDB-compatible server for what dynalite lacks (UpdateTimeToLive).
  run('python3', ['-m', 'pip', 'install', '--quiet', 'moto[server]>=5,<6'])
}

// Every devDependency (test servers like dynalite, peers for the benchmarks) must be there.
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const missing = Object.keys(pkg.devDependencies).filter(
  (d) => !existsSync(join(root, 'node_modules', d, 'package.json')),
)
if (missing.length > 0) {
  console.log(`[ensure] missing: ${missing.join(', ')}`)
  run('npm', ['install', '--no-audit', '--no-fund'])
}

// Newest modification time under the addon's sources.
function newest(path) {
  if (!existsSync(path)) return 0
  const st = statSync(path)
  if (!st.isDirectory()) return st.mtimeMs
  return Math.max(st.mtimeMs, ...readdirSync(path).map((f) => newest(join(path, f))))
}
const sources = ['src', 'crates/core/src', 'crates/core/Cargo.toml', 'Cargo.toml', 'Cargo.lock', 'build.rs']
const sourceTime = Math.max(...sources.map((s) => newest(join(root, s))))
const addons = readdirSync(root).filter((f) => /^ferrolock\..+\.node$/.test(f))
const addonTime = Math.max(0, ...addons.map((f) => statSync(join(root, f)).mtimeMs))
if (build && addonTime < sourceTime) {
  if (!onPath('cargo')) {
    console.error('[ensure] the Rust toolchain (cargo) is required to build the addon: https://rustup.rs')
    process.exit(1)
  }
  // The release build of this host's target, as published (glibc 2.17 on Linux): the tests load
  // it from the root, and the install tests take the dist/ tarballs packed with it.
  run('node', ['scripts/release-pack.mjs'], { ...process.env, FERROLOCK_TARGETS: 'host' })
}
