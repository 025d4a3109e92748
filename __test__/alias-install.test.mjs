// `npm install dist-lock@npm:ferrolock dynamo-lock@npm:ferrolock` runs the old packages' README
// examples unchanged (issue 5), installed the way users install: the dist/ tarballs of
// `npm run release:pack` are published to a local registry (support/registry.mjs), a fresh
// project installs ferrolock under both old names from it with only node and npm on PATH, and the
// README examples (fixtures/alias/*.js) run there as separate node processes against servers
// started here. Each must print exactly the documented results and exit by itself with code 0.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, sep } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { DIST, PACK_TIMEOUT_MS, check, ensureDist, publishDist, startRegistry } from './support/registry.mjs'
import { startDynalite, startRedis } from './support/servers.mjs'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const FIXTURES = join(ROOT, '__test__', 'fixtures', 'alias')
const DEPS = join(ROOT, 'node_modules')
const LOCK_ID = /^c[0-9a-z]{24}$/
const EXPIRES = /^Lock expires on (\d+) currently its (\d+)$/
const EXIT_TIMEOUT_MS = 15_000

let tmp, project, original, packedFiles, redis, dynalite, registry

// The environment of an example: this one without AWS settings or node:test's marker, no AWS
// config files, no instance metadata, node and npm alone on PATH; then `extra`.
function exampleEnv(extra) {
  const env = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('AWS_') && k !== 'NODE_TEST_CONTEXT' && k !== 'NODE_OPTIONS') env[k] = v
  }
  return {
    ...env,
    AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: '1',
    AWS_CONFIG_FILE: join(tmp, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(tmp, 'no-aws-credentials'),
    AWS_EC2_METADATA_DISABLED: 'true',
    PATH: registry.bin, // node and npm only
    ...extra,
  }
}

const redisEnv = () => exampleEnv({ REDIS_PORT: String(redis.port) })
const dynamoEnv = () =>
  exampleEnv({
    AWS_ENDPOINT_URL_DYNAMODB: dynalite.endpoint,
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_REGION: 'us-east-1',
  })

// Runs `node <script>` in `cwd`; resolves its exit code, signal, output, and whether it had to
// be killed because it did not exit by itself within EXIT_TIMEOUT_MS.
function runNode(cwd, args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let hung = false
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => {
      hung = true
      child.kill('SIGKILL')
    }, EXIT_TIMEOUT_MS)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, hung, stdout, stderr })
    })
  })
}

// Runs a fixture in `cwd`; asserts it exited by itself, with code 0 and nothing on stderr (no
// warning, no uncaught error); returns its stdout lines.
async function example(cwd, name, env) {
  const { code, signal, hung, stdout, stderr } = await runNode(cwd, [].concat(name), env)
  assert.equal(hung, false, `${name} did not exit by itself within ${EXIT_TIMEOUT_MS} ms; output:\n${stdout}`)
  assert.deepEqual({ code, signal, stderr }, { code: 0, signal: null, stderr: '' }, `${name}; output:\n${stdout}`)
  return stdout.split('\n').slice(0, -1)
}

