// The published package as a user's tools see it (issue 11). The project is packed once
// (`npm pack`) and the tarball unpacked into a fresh project's node_modules; then:
//  - @arethetypeswrong/cli finds no problem for any entry, under node10, node16 (from CJS and from
//    ESM) and bundler resolution;
//  - publint --strict has nothing to say about the tarball;
//  - a consumer project without @types/node compiles against the typings with `tsc --strict`,
//    as CommonJS and as ESM, under NodeNext and (with the DOM's typings) Bundler resolution;
//  - every named export that an entry's typings declare (read with the TypeScript compiler API,
//    for the "require" and the "import" condition) exists at run time under `require` and `import`.
// The unpacked package has no native addon (platform packages bring it); the run-time check points
// napi-rs's loader at this checkout's addon through NAPI_RS_NATIVE_LIBRARY_PATH.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const require = createRequire(import.meta.url)
const ts = require('typescript')
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
const ATTW = join(ROOT, 'node_modules', '@arethetypeswrong', 'cli', 'dist', 'index.js')
// The entries a user imports; each must resolve with types under every resolution mode.
const ENTRIES = [
  '.',
  './dist-lock',
  './dynamo-lock',
  './exclusive-lock',
  './exclusive-lock/schemas',
  './lib/schemas',
  './leverege',
]
const RESOLUTIONS = ['node10', 'node16-cjs', 'node16-esm', 'bundler']

let tmp, tarball, pkgDir, pkg, consumer

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'ferrolock-package-'))
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', tmp], {
    cwd: ROOT,
    maxBuffer: 16 * 1024 * 1024,
  })
  tarball = join(tmp, JSON.parse(stdout)[0].filename)
  consumer = join(tmp, 'consumer')
  pkgDir = join(consumer, 'node_modules', 'ferrolock')
  await mkdir(pkgDir, { recursive: true })
  await run('tar', ['-xzf', tarball, '-C', pkgDir, '--strip-components=1'])
  pkg = JSON.parse(await readFile(join(pkgDir, 'package.json'), 'utf8'))
})

after(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true })
})

test('the tarball has the metadata a registry page and a linter look for', async () => {
  assert.equal(pkg.type, 'commonjs')
  assert.equal(pkg.license, 'MIT')
  assert.deepEqual(pkg.repository, { type: 'git', url: 'git+https://github.com/ferrolock/ferrolock.git' })
  assert.equal(pkg.homepage, 'https://github.com/ferrolock/ferrolock#readme')
  assert.equal(pkg.bugs.url, 'https://github.com/ferrolock/ferrolock/issues')
  assert.match(pkg.engines.node, /^>=\d+$/)
  const license = await readFile(join(pkgDir, 'LICENSE'), 'utf8')
  assert.match(license, /^MIT License\n\nCopyright \(c\) \d{4} ferrolock contributors\n/)
  const changelog = await readFile(join(pkgDir, 'CHANGELOG.md'), 'utf8')
  assert.match(changelog, new RegExp(`^## \\[${pkg.version.replaceAll('.', '\\.')}\\]$`, 'm'))
})

test('@arethetypeswrong/cli finds no problem in any entry under node10, node16 (CJS, ESM) and bundler', async () => {
  // attw exits non-zero when it finds a problem; the JSON report says which, so read it either way.
  const { stdout } = await run(process.execPath, [ATTW, tarball, '--format', 'json'], {
    maxBuffer: 64 * 1024 * 1024,
  }).catch((err) => err)
  const { analysis } = JSON.parse(stdout)
  assert.deepEqual(analysis.problems, [], JSON.stringify(analysis.problems, null, 2))
  for (const entry of ENTRIES) {
    const checked = analysis.entrypoints[entry]
    assert.ok(checked, `attw did not check the entry ${entry}`)
    for (const kind of RESOLUTIONS) {
      const types = checked.resolutions[kind]?.resolution?.fileName
      assert.match(String(types), /\.d\.m?ts$/, `${entry} under ${kind}: typings resolved to ${types}`)
    }
  }
})

