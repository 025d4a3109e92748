// The install path as users take it: a local npm registry (verdaccio, a devDependency) on a free
// loopback port with no uplinks, every dist/ tarball published to it, and fresh projects that
// install from it with a PATH holding node and npm only (no cargo, rustc or C compiler).
// Every child process runs under a deadline and a hang fails naming the command.
import { spawn } from 'node:child_process'
import { existsSync, realpathSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { sourceStamps } from '../../scripts/release-stamp.mjs'
import { freePort } from './servers.mjs'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const DIST = join(ROOT, 'dist')
const VERDACCIO = join(ROOT, 'node_modules', 'verdaccio', 'bin', 'verdaccio')
export const STEP_TIMEOUT_MS = 60_000
// A release build of the addon, when dist/ has to be made first (fat LTO: minutes on 2 cores).
export const PACK_TIMEOUT_MS = 30 * 60_000

const running = new Set()
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

/**
 * Runs a command; resolves { code, signal, stdout, stderr }. Past `timeout` ms the process is
 * killed and the promise rejects with an error naming the command and what it printed.
 */
export function exec(cmd, args, { cwd, env, timeout = STEP_TIMEOUT_MS, inherit = false } = {}) {
  const what = `${cmd} ${args.join(' ')}`
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', inherit ? 'inherit' : 'pipe', 'pipe'] })
    running.add(child)
    let stdout = ''
    let stderr = ''
    child.stdout?.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => {
      stderr += d
      if (inherit) process.stderr.write(d)
    })
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${what} (in ${cwd}) hung: no exit within ${timeout} ms\n${stdout}\n${stderr}`))
    }, timeout)
    child.on('error', (err) => {
      clearTimeout(timer)
      running.delete(child)
      reject(new Error(`${what} could not start: ${err.message}`))
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      running.delete(child)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

/** Like exec, but rejects unless the command exits 0. */
export async function check(cmd, args, options) {
  const r = await exec(cmd, args, options)
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.code ?? r.signal}\n${r.stdout}\n${r.stderr}`)
  }
  return r
}

async function readManifest() {
  try {
    return JSON.parse(await readFile(join(DIST, 'manifest.json'), 'utf8'))
  } catch {
    return null
  }
}

/**
 * dist/ as `npm run release:pack` leaves it, made of this tree. When only the JavaScript changed
 * since, the addons already built are packed again (`--no-build`); when dist/ is missing, lacks
 * this machine's platform package or the Rust sources changed, it is built and packed for this
 * host.
 */
export async function ensureDist(platform) {
  const have = await readManifest()
  const now = sourceStamps(ROOT)
  const hasHost = have?.platforms.some((p) => p.platform === platform)
  if (hasHost && have.stamps?.js === now.js && have.stamps.rust === now.rust) return have
  const repack =
    hasHost &&
    have.stamps?.rust === now.rust &&
    have.platforms.every((p) => existsSync(join(ROOT, 'npm', p.platform, p.addon)))
  const targets = repack ? have.platforms.map((p) => p.triple).join(',') : 'host'
  const args = repack ? ['--no-build'] : []
  await check(process.execPath, [join(ROOT, 'scripts', 'release-pack.mjs'), ...args], {
    cwd: ROOT,
    env: { ...process.env, FERROLOCK_TARGETS: targets },
    timeout: repack ? STEP_TIMEOUT_MS : PACK_TIMEOUT_MS,
    inherit: true,
  })
  return readManifest()
}

/**
 * A directory with node, npm and sh (npm runs packages' install scripts with it) only, to be the
 * whole PATH of the installing projects.
 */
async function toolsDir(dir) {
  await mkdir(dir, { recursive: true })
  // npm's own script, run by this node: beside it, or the first npm on PATH (a node binary from
  // the npm registry, as for the Node 22 run, comes without npm).
  const candidates = [dirname(process.execPath), ...(process.env.PATH ?? '').split(delimiter)].map((d) =>
    join(d, 'npm'),
  )
  const found = candidates.find((c) => existsSync(c))
  if (!found) throw new Error(`no npm beside ${process.execPath} or on PATH`)
  const npmCli = realpathSync(found)
  await symlink(process.execPath, join(dir, 'node'))
  await symlink('/bin/sh', join(dir, 'sh'))
  await writeFile(join(dir, 'npm'), `#!/bin/sh\nexec "${process.execPath}" "${npmCli}" "$@"\n`, { mode: 0o755 })
  return dir
}