before(
  async () => {
    ;[redis, dynalite] = await Promise.all([startRedis(), startDynalite()])
    tmp = await mkdtemp(join(tmpdir(), 'ferrolock-alias-'))

    // The packages as published: every dist/ tarball, in a registry of their own.
    const glibc = process.report.getReport().header.glibcVersionRuntime
    const manifest = await ensureDist(`${process.platform}-${process.arch}-${glibc ? 'gnu' : 'musl'}`)
    const { stdout } = await check('tar', ['-tzf', join(DIST, manifest.main)])
    packedFiles = stdout
      .split('\n')
      .filter(Boolean)
      .map((f) => f.replace(/^package\//, ''))
    registry = await startRegistry()
    await publishDist(registry, manifest)

    // A fresh project with the examples' own dependencies from this repository's node_modules
    // (`file:` directories are linked, nothing is downloaded), then ferrolock under both old
    // names (package aliases) from the registry, its platform package with it.
    project = await registry.project('old-readme-examples', {
      dependencies: { redis: `file:${join(DEPS, 'redis3')}`, 'aws-sdk': `file:${join(DEPS, 'aws-sdk')}` },
    })
    await registry.npm(project, ['install', 'dist-lock@npm:ferrolock', 'dynamo-lock@npm:ferrolock'])

    // The same dist-lock script also runs against the original dist-lock 2.0.1 (a devDependency):
    // a project whose node_modules links to it and to node_redis 3.
    original = join(tmp, 'original')
    await mkdir(join(original, 'node_modules'), { recursive: true })
    await symlink(join(DEPS, 'dist-lock'), join(original, 'node_modules', 'dist-lock'), 'dir')
    await symlink(join(DEPS, 'redis3'), join(original, 'node_modules', 'redis'), 'dir')

    for (const f of await readdir(FIXTURES)) {
      await copyFile(join(FIXTURES, f), join(project, f))
      await copyFile(join(FIXTURES, f), join(original, f))
    }
  },
  { timeout: PACK_TIMEOUT_MS + 120_000 },
)

after(async () => {
  await Promise.all([redis?.stop(), dynalite?.stop(), registry?.stop()])
  if (tmp) await rm(tmp, { recursive: true, force: true })
})

describe('the packed tarball', () => {
  test('carries the JS entries, the compat entries and their lib/ modules, and no native addon', () => {
    for (const f of [
      'package.json',
      'index.js',
      'index.mjs',
      'index.d.ts',
      'binding.js',
      'binding.d.ts',
      'compat/dist-lock.js',
      'compat/dynamo-lock.js',
      'lib/dynamodb-adapter.js',
      'lib/transport.js',
    ]) {
      assert.ok(packedFiles.includes(f), `${f} is not in the tarball`)
    }
    assert.deepEqual(
      packedFiles.filter((f) => f.endsWith('.node')),
      [],
    )
  })

  test('carries every file its exports map names', async () => {
    const { exports } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'))
    const targets = new Set()
    const collect = (value) => {
      if (typeof value === 'string') targets.add(value.replace(/^\.\//, ''))
      else for (const v of Object.values(value)) collect(v)
    }
    collect(exports)
    assert.deepEqual(
      [...targets].filter((f) => !packedFiles.includes(f)),
      [],
    )
  })

  test('is what require("dist-lock") and require("dynamo-lock") load in the project', async () => {
    const probe = `
      const names = ['dist-lock', 'dynamo-lock']
      console.log(JSON.stringify(names.map((n) => ({
        resolved: require.resolve(n),
        name: require(n + '/package.json').name,
        api: n === 'dist-lock' ? typeof require(n) : typeof require(n).createClient,
      }))))`
    const [line] = await example(project, ['-e', probe], exampleEnv({}))
    const seen = JSON.parse(line)
    for (const [i, alias] of ['dist-lock', 'dynamo-lock'].entries()) {
      const dir = join(project, 'node_modules', alias) + sep
      assert.ok(seen[i].resolved.startsWith(dir), `${alias} resolved to ${seen[i].resolved}, not inside ${dir}`)
      assert.deepEqual(seen[i], { resolved: seen[i].resolved, name: 'ferrolock', api: 'function' })
    }
  })
})

describe('dist-lock@npm:ferrolock runs dist-lock 2.0.1 README code', () => {
  test('the README example: acquires with the documented fields, releases without a callback', async () => {
    const lines = await example(project, 'dist-lock-readme.js', redisEnv())
    assert.equal(lines.length, 3, lines.join('\n'))
    assert.equal(lines[0], 'keys key,id,owner,release,extend,acquiredOnAttempt,acquireDelay')
    const lock = JSON.parse(lines[1].replace(/^lock /, ''))
    assert.match(lock.id, LOCK_ID)
    assert.deepEqual(lock, {
      key: 'lock:shared-resource-name',
      id: lock.id,
      owner: 'owner-name',
      acquiredOnAttempt: 1,
      acquireDelay: 0,
    })
    // The README's lock.release() (no callback) released it: the lock is gone.
    assert.equal(lines[2], 'after release null')
    assert.equal(await redis.command('EXISTS lock:shared-resource-name'), ':0')
  })

  // What dist-lock-api.js prints, ids replaced by their order of appearance (<id1>, <id2>, ...).
  const API_OUTPUT = [
    [
      'options',
      { ttl: 30000, retryDelay: 50, maxRetries: -1, keyPrefix: 'lock:' },
      { maxRetries: 2, ttl: 30000, retryDelay: 50, keyPrefix: 'lock:' },
      { ttl: 200, retryDelay: 50, maxRetries: -1, keyPrefix: 'lock:' },
    ],
    [
      'acquire',
      null,
      {
        key: 'lock:shared-resource-name',
        id: '<id1>',
        owner: 'owner-name',
        release: 'function',
        extend: 'function',
        acquiredOnAttempt: 1,
        acquireDelay: 0,
      },
    ],
    ['acquire held, maxRetries 2', null, false],
    ['waited at least 100 ms', true],
    [
      'getAcquiredLock',
      null,
      { key: 'lock:shared-resource-name', id: '<id1>', owner: 'owner-name', release: 'function', extend: 'function' },
    ],
    ['same id', true],
    ['lock.extend(1000)', null, true],
    ['pttl in (0, 1000]', true],
    ['extendLock(60000)', null, true],
    ['pttl in (59000, 60000]', true],
    ['extendLock, other id', null, false],
    ['releaseLock, other id', null, false],
    ['still held by the same id', true],
    [
      'acquire without owner',
      null,
      {
        key: 'lock:another-resource',
        id: '<id2>',
        owner: '',
        release: 'function',
        extend: 'function',
        acquiredOnAttempt: 1,
        acquireDelay: 0,
      },
    ],
    ['releaseLock', null, true],
    ['lock.release', null, true],
    ['lock.release again', null, false],
    ['lock.extend after release', null, false],
    ['getAcquiredLock after release', null, null],
    [
      'acquire, ttl 200',
      null,
      {
        key: 'lock:expiring',
        id: '<id3>',
        owner: 'first',
        release: 'function',
        extend: 'function',
        acquiredOnAttempt: 1,
        acquireDelay: 0,
      },
    ],
    ['acquire after expiry: owner', 'second'],
    ['attempts > 1, acquireDelay = (attempts - 1) * 50', true],
  ]

  // The printed steps, each lock id checked for dist-lock's shape and replaced by <idN>.
  async function apiRun(cwd) {
    const ids = []
    const lines = await example(cwd, 'dist-lock-api.js', redisEnv())
    return lines.map((line) =>
      JSON.parse(line, (key, value) => {
        if (key !== 'id') return value
        assert.match(value, LOCK_ID)
        if (!ids.includes(value)) ids.push(value)
        return `<id${ids.indexOf(value) + 1}>`
      }),
    )
  }

  test('the configuration block and every documented call give the documented results', async () => {
    assert.deepEqual(await apiRun(project), API_OUTPUT)
    assert.equal(await redis.command('EXISTS lock:shared-resource-name lock:another-resource lock:expiring'), ':0')
  })

  test('the same script against the original dist-lock 2.0.1 prints the same', async () => {
    assert.deepEqual(await apiRun(original), API_OUTPUT)
    assert.equal(await redis.command('EXISTS lock:shared-resource-name lock:another-resource lock:expiring'), ':0')
  })
})

describe('dynamo-lock@npm:ferrolock runs dynamo-lock 0.1.3 README code', () => {
  test('"Setting up your lock table" creates the table', async () => {
    assert.deepEqual(await example(project, 'dynamo-lock-create-table.js', dynamoEnv()), ['Created lock table'])
  })

  test('"Getting a lock" gets it, and a second run cannot', async () => {
    assert.deepEqual(await example(project, 'dynamo-lock-get-lock.js', dynamoEnv()), ['Got lock!'])
    assert.deepEqual(await example(project, 'dynamo-lock-get-lock.js', dynamoEnv()), ['Could not get lock'])
  })

  test('the createClient snippets and the documented calls give the documented results', async () => {
    const steps = (await example(project, 'dynamo-lock-api.js', dynamoEnv())).map((line) => JSON.parse(line))
    // The 'Lock expires on <expiresOn> currently its <now>' strings: a lock still held.
    const held = (step) => {
      const m = EXPIRES.exec(step[1])
      assert.ok(m, `${step[0]}: ${step[1]}`)
      assert.ok(Number(m[1]) > Number(m[2]), `${step[1]} is not in the future`)
      return [step[0], '<Lock expires on>']
    }
    const expiring = new Set([
      'getLock lockTable testLock again',
      'getLock Lock testLock',
      'getLock Lock shortLock again',
    ])
    assert.deepEqual(
      steps.map((step) => (expiring.has(step[0]) && step.length === 2 ? held(step) : step)),
      [
        ['options', { awsConfig: { apiVersion: '2012-08-10' } }, 'lockTable', true],
        ['createLockTable lockTable', null, 'SUCCESS'],
        ['createLockTable lockTable again', 'TABLE_EXISTS', null],
        ['getLock lockTable testLock', null, 'SUCCESS'],
        ['getLock lockTable testLock again', '<Lock expires on>'],
        ['getLock Lock testLock', '<Lock expires on>'],
        ['getLock Lock shortLock 1100', null, 'SUCCESS'],
        ['getLock Lock shortLock again', '<Lock expires on>'],
        ['getLock Lock shortLock after expiry', null, 'SUCCESS'],
        ['deleteLockTable lockTable', null, 'SUCCESS'],
        ['deleteLockTable, no such table', 'ERROR'],
        // The original never called back here (docs/compat/README.md: GetItem errors call back 'ERROR').
        ['getLock, no such table', 'ERROR'],
        ['deleteLockTable Lock', null, 'SUCCESS'],
      ],
    )
  })
})
