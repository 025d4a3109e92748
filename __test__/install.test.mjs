// `npm install ferrolock` as a user runs it: the dist/ tarballs of `npm run release:pack`
// (packed here for this host when dist/ is missing or stale) are published to a local verdaccio
// with no uplinks, and fresh projects install from it with only node and npm on PATH.
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'

import { checkBinary, readElf } from '../scripts/check-binary.mjs'
import {
  DIST,
  PACK_TIMEOUT_MS,
  ROOT,
  check,
  ensureDist,
  exec,
  publishDist,
  startRegistry,
} from './support/registry.mjs'

const glibc = process.report.getReport().header.glibcVersionRuntime
const PLATFORM =
  process.platform === 'linux'
    ? `linux-${process.arch}-${glibc ? 'gnu' : 'musl'}`
    : process.platform === 'win32'
      ? `win32-${process.arch}-msvc`
      : `${process.platform}-${process.arch}`

let registry, manifest, pkg, scratch

before(
  async () => {
    manifest = await ensureDist(PLATFORM)
    pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'))
    scratch = await mkdtemp(join(tmpdir(), 'ferrolock-dist-'))
    registry = await startRegistry()
    await publishDist(registry, manifest)
  },
  { timeout: PACK_TIMEOUT_MS + 120_000 },
)

after(async () => {
  await registry?.stop()
  if (scratch) await rm(scratch, { recursive: true, force: true })
})

// The files (paths) under `dir`, recursively.
async function filesUnder(dir) {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true })
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath ?? e.path, e.name))
}

// Unpacks a platform tarball of dist/; returns the path of its one addon (asserting it is alone).
async function unpackAddon(p) {
  const dir = join(scratch, p.platform)
  await mkdir(dir, { recursive: true })
  await check('tar', ['-xzf', join(DIST, p.tarball), '-C', dir])
  const addons = (await filesUnder(dir)).filter((f) => f.endsWith('.node'))
  assert.deepEqual(addons, [join(dir, 'package', p.addon)])
  return addons[0]
}

describe('dist/', () => {
  test('holds the main tarball and one tarball per platform package, this platform included', async () => {
    const tarballs = (await readdir(DIST)).filter((f) => f.endsWith('.tgz')).sort()
    const expected = [manifest.main, ...manifest.platforms.map((p) => p.tarball)].sort()
    assert.deepEqual(tarballs, expected)
    assert.ok(
      manifest.platforms.some((p) => p.platform === PLATFORM),
      `no ${PLATFORM} package in dist/`,
    )
  })

  test('each platform tarball holds one addon that is what its target promises', async () => {
    for (const p of manifest.platforms) {
      const addon = await unpackAddon(p)
      // Machine, libc, and for gnu no symbol version above GLIBC_2.17 (throws otherwise).
      checkBinary(addon, p.triple)
      if (p.triple.endsWith('-linux-gnu')) {
        const versions = Object.values(readElf(await readFile(addon)).versions).flat()
        assert.ok(
          versions.some((v) => v.startsWith('GLIBC_')),
          `${p.addon}: no glibc symbol versions read`,
        )
      }
    }
  })

  test('the binary check refuses an addon built for another machine or libc', async () => {
    const own = manifest.platforms.find((p) => p.platform === PLATFORM)
    const addon = await unpackAddon(own)
    const other = own.triple.startsWith('x86_64') ? 'aarch64-unknown-linux-musl' : 'x86_64-unknown-linux-musl'
    assert.throws(() => checkBinary(addon, other), /machine \w+, expected \w+.*does not link musl/)
  })

  test('the published main package lists every platform package at exactly its own version', async () => {
    const res = await fetch(`${registry.url}ferrolock`, { signal: AbortSignal.timeout(60_000) })
    assert.equal(res.status, 200)
    const published = (await res.json()).versions[pkg.version]
    assert.ok(published, `ferrolock@${pkg.version} is not in the registry`)
    const expected = Object.fromEntries(manifest.platforms.map((p) => [`ferrolock-${p.platform}`, pkg.version]))
    assert.deepEqual(published.optionalDependencies, expected)
    for (const p of manifest.platforms) {
      const r = await fetch(`${registry.url}${p.package}`, { signal: AbortSignal.timeout(60_000) })
      assert.equal(r.status, 200, `${p.package} is not in the registry`)
      assert.deepEqual(Object.keys((await r.json()).versions), [pkg.version])
    }
  })
})

