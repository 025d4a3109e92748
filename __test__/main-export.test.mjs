// The main export's drop-in duties: `require('ferrolock')` is also dist-lock's factory, and
// `createClient` with a string first is dynamo-lock's; with no arguments it stays ferrolock's
// memory client (the one documented difference of `dynamo-lock@npm:ferrolock`).
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

import ferrolockDefault, { createClient as esmCreateClient } from 'ferrolock'
import { freePort, startRedis } from './support/servers.mjs'

const require = createRequire(import.meta.url)
const ferrolock = require('ferrolock')
const distLock = require('ferrolock/dist-lock')
const dynamoLock = require('ferrolock/dynamo-lock')

test('require("ferrolock") is a function (the dist-lock factory) carrying the ferrolock API', () => {
  assert.equal(typeof ferrolock, 'function')
  assert.equal(ferrolockDefault, ferrolock)
  assert.equal(esmCreateClient, ferrolock.createClient)
  // Factory results are the same shape as ferrolock/dist-lock's (the same code).
  const client = { send_command() {}, hmget() {} }
  const viaMain = ferrolock(client, { keyPrefix: 'a:' })
  const viaEntry = distLock(client, { keyPrefix: 'a:' })
  assert.deepEqual(Object.keys(viaMain), Object.keys(viaEntry))
  assert.deepEqual(Object.keys(viaMain), ['acquire', 'getAcquiredLock', 'releaseLock', 'extendLock'])
})

test('createClient with a string first is a dynamo-lock client; with nothing, the memory client', async () => {
  const db = { getItem() {}, putItem() {} }
  const viaMain = ferrolock.createClient('Locks', { db })
  const viaEntry = dynamoLock.createClient('Locks', { db })
  assert.deepEqual(Object.keys(viaMain), ['lockTableName', 'db'])
  assert.equal(viaMain.lockTableName, 'Locks')
  assert.equal(viaMain.db, db)
  assert.equal(Object.getPrototypeOf(viaMain), Object.getPrototypeOf(viaEntry))

  const memory = ferrolock.createClient()
  assert.equal(memory.backend, 'memory')
  await memory.close()
  // ferrolock/dynamo-lock is dynamo-lock with no exception: no table name throws its string.
  assert.throws(
    () => dynamoLock.createClient(),
    (thrown) => thrown === 'You need to include a value for lockTableName',
  )
})

// `createClient('redis://…')`, the habit of ioredis users, is a Redis client: a DynamoDB table name
// cannot contain ':' or '/', so no dynamo-lock call is taken for a redis:// or rediss:// URL.
// `ferrolock/dynamo-lock` keeps dynamo-lock's behaviour for the same string.
describe('createClient with a Redis URL first', () => {
  const run = promisify(execFile)
  const ROOT = fileURLToPath(new URL('..', import.meta.url))
  let dir, redis, tlsPort

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferrolock-url-'))
    // A CA and a server certificate for 127.0.0.1, for a redis-server that also listens with TLS.
    const openssl = (...args) => run('openssl', args, { cwd: dir })
    const subject = (cn) => ['-subj', `/CN=${cn}`, '-nodes', '-newkey', 'rsa:2048']
    const caFiles = ['-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1']
    await openssl('req', '-x509', ...subject('ferrolock url test CA'), ...caFiles)
    await openssl('req', ...subject('127.0.0.1'), '-keyout', 'server.key', '-out', 'server.csr')
    await writeFile(join(dir, 'san.cnf'), 'subjectAltName=IP:127.0.0.1\n')
    const sign = ['-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'san.cnf']
    await openssl('x509', '-req', '-in', 'server.csr', '-out', 'server.pem', ...sign)
    tlsPort = await freePort()
    const files = { '--tls-cert-file': 'server.pem', '--tls-key-file': 'server.key', '--tls-ca-cert-file': 'ca.pem' }
    const tls = Object.entries(files).flatMap(([flag, file]) => [flag, join(dir, file)])
    redis = await startRedis({ extraArgs: ['--tls-port', String(tlsPort), '--tls-auth-clients', 'no', ...tls] })
  })

  after(async () => {
    await redis?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  test('redis:// is one Redis server, with client options second (CommonJS and ESM)', async () => {
    for (const [how, create] of [
      ['import', esmCreateClient],
      ['require', ferrolock.createClient],
    ]) {
      const locks = create(`redis://127.0.0.1:${redis.port}`, { keyPrefix: `url-${how}:` })
      assert.equal(locks.backend, 'redis')
      const lock = await locks.acquire('job', { ttl: 5_000 })
      // The lock is in that server, under the given prefix.
      assert.equal(await redis.command(`EXISTS url-${how}:job`), ':1')
      assert.equal(typeof lock.fence, 'bigint')
      assert.equal(await lock.release(), true)
      assert.equal(await redis.command(`EXISTS url-${how}:job`), ':0')
      await locks.close()
    }
  })

  test('rediss:// is a Redis server over TLS (the system roots; here SSL_CERT_FILE names the CA)', async () => {
    const script = `const { createClient } = require('ferrolock')
const locks = createClient(process.argv[1])
locks.acquire('tls-job', { ttl: 5000 }).then(async (lock) => {
  console.log(JSON.stringify({ backend: locks.backend, fence: typeof lock.fence, released: await lock.release() }))
  await locks.close()
})`
    const env = { ...process.env, SSL_CERT_FILE: join(dir, 'ca.pem') }
    delete env.NODE_OPTIONS
    const url = `rediss://127.0.0.1:${tlsPort}`
    const { stdout, stderr } = await run(process.execPath, ['-e', script, url], { cwd: ROOT, env, timeout: 30_000 })
    assert.equal(stderr, '')
    assert.deepEqual(JSON.parse(stdout), { backend: 'redis', fence: 'bigint', released: true })
  })

  test('a Redis URL with bad options fails fast with ERR_INVALID_ARG and shows no password', () => {
    const url = 'redis://:s3cret@127.0.0.1:6379'
    const bad = (fn, message) =>
      assert.throws(fn, (err) => {
        assert.equal(err.code, 'ERR_INVALID_ARG')
        assert.match(err.message, message)
        assert.doesNotMatch(err.message, /s3cret/)
        return true
      })
    bad(() => esmCreateClient(url, { redis: 'redis://127.0.0.1:6380' }), /the Redis URL is the first argument/)
    bad(() => esmCreateClient(url, { awsConfig: {} }), /unknown option "awsConfig"/)
    bad(() => esmCreateClient(url, 'app:'), /options must be an object/)
    bad(() => esmCreateClient('redis://:s3cret@127.0.0.1:99999'), /invalid Redis URL/)
  })

  test("ferrolock/dynamo-lock keeps dynamo-lock's behaviour: the same string is a table name", async () => {
    const db = { getItem() {}, putItem() {} }
    const url = `redis://127.0.0.1:${redis.port}`
    const locker = dynamoLock.createClient(url, { db })
    assert.deepEqual(Object.keys(locker), ['lockTableName', 'db'])
    assert.equal(locker.lockTableName, url)
    assert.equal(locker.acquire, undefined)
    // Any other string first is still dynamo-lock's client in the main export too.
    const viaMain = ferrolock.createClient('Locks', { db })
    assert.equal(Object.getPrototypeOf(viaMain), Object.getPrototypeOf(locker))
  })
})
