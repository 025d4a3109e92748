// The built package on the Node version at hand (the release workflow runs it on Node 18 to 24):
// installs dist/'s main tarball with this machine's platform tarball into a fresh project, then
// runs the quick start there. Needs only node and npm; every step has a deadline.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const dist = join(root, 'dist')
const manifest = JSON.parse(readFileSync(join(dist, 'manifest.json'), 'utf8'))
const glibc = process.report.getReport().header.glibcVersionRuntime
const platform =
  process.platform === 'linux'
    ? `linux-${process.arch}-${glibc ? 'gnu' : 'musl'}`
    : process.platform === 'win32'
      ? `win32-${process.arch}-msvc`
      : `${process.platform}-${process.arch}`

function step(what, cmd, args, cwd) {
  console.log(`[smoke] ${what}`)
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 120_000, shell: process.platform === 'win32' })
  if (r.status !== 0) {
    console.error(`[smoke] ${what} failed (${r.error ? r.error.message : `exit ${r.status ?? r.signal}`})`)
    console.error(r.stdout, r.stderr)
    process.exit(1)
  }
  return r.stdout
}

const target = manifest.platforms.find((p) => p.platform === platform)
if (!target) {
  console.error(`[smoke] dist/ has no package for ${platform}: ${manifest.platforms.map((p) => p.platform).join(', ')}`)
  process.exit(1)
}
const project = mkdtempSync(join(tmpdir(), 'ferrolock-smoke-'))
try {
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'smoke', version: '1.0.0', private: true }))
  const tarballs = [manifest.main, target.tarball].map((t) => join(dist, t))
  step(
    `npm install ${manifest.main} ${target.tarball}`,
    'npm',
    ['install', '--no-audit', '--no-fund', ...tarballs],
    project,
  )
  const quickstart = readFileSync(join(root, 'examples', 'quickstart.js'), 'utf8')
  writeFileSync(join(project, 'quickstart.js'), quickstart.replace(/require\('\.\.'\)/g, "require('ferrolock')"))
  const out = step(`quick start on Node ${process.version}, ${platform}`, process.execPath, ['quickstart.js'], project)
  if (!out.trim().endsWith('free again: true')) {
    console.error(`[smoke] unexpected quick start output:\n${out}`)
    process.exit(1)
  }
  console.log(`[smoke] ok: ${platform}, Node ${process.version}`)
} finally {
  rmSync(project, { recursive: true, force: true })
}