describe('npm install ferrolock (no Rust toolchain, no C compiler on PATH)', () => {
  let project

  before(async () => {
    project = await registry.project('quickstart')
    await registry.npm(project, ['install', 'ferrolock'])
  })

  test('PATH has node, npm and sh, and no cargo, rustc or C compiler', async () => {
    const probe =
      'for c in node npm sh cargo rustc cc gcc clang make; do if command -v $c >/dev/null; then echo $c; fi; done'
    const { stdout } = await check('/bin/sh', ['-c', probe], { cwd: project, env: registry.env })
    assert.deepEqual(stdout.trim().split('\n'), ['node', 'npm', 'sh'])
  })

  test('installs the platform package, and the main package carries no addon', async () => {
    const modules = join(project, 'node_modules')
    const addons = (await filesUnder(modules)).filter((f) => f.endsWith('.node'))
    assert.deepEqual(addons, [join(modules, `ferrolock-${PLATFORM}`, `ferrolock.${PLATFORM}.node`)])
  })

  test("the README's quick start runs", async () => {
    const source = await readFile(join(ROOT, 'examples', 'quickstart.js'), 'utf8')
    // The example requires the repository ('..'); in a project it is the package.
    await writeFile(join(project, 'quickstart.js'), source.replace(/require\('\.\.'\)/g, "require('ferrolock')"))
    const r = await exec('node', ['quickstart.js'], { cwd: project, env: registry.env })
    assert.deepEqual({ code: r.code, stderr: r.stderr }, { code: 0, stderr: '' }, r.stdout)
    const lines = r.stdout.trim().split('\n')
    const holds = lines.filter((l) => /^worker-\d holds "report-job" \(round [12], fence \d+\)$/.test(l))
    assert.equal(holds.length, 8, r.stdout)
    assert.deepEqual(
      holds.map((l) => Number(/fence (\d+)/.exec(l)[1])),
      [1, 2, 3, 4, 5, 6, 7, 8],
    )
    assert.equal(lines.at(-1), 'free again: true')
  })
})

describe('npm install ferrolock --omit=optional', () => {
  let project

  before(async () => {
    project = await registry.project('omit-optional')
    await registry.npm(project, ['install', 'ferrolock', '--omit=optional'])
  })

  test('installs no platform package', async () => {
    const names = await readdir(join(project, 'node_modules'))
    assert.deepEqual(
      names.filter((n) => n.startsWith('ferrolock')),
      ['ferrolock'],
    )
  })

  test("require('ferrolock') fails with one line: the platform, the missing package, what to do", async () => {
    const probe = `try { require('ferrolock') } catch (e) {
      console.log(JSON.stringify({ message: e.message, code: e.code, hasCause: 'cause' in e, stack: e.stack }))
    }`
    const r = await exec('node', ['-e', probe], { cwd: project, env: registry.env })
    assert.equal(r.code, 0, r.stderr)
    const err = JSON.parse(r.stdout)
    const pkgName = `ferrolock-${PLATFORM}`
    assert.equal(err.code, 'ERR_NATIVE_BINDING')
    assert.equal(err.hasCause, false)
    assert.equal(err.stack, `Error: ${err.message}`)
    assert.doesNotMatch(err.message, /\n/)
    assert.doesNotMatch(err.message, /npm has a bug/)
    assert.match(err.message, new RegExp(`detected platform ${PLATFORM}\\b`))
    assert.match(err.message, new RegExp(`the package ${pkgName} .*is not installed`))
    assert.match(err.message, new RegExp(`npm install ${pkgName}@${pkg.version.replace(/\./g, '\\.')}$`))
  })

  test('uncaught, it prints that one line and no nested causes', async () => {
    const r = await exec('node', ['-e', "require('ferrolock')"], { cwd: project, env: registry.env })
    assert.equal(r.code, 1)
    const errorLines = r.stderr.split('\n').filter((l) => /Error/.test(l))
    assert.equal(errorLines.length, 1, r.stderr)
    assert.match(errorLines[0], new RegExp(`ferrolock-${PLATFORM}`))
    assert.doesNotMatch(r.stderr, /\[cause\]|npm has a bug|^\s+at /m)
  })
})
