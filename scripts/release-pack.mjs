// `npm run release:pack`: builds the release addon of each target, checks every binary, and
// writes to dist/ the main package tarball plus one tarball per platform package
// (npm/<platform>/, made by `napi create-npm-dirs`). The main tarball's package.json lists each
// packed platform package in optionalDependencies at the main package's version.
//
//   FERROLOCK_TARGETS   unset: the Linux targets buildable here (x86_64 and aarch64, gnu and musl)
//                       host: this machine's target only
//                       all: every target in package.json napi.targets (with --no-build in CI)
//                       or a comma-separated list of Rust target triples
//   --build-only        build and check into npm/<platform>/, do not pack (a CI build job)
//   --no-build          pack the binaries already in npm/<platform>/ (CI's publish job, after
//                       `napi artifacts`), checking each
//
// The host target's addon is also left at the repository root, where the tests load it.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawnSync } from 'node:child_process'

import { parseTriple } from '@napi-rs/cli'

import { checkBinary } from './check-binary.mjs'
import { packedFiles, sourceStamps } from './release-stamp.mjs'
import { ensureNapiCross, ensureRustTarget, ensureZigbuild, log, readJson, run, rustHost } from './toolchains.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const dist = join(root, 'dist')
const LINUX = [
  'x86_64-unknown-linux-gnu',
  'aarch64-unknown-linux-gnu',
  'x86_64-unknown-linux-musl',
  'aarch64-unknown-linux-musl',
]

const pkg = readJson(join(root, 'package.json'))
const { binaryName, targets: configured } = pkg.napi
const buildOnly = process.argv.includes('--build-only')
const noBuild = process.argv.includes('--no-build')

function requestedTargets() {
  const spec = (process.env.FERROLOCK_TARGETS ?? '').trim()
  const list =
    spec === ''
      ? LINUX
      : spec === 'host'
        ? [rustHost()]
        : spec === 'all'
          ? configured
          : spec.split(',').map((t) => t.trim())
  const unknown = list.filter((t) => !configured.includes(t))
  if (unknown.length) {
    throw new Error(`FERROLOCK_TARGETS names ${unknown.join(', ')}, not in package.json napi.targets`)
  }
  return list
}

const abiOf = (triple) => parseTriple(triple).platformArchABI
const addonName = (triple) => `${binaryName}.${abiOf(triple)}.node`

// Builds one target with the toolchain that gives it the promised libc, then moves the addon
// into its platform package (a copy stays at the root for the host target).
function build(triple, host) {
  ensureRustTarget(triple)
  const args = ['napi', 'build', '--platform', '--release', '--target', triple]
  args.push('--js', 'binding.js', '--dts', 'binding.d.ts')
  // One cargo target directory per target: a host-target build links its build scripts with the
  // cross gcc, other targets with the system's, and sharing one directory would rebuild them
  // (and everything above them) each time the target changes.
  const targetDir = join(process.env.CARGO_TARGET_DIR ?? join(root, 'target'), 'release-pack', triple)
  const env = { ...process.env, CARGO_TARGET_DIR: targetDir }
  const rustflags = `CARGO_TARGET_${triple.toUpperCase().replace(/-/g, '_')}_RUSTFLAGS`
  if (triple.endsWith('-linux-gnu')) {
    ensureNapiCross(triple) // gcc with a glibc 2.17 sysroot
    args.push('--use-napi-cross')
    // That gcc (4.8) predates __ARM_ARCH on aarch64, which ring's assembly requires.
    const cflags = `CFLAGS_${triple.replace(/-/g, '_')}`
    if (triple.startsWith('aarch64-') && !env[cflags]) env[cflags] = '-D__ARM_ARCH=8'
  } else if (triple.endsWith('-linux-musl')) {
    ensureZigbuild()
    args.push('--cross-compile') // cargo zigbuild
    env[rustflags] = '-C target-feature=-crt-static' // link musl dynamically, as Node on Alpine does
  } else if (triple.endsWith('-windows-msvc')) {
    env[rustflags] = '-C target-feature=+crt-static' // no VC++ runtime needed on the user's machine
  }
  run('npx', args, { cwd: root, env })
  const built = join(root, addonName(triple))
  log(`${addonName(triple)}: ${checkBinary(built, triple)}`)
  copyFileSync(built, join(root, 'npm', abiOf(triple), addonName(triple)))
  if (triple !== host) rmSync(built)
}

// `npm pack <dir> --pack-destination dist`; returns the tarball's name and file list.
function pack(dir) {
  const r = spawnSync('npm', ['pack', dir, '--json', '--ignore-scripts', '--pack-destination', dist], {
    cwd: root,
    encoding: 'utf8',
    shell: process.platform === 'win32', // npm.cmd
  })
  if (r.status !== 0) throw new Error(`npm pack ${dir} failed: ${r.stderr}`)
  const [packed] = JSON.parse(r.stdout)
  return { filename: packed.filename, files: packed.files.map((f) => f.path) }
}

function main() {
  const list = requestedTargets()
  run('npx', ['napi', 'create-npm-dirs'], { cwd: root })

  if (!noBuild) {
    const host = rustHost()
    for (const triple of list) build(triple, host)
  }
  if (buildOnly) return

  // Every binary to pack must be there and right, whoever built it.
  for (const triple of list) {
    const file = join(root, 'npm', abiOf(triple), addonName(triple))
    if (!existsSync(file)) throw new Error(`${file} is missing: build ${triple} first`)
    log(`${file}: ${checkBinary(file, triple)}`)
  }

  rmSync(dist, { recursive: true, force: true })
  mkdirSync(dist)
  const stamps = sourceStamps(root)
  const platforms = []
  for (const triple of list) {
    const { filename, files } = pack(join(root, 'npm', abiOf(triple)))
    if (!files.includes(addonName(triple))) throw new Error(`${filename} does not carry ${addonName(triple)}`)
    const platform = abiOf(triple)
    platforms.push({
      triple,
      platform,
      package: `${pkg.name}-${platform}`,
      addon: addonName(triple),
      tarball: filename,
    })
  }

  // The main package: its own files, staged with optionalDependencies naming each platform
  // package packed above, at exactly this version.
  const stage = mkdtempSync(join(tmpdir(), 'ferrolock-pack-'))
  try {
    for (const f of packedFiles(root)) {
      mkdirSync(dirname(join(stage, f)), { recursive: true })
      copyFileSync(join(root, f), join(stage, f))
    }
    const optionalDependencies = { ...pkg.optionalDependencies }
    for (const p of platforms) optionalDependencies[p.package] = pkg.version
    writeFileSync(join(stage, 'package.json'), JSON.stringify({ ...pkg, optionalDependencies }, null, 2) + '\n')
    const { filename, files } = pack(stage)
    const stray = files.filter((f) => f.endsWith('.node'))
    if (stray.length) throw new Error(`the main package must carry no addon, it has ${stray.join(', ')}`)
    const manifest = { name: pkg.name, version: pkg.version, stamps, main: filename, platforms }
    writeFileSync(join(dist, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n')
  } finally {
    rmSync(stage, { recursive: true, force: true })
  }
  log(`dist/: ${readdirSync(dist).join(', ')}`)
}

try {
  main()
} catch (e) {
  console.error(`[release] ${e.message}`)
  process.exit(1)
}