/**
 * Starts verdaccio on a free loopback port with no uplinks, registers a user and returns the
 * registry with `env` (for npm children: only this registry, a cache of its own, PATH = node, npm
 * and sh), `publish(tarball)`, `project(name, manifest)` and `stop()`.
 */
export async function startRegistry() {
  const tmp = await mkdtemp(join(tmpdir(), 'ferrolock-registry-'))
  const port = await freePort()
  const url = `http://127.0.0.1:${port}/`
  const config = [
    `storage: ${join(tmp, 'storage')}`,
    'auth:',
    '  htpasswd:',
    `    file: ${join(tmp, 'htpasswd')}`,
    'uplinks: {}',
    'packages:',
    "  '**':",
    '    access: $all',
    '    publish: $authenticated',
    'log: { type: stdout, format: pretty, level: warn }',
    '',
  ].join('\n')
  await writeFile(join(tmp, 'config.yaml'), config)

  const child = spawn(process.execPath, [VERDACCIO, '--config', join(tmp, 'config.yaml'), '--listen', url], {
    cwd: tmp,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  running.add(child)
  let output = ''
  child.stdout.on('data', (d) => (output += d))
  child.stderr.on('data', (d) => (output += d))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGKILL')
      await exited
    }
    running.delete(child)
    await rm(tmp, { recursive: true, force: true })
  }

  try {
    const deadline = Date.now() + STEP_TIMEOUT_MS
    for (;;) {
      if (child.exitCode !== null) throw new Error(`verdaccio exited with ${child.exitCode}:\n${output}`)
      const up = await fetch(`${url}-/ping`).then(
        (r) => r.ok,
        () => false,
      )
      if (up) break
      if (Date.now() > deadline) throw new Error(`verdaccio on ${url} did not answer within ${STEP_TIMEOUT_MS} ms`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    // A user for `npm publish` (verdaccio's CouchDB-style adduser).
    const res = await fetch(`${url}-/user/org.couchdb.user:ferrolock-test`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'ferrolock-test', password: 'test-only-password', type: 'user', roles: [] }),
      signal: AbortSignal.timeout(STEP_TIMEOUT_MS),
    })
    const { token } = await res.json()
    if (!res.ok || !token) throw new Error(`verdaccio did not register the test user: HTTP ${res.status}`)

    const host = url.replace(/^http:/, '')
    await writeFile(
      join(tmp, 'npmrc'),
      [`registry=${url}`, `${host}:_authToken=${token}`, 'audit=false', 'fund=false', 'update-notifier=false', ''].join(
        '\n',
      ),
    )
    const bin = await toolsDir(join(tmp, 'bin'))
    // npm's and the caller's npm_* settings (npm test sets many) stay out of the children.
    const env = {}
    for (const [k, v] of Object.entries(process.env)) {
      if (!/^npm_/i.test(k) && k !== 'NODE_TEST_CONTEXT' && k !== 'NODE_OPTIONS') env[k] = v
    }
    Object.assign(env, {
      PATH: bin,
      npm_config_userconfig: join(tmp, 'npmrc'),
      npm_config_globalconfig: join(tmp, 'no-global-npmrc'),
      npm_config_cache: join(tmp, 'npm-cache'),
    })

    return {
      url,
      env,
      bin,
      output: () => output,
      stop,
      /** `npm publish <tarball>`; resolves npm's output. */
      publish: (tarball) => check(join(bin, 'npm'), ['publish', tarball], { cwd: tmp, env }),
      /** A fresh project directory with this package.json. */
      async project(name, manifest = {}) {
        const dir = join(tmp, 'projects', name)
        await mkdir(dir, { recursive: true })
        const pkg = { name, version: '1.0.0', private: true, ...manifest }
        await writeFile(join(dir, 'package.json'), JSON.stringify(pkg, null, 2) + '\n')
        return dir
      },
      /** `npm <args>` in `cwd` with the registry's environment; rejects unless it exits 0. */
      npm: (cwd, args) => check(join(bin, 'npm'), args, { cwd, env }),
    }
  } catch (err) {
    await stop()
    throw err
  }
}

/** Publishes every tarball of dist/ (the manifest's platform packages, then the main one). */
export async function publishDist(registry, manifest) {
  for (const p of manifest.platforms) await registry.publish(join(DIST, p.tarball))
  await registry.publish(join(DIST, manifest.main))
}