test('publint --strict has nothing to say about the tarball', async () => {
  const { publint } = await import('publint')
  const bytes = await readFile(tarball)
  const tarballBuffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)
  const { messages, pkg: linted } = await publint({ pack: { tarball: tarballBuffer }, strict: true })
  const { formatMessage } = await import('publint/utils')
  assert.deepEqual(
    messages.map((m) => `${m.type}: ${formatMessage(m, linted, { color: false })}`),
    [],
  )
})

test('the typings compile with tsc --strict without @types/node: CommonJS and ESM, NodeNext and Bundler', async () => {
  const config = {
    compilerOptions: {
      strict: true,
      noEmit: true,
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      lib: ['ES2022'],
      types: [],
      skipLibCheck: false,
    },
    files: ['cjs.cts', 'esm.mts', 'no-node.ts'],
  }
  await writeFile(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true }))
  await writeFile(
    join(consumer, 'cjs.cts'),
    `import ferrolock = require('ferrolock')
import distLock = require('ferrolock/dist-lock')
import dynamoLock = require('ferrolock/dynamo-lock')
import ExclusiveLock = require('ferrolock/exclusive-lock')
import schemas = require('ferrolock/exclusive-lock/schemas')
import libSchemas = require('ferrolock/lib/schemas')
import Lock = require('ferrolock/leverege')

export async function main(): Promise<void> {
  const locks = ferrolock.createClient('redis://127.0.0.1:6379', { keyPrefix: 'app:' })
  const lock = await locks.acquire('job', { ttl: 10_000, data: 'x', signal: lock0().signal })
  lock.on('lost', (err) => log(err.code, lock.fence))
  const aborted: boolean = lock.signal.aborted
  try {
    await lock.release()
  } catch (err) {
    if (err instanceof ferrolock.LockError && err.code === 'ERR_LOCK_LOST') log(aborted)
  }
  const ex = new ExclusiveLock({ name: 'init', cache_connection: { set: async () => 'OK' } })
  ex.on('error', (e) => log(e.message))
  const held = await Lock.create({ type: 'inMemory' }).lock('k')
  await held.unlock()
  void [distLock, dynamoLock.createClient('Locks'), schemas.instantiation_options, libSchemas]
}
declare function lock0(): import('ferrolock').Lock
declare function log(...args: unknown[]): void
`,
  )
  await writeFile(
    join(consumer, 'esm.mts'),
    `import ferrolock, { createClient, LockError, type AcquireOptions } from 'ferrolock'
import distLock from 'ferrolock/dist-lock'
import { createClient as dynamoCreateClient } from 'ferrolock/dynamo-lock'
import ExclusiveLock from 'ferrolock/exclusive-lock'
import schemas from 'ferrolock/exclusive-lock/schemas'
import Lock, { LockError as LeveregeLockError, LockHandle } from 'ferrolock/leverege'

const options: AcquireOptions = { wait: 1_000 }
const locks = createClient()
await locks.using('job', options, async (signal, lock) => {
  if (signal.aborted) return
  await lock.extend(5_000)
})
const err: unknown = null
if (err instanceof LockError) log(err.code)
if (err instanceof LeveregeLockError) log(err.attempts)
export const all = [ferrolock, distLock, dynamoCreateClient, ExclusiveLock, schemas, Lock, LockHandle]
declare function log(...args: unknown[]): void
`,
  )
  // Proves the project really has no Node typings: were Buffer declared, the directive would fail.
  await writeFile(
    join(consumer, 'no-node.ts'),
    `// @ts-expect-error this project has no @types/node
export type NodeBuffer = Buffer
`,
  )
  // Without Node's or the DOM's typings, the timer is ferrolock's stand-in, which can be unref'd.
  await writeFile(
    join(consumer, 'timer.cts'),
    `import ExclusiveLock = require('ferrolock/exclusive-lock')
export function stop(ex: ExclusiveLock): void {
  ex.refresh_timer?.unref()
}
`,
  )
  await writeFile(join(consumer, 'tsconfig.json'), JSON.stringify({ ...config, files: [...config.files, 'timer.cts'] }))
  // Again as a bundler project that has the DOM's typings (its AbortSignal) but not Node's.
  const bundler = { ...config.compilerOptions, module: 'Preserve', moduleResolution: 'Bundler', lib: ['ES2022', 'DOM'] }
  await writeFile(join(consumer, 'tsconfig.bundler.json'), JSON.stringify({ ...config, compilerOptions: bundler }))
  for (const project of ['tsconfig.json', 'tsconfig.bundler.json']) {
    const result = await run(process.execPath, [TSC, '-p', project], { cwd: consumer }).catch((e) => e)
    assert.equal(`${result.stdout}${result.stderr}`, '', project)
    assert.equal(result.code ?? 0, 0, project)
  }
})

// Which target `exports[entry]` gives under these conditions (first matching key wins, like Node).
function target(value, conditions) {
  if (typeof value === 'string') return value
  for (const [key, next] of Object.entries(value)) {
    if (conditions.includes(key)) {
      const found = target(next, conditions)
      if (found !== undefined) return found
    }
  }
  return undefined
}

// The value exports (functions, classes, constants) that a typings file declares, with whether
// each is callable; read with the TypeScript compiler API.
function declaredValues(file) {
  const program = ts.createProgram([file], {
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
  })
  const checker = program.getTypeChecker()
  const moduleSymbol = checker.getSymbolAtLocation(program.getSourceFile(file))
  assert.ok(moduleSymbol, `${file} is not a module`)
  const values = {}
  for (const symbol of checker.getExportsOfModule(moduleSymbol)) {
    const resolved = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol
    // `prototype` is every class's own property, not an export of the module.
    if (!(resolved.flags & ts.SymbolFlags.Value) || symbol.name === 'prototype') continue
    values[symbol.name] = Boolean(resolved.flags & (ts.SymbolFlags.Function | ts.SymbolFlags.Class))
  }
  return values
}

// The run-time side, in a child process whose module resolution starts in the consumer project.
const CHECK = `import { createRequire } from 'node:module'
const require = createRequire(import.meta.url)
const expected = JSON.parse(process.argv[2])
const wrong = []
for (const { specifier, condition, values } of expected) {
  const loaded = condition === 'require' ? require(specifier) : await import(specifier)
  for (const [name, callable] of Object.entries(values)) {
    const value = loaded[name]
    if (value === undefined) wrong.push(condition + ' ' + specifier + ': ' + name + ' is missing')
    else if (callable && typeof value !== 'function') wrong.push(condition + ' ' + specifier + ': ' + name + ' is not a function')
  }
}
console.log(JSON.stringify(wrong))
`

test('every value export declared by the typings of every entry exists at run time, under require and import', async () => {
  const addons = (await readdir(ROOT)).filter((f) => /^ferrolock\..+\.node$/.test(f))
  assert.equal(addons.length, 1, `expected one built addon ferrolock.<platform>.node in ${ROOT} (npm run build:debug)`)
  const expected = []
  for (const entry of ENTRIES) {
    const specifier = `ferrolock${entry.slice(1)}`
    for (const condition of ['require', 'import']) {
      const types = target(pkg.exports[entry], ['types', condition, 'node', 'default'])
      const js = target(pkg.exports[entry], [condition, 'node', 'default'])
      assert.ok(types && js, `exports[${entry}] has typings and code for "${condition}"`)
      const values = declaredValues(join(pkgDir, types))
      // An ES module importing CommonJS code always gets module.exports as its default export.
      if (condition === 'import' && /\.c?js$/.test(js)) values.default = false
      expected.push({ specifier, condition, values })
    }
  }
  // The main entry's typings declare the whole API, not a handful of names.
  const main = expected.find((e) => e.specifier === 'ferrolock' && e.condition === 'import').values
  assert.ok(Object.keys(main).length >= 12, `the ESM typings declare ${Object.keys(main).join(', ')}`)
  // And the ESM typings declare what the CommonJS ones do, plus the default export.
  const mainCjs = expected.find((e) => e.specifier === 'ferrolock' && e.condition === 'require').values
  assert.deepEqual(Object.keys(main).sort(), [...Object.keys(mainCjs), 'default'].sort())

  await writeFile(join(consumer, 'check.mjs'), CHECK)
  const env = { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: join(ROOT, addons[0]) }
  delete env.NODE_OPTIONS
  const { stdout, stderr } = await run(process.execPath, ['check.mjs', JSON.stringify(expected)], {
    cwd: consumer,
    env,
    timeout: 60_000,
  })
  assert.equal(stderr, '')
  assert.deepEqual(JSON.parse(stdout), [])
})
