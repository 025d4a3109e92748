// The DynamoDB backend against dynalite (and moto_server for TTL), with real processes for the
// fault tests: a holder killed, a holder stopped and resumed (skewed wall clocks: crates/core/tests/dynamodb_clock.rs).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { after, before, describe, test } from 'node:test'

import { DescribeTimeToLiveCommand, DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb'

import { createClient, InvalidArgumentError, TableNotFoundError } from '../index.js'
import { bounded, watchChild, within } from './support/bounded.mjs'
import { freePort, startDynalite, startMoto } from './support/servers.mjs'

const WORKER = fileURLToPath(new URL('./fixtures/dynamo-worker.mjs', import.meta.url))
let seq = 0
const unique = (p) => `${p}-${process.pid}-${++seq}`

// A worker process; `next(event)` resolves its next JSON line with that event.
function worker(args, options, env = {}) {
  const child = spawn(process.execPath, [WORKER, ...args], {
    env: { ...process.env, FERROLOCK_TEST_DYNAMO: JSON.stringify(options), ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const waiting = []
  const seen = []
  createInterface({ input: child.stdout }).on('line', (line) => {
    const ev = { ...JSON.parse(line), receivedAt: Date.now() }
    const i = waiting.findIndex((w) => w.event === ev.event)
    if (i >= 0) waiting.splice(i, 1)[0].resolve(ev)
    else seen.push(ev)
  })
  const exited = bounded(once(child, 'exit'), `worker ${args[0]} to exit`)
  exited.catch(() => {}) // awaited by the tests that need it
  const answer = watchChild(child, `worker ${args[0]}`)
  return {
    child,
    exited,
    next(event) {
      const i = seen.findIndex((e) => e.event === event)
      if (i >= 0) return Promise.resolve(seen.splice(i, 1)[0])
      // Rejects if the worker exits without saying it, or after HANG_MS.
      return answer(new Promise((resolve) => waiting.push({ event, resolve })), `'${event}'`)
    },
    kill: async (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      if (signal === 'SIGKILL') await exited
    },
  }
}

function assertNoOverlap(intervals) {
  const sorted = intervals.map(([a, b]) => [BigInt(a), BigInt(b)]).sort((x, y) => (x[0] < y[0] ? -1 : 1))
  for (let i = 1; i < sorted.length; i++) {
    assert.ok(sorted[i][0] > sorted[i - 1][1], `critical sections ${i - 1} and ${i} overlap`)
  }
}

describe('dynamodb', () => {
  let server
  const table = 'locks'
  let admin
  before(async () => {
    server = await startDynalite()
    admin = createClient(server.options(table))
    assert.deepEqual(await admin.createLockTable(), { table, created: true })
  })
  after(async () => {
    await admin.close()
    await server.stop()
  })

  test('50 workers in 5 processes, 500 increments of a counter file, no overlap', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferrolock-'))
    const file = join(dir, 'counter')
    await writeFile(file, '0')
    const name = unique('exclusion')
    const opts = server.options(table, { leaseDuration: 5000, heartbeatPeriod: 1000 })
    const procs = Array.from({ length: 5 }, () => worker(['exclusion', name, file, '10', '10'], opts))
    const results = await Promise.all(procs.map((p) => p.next('done')))
    assert.equal(Number(await readFile(file, 'utf8')), 500)
    const intervals = results.flatMap((r) => r.intervals)
    assert.equal(intervals.length, 500)
    assertNoOverlap(intervals)
    // Released, with the fence of the 500th acquisition kept for the next one.
    const rec = await admin.get(name)
    assert.equal(rec.released, true)
    assert.equal(rec.fence, 500n)
  })

  test('a holder killed with SIGKILL is taken over after one lease, not before', async () => {
    const name = unique('killed')
    const lease = 1000
    const opts = server.options(table, { leaseDuration: lease, heartbeatPeriod: 300 })
    const holder = worker(['hold', name], opts)
    const { fence } = await holder.next('acquired')
    await holder.kill()
    const taker = createClient(opts)
    const started = performance.now()
    const lock = await taker.acquire(name, { retryDelay: 100, retryJitter: 0 })
    const waited = performance.now() - started
    // The waiter counts a whole lease on its own clock from its first look; then one poll at most.
    assert.ok(waited >= lease, `took over after ${waited} ms`)
    // Room for a loaded machine above; the lower bound is the safety property.
    assert.ok(waited < within(lease + 100), `took over after ${waited} ms`)
    assert.ok(lock.fence > BigInt(fence))
    await lock.release()
    await taker.close()
  })

  test('a live holder is never taken over, across several leases', async () => {
    const name = unique('live')
    const opts = server.options(table, { leaseDuration: 1000, heartbeatPeriod: 200 })
    const holder = worker(['hold', name], opts)
    await holder.next('acquired')
    const taker = createClient(opts)
    await assert.rejects(taker.acquire(name, { wait: 3500, retryDelay: 50 }), { code: 'ERR_LOCK_NOT_ACQUIRED' })
    await holder.kill()
    await taker.close()
  })

  test('a holder that was stopped past its lease reports lost within one heartbeat of resuming', async () => {
    const name = unique('stopped')
    const lease = 800
    const heartbeat = 200
    const opts = server.options(table, { leaseDuration: lease, heartbeatPeriod: heartbeat })
    const holder = worker(['hold', name], opts)
    const { fence } = await holder.next('acquired')
    holder.child.kill('SIGSTOP')
    const taker = createClient(opts)
    const lock = await taker.acquire(name, { retryDelay: 50 })
    assert.ok(lock.fence > BigInt(fence), 'the new holder has the greater fence')
    const resumedAt = Date.now()
    holder.child.kill('SIGCONT')
    const lost = await holder.next('lost')
    assert.ok(lost.receivedAt - resumedAt < within(heartbeat), `lost ${lost.receivedAt - resumedAt} ms after resuming`)
    // The old holder did not touch the new holder's lock.
    assert.equal((await admin.inspect(name)).fence, lock.fence)
    assert.equal(await lock.release(), true)
    await holder.kill()
    await taker.close()
  })

  test('a heartbeat of a lock that was taken over reports lost within one heartbeat period', async () => {
    const name = unique('overwritten')
    const heartbeat = 200
    const opts = server.options(table, { leaseDuration: 2000, heartbeatPeriod: heartbeat })
    const holder = worker(['hold', name], opts)
    const { fence } = await holder.next('acquired')
    // Another owner's write replaces the record (as a takeover does), with a greater fence.
    const raw = new DynamoDBClient({
      endpoint: server.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    })
    const newFence = String(Number(fence) + 1)
    const item = {
      key: { S: name },
      owner: { S: 'intruder' },
      token: { S: 'someone-else' },
      recordVersionNumber: { S: 'other' },
      leaseDuration: { N: '60000' },
      isReleased: { BOOL: false },
      fence: { N: newFence },
    }
    await raw.send(new PutItemCommand({ TableName: table, Item: item }))
    const overwrittenAt = Date.now()
    const lost = await holder.next('lost')
    assert.match(lost.message, /deleted or taken by another owner/)
    assert.ok(lost.receivedAt - overwrittenAt < within(heartbeat), `lost after ${lost.receivedAt - overwrittenAt} ms`)
    // The old holder left the new owner's record alone.
    const { Item } = await raw.send(
      new GetItemCommand({ TableName: table, Key: { key: { S: name } }, ConsistentRead: true }),
    )
    assert.deepEqual(Item, item)
    raw.destroy()
    await holder.kill()
  })

  test('data (string or Buffer), get, sendHeartbeat and release with data, deleteOnRelease, attributes', async () => {
    const locks = createClient(server.options(table, { heartbeatPeriod: 0, ownerName: 'box-1' }))
    const name = unique('data')
    const bytes = Buffer.from([0, 1, 254, 255])
    const lock = await locks.acquire(name, { data: bytes, additionalAttributes: { job: { id: 7 }, tags: ['a'] } })
    assert.equal(lock.owner, 'box-1')
    let info = await admin.inspect(name)
    assert.ok(Buffer.isBuffer(info.data) && info.data.equals(bytes))
    let rec = await admin.get(name)
    assert.deepEqual(
      { ...rec, data: null, recordVersionNumber: null },
      {
        owner: 'box-1',
        data: null,
        fence: lock.fence,
        leaseDuration: 20_000,
        released: false,
        expired: false,
        recordVersionNumber: null,
        attributes: { job: { id: 7 }, tags: ['a'] },
      },
    )
    // heartbeatPeriod 0: no automatic heartbeats; a manual one renews and can replace the data.
    assert.equal(await lock.sendHeartbeat({ data: 'step 2' }), true)
    const after = await admin.get(name)
    assert.equal(after.data, 'step 2')
    assert.notEqual(after.recordVersionNumber, rec.recordVersionNumber)
    assert.equal(await lock.release({ data: 'done' }), true)
    rec = await admin.get(name)
    assert.equal(rec.released, true)
    assert.equal(rec.data, 'done')
    assert.equal(await admin.inspect(name), null)

    // Kept data unless replaceData; deleteOnRelease removes the record.
    const kept = await locks.acquire(name, { data: 'new' })
    assert.equal((await admin.get(name)).data, 'done')
    await kept.release()
    const replaced = await locks.acquire(name, { data: 'new', replaceData: true, deleteOnRelease: true })
    assert.equal((await admin.get(name)).data, 'new')
    assert.ok(replaced.fence > kept.fence)
    await replaced.release()
    assert.equal(await admin.get(name), null)
    // Per release: delete, or keep despite deleteOnRelease.
    const kept2 = await locks.acquire(name, { deleteOnRelease: true })
    assert.equal(await kept2.release({ delete: false }), true)
    assert.equal((await admin.get(name)).released, true)
    const gone = await locks.acquire(name)
    assert.equal(await gone.release({ delete: true }), true)
    assert.equal(await admin.get(name), null)

    // Callbacks too.
    const l = await new Promise((resolve, reject) => locks.acquire(name, (e, x) => (e ? reject(e) : resolve(x))))
    const hb = await new Promise((resolve, reject) => l.sendHeartbeat((e, ok) => (e ? reject(e) : resolve(ok))))
    assert.equal(hb, true)
    const r = await new Promise((resolve, reject) => admin.get(name, (e, x) => (e ? reject(e) : resolve(x))))
    assert.equal(r.owner, 'box-1')
    await locks.close()
    assert.equal(l.signal.aborted, true, 'close() released the lock')
    assert.equal(await admin.inspect(name), null)
  })

  test('session monitor: expiring when less than safeTime is left, then lost', async () => {
    const locks = createClient(server.options(table, { heartbeatPeriod: 0 }))
    const lock = await locks.acquire(unique('monitor'), { ttl: 600, safeTime: 200 })
    const events = []
    lock.on('expiring', (e) => events.push(['expiring', e.remaining]))
    await once(lock, 'lost')
    assert.equal(events.length, 1)
    assert.ok(events[0][1] <= 200)
    assert.equal(lock.lost, true)
    await locks.close()
  })

  test('using() auto-extends even on a client without automatic heartbeats', async () => {
    const locks = createClient(server.options(table, { heartbeatPeriod: 0 }))
    const result = await locks.using(unique('using'), { ttl: 300 }, async (signal, lock) => {
      await once(lock, 'refreshed')
      return signal.aborted
    })
    assert.equal(result, false)
    await locks.close()
  })

  test('additionalTimeToWait: waits one lease plus that, then gives up', async () => {
    const opts = server.options(table, { leaseDuration: 400, heartbeatPeriod: 100 })
    const holder = createClient(opts)
    const taker = createClient(opts)
    const name = unique('atw')
    const lock = await holder.acquire(name)
    const started = performance.now()
    await assert.rejects(taker.acquire(name, { additionalTimeToWait: 200, retryDelay: 50 }), {
      code: 'ERR_LOCK_NOT_ACQUIRED',
    })
    const waited = performance.now() - started
    assert.ok(waited >= 600 && waited < within(600), `gave up after ${waited} ms`)
    await lock.release()
    // A dead holder with a longer lease than ours is taken over, even with no extra time.
    const dead = await holder.acquire(unique('atw-dead'), { ttl: 700, autoExtend: false })
    const taken = await taker.acquire(dead.name, { ttl: 100, additionalTimeToWait: 0, retryDelay: 50 })
    assert.ok(taken.fence > dead.fence)
    await taken.release()
    await holder.close()
    await taker.close()
  })

  test('tables: provisioned with tags, existing table, delete, missing table fails at once', async () => {
    const t = unique('tbl')
    const locks = createClient(server.options(t, { partitionKey: 'lockName', sortKey: { name: 'kind', value: 'x' } }))
    assert.deepEqual(await locks.createLockTable({ readCapacity: 2, writeCapacity: 2, tags: { team: 'a' } }), {
      table: t,
      created: true,
    })
    assert.deepEqual(await locks.createLockTable(), { table: t, created: false })
    const lock = await locks.acquire('a')
    await lock.release()
    assert.deepEqual(await locks.deleteLockTable(), { table: t, deleted: true })
    assert.deepEqual(await locks.deleteLockTable(), { table: t, deleted: false })
    const started = performance.now()
    await assert.rejects(locks.acquire('a'), (err) => {
      assert.ok(err instanceof TableNotFoundError)
      assert.equal(err.code, 'ERR_TABLE_NOT_FOUND')
      assert.match(err.message, new RegExp(t))
      return true
    })
    assert.ok(performance.now() - started < within(0)) // at once
    await assert.rejects(locks.inspect('a'), { code: 'ERR_TABLE_NOT_FOUND' })
    await locks.close()
  })

  test('the standard AWS chain: environment variables, or a profile in shared files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferrolock-aws-'))
    await writeFile(join(dir, 'credentials'), '[locks]\naws_access_key_id = fromfile\naws_secret_access_key = x\n')
    await writeFile(join(dir, 'config'), `[profile locks]\nregion = eu-west-1\nendpoint_url = ${server.endpoint}\n`)
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_')))
    const envs = [
      {
        AWS_ENDPOINT_URL_DYNAMODB: server.endpoint,
        AWS_REGION: 'us-west-2',
        AWS_ACCESS_KEY_ID: 'env',
        AWS_SECRET_ACCESS_KEY: 'env',
      },
      {
        AWS_ENDPOINT_URL: server.endpoint,
        AWS_DEFAULT_REGION: 'us-west-2',
        AWS_ACCESS_KEY_ID: 'env',
        AWS_SECRET_ACCESS_KEY: 'e',
      },
      {
        AWS_PROFILE: 'locks',
        AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'),
        AWS_CONFIG_FILE: join(dir, 'config'),
      },
    ]
    for (const env of envs) {
      const child = spawn(process.execPath, [WORKER, 'take', unique('chain')], {
        env: {
          ...clean,
          ...env,
          AWS_EC2_METADATA_DISABLED: 'true',
          FERROLOCK_TEST_DYNAMO: JSON.stringify({ dynamodb: { table } }),
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      })
      let out = ''
      child.stdout.on('data', (d) => (out += d))
      const [code] = await bounded(once(child, 'exit'), 'a worker with credentials from the chain to exit')
      assert.equal(code, 0, Object.keys(env).join(' '))
      assert.equal(JSON.parse(out).event, 'acquired')
    }
  })

  test('bad input is ERR_INVALID_ARG before any request', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`
    const base = { table: 'locks', endpoint: dead, region: 'us-east-1' }
    const bad = [
      [{ ...base, table: 'ab' }, /table/],
      [{ ...base, table: 'bad name' }, /table/],
      [{ ...base, table: 42 }, /table/],
      [{ ...base, partitionKey: '' }, /partitionKey/],
      [{ ...base, partitionKey: 'owner' }, /partitionKey/],
      [{ ...base, leaseDuration: 5000, heartbeatPeriod: 5000 }, /heartbeatPeriod/],
      [{ ...base, leaseDuration: 1000, heartbeatPeriod: 2000 }, /heartbeatPeriod/],
      [{ ...base, leaseDuration: 0 }, /leaseDuration/],
      [{ ...base, tabel: 'x' }, /unknown option "tabel"/],
      [{ ...base, endpoint: 'localhost:8000' }, /endpoint/],
      [{ ...base, credentials: { accessKeyId: 'a' } }, /credentials/],
      [{ ...base, sortKey: { name: 'k' } }, /sortKey/],
      [{ ...base, region: 'Not A Region' }, /region/],
    ]
    for (const [dynamodb, pattern] of bad) {
      assert.throws(
        () => createClient({ dynamodb }),
        (err) => err instanceof InvalidArgumentError && err.code === 'ERR_INVALID_ARG' && pattern.test(err.message),
        JSON.stringify(dynamodb),
      )
    }
    assert.throws(() => createClient({ dynamodb: base, redis: 'redis://x' }), { code: 'ERR_INVALID_ARG' })
    const locks = createClient({ dynamodb: base })
    for (const [options, pattern] of [
      [{ additionalAttributes: { fence: 1 } }, /fence/],
      [{ additionalAttributes: { key: 1 } }, /key/],
      [{ additionalAttributes: { a: () => 1 } }, /additionalAttributes/],
      [{ additionalAttributes: [1] }, /additionalAttributes/],
      [{ replaceData: 'yes' }, /replaceData/],
      [{ additionalTimeToWait: -1 }, /additionalTimeToWait/],
      [{ additionalTimeToWait: 5, wait: 5 }, /additionalTimeToWait/],
      [{ safeTime: 30_000 }, /safeTime/],
      [{ data: 42 }, /options\.data/],
    ]) {
      await assert.rejects(
        locks.acquire('x', options),
        (err) => err.code === 'ERR_INVALID_ARG' && pattern.test(err.message),
      )
    }
    await assert.rejects(locks.createLockTable({ readCapacity: 1 }), { code: 'ERR_INVALID_ARG' })
    await assert.rejects(locks.createLockTable({ ttl: true }), /ttlAttribute/)
    // DynamoDB-only options and methods on other backends.
    const memory = createClient()
    await assert.rejects(memory.acquire('x', { replaceData: true }), /only supported by the dynamodb backend/)
    await assert.rejects(memory.get('x'), /only available on a dynamodb client/)
    await assert.rejects(memory.createLockTable(), { code: 'ERR_INVALID_ARG' })
    await memory.close()
    await locks.close()
  })

  test('unreachable endpoint or missing credentials: ERR_BACKEND_UNAVAILABLE, no secret shown', async () => {
    const secret = 'wJalrXUtnFEMI-very-secret'
    const locks = createClient({
      dynamodb: {
        table: 'locks',
        endpoint: `http://127.0.0.1:${await freePort()}`,
        region: 'us-east-1',
        credentials: { accessKeyId: 'AKIDSECRETLOOKING', secretAccessKey: secret, sessionToken: 'tok-secret' },
        requestTimeout: 500,
      },
    })
    const err = await locks.acquire('x', { wait: false }).catch((e) => e)
    assert.equal(err.code, 'ERR_BACKEND_UNAVAILABLE')
    assert.ok(err.cause, 'the cause is attached')
    const shown = `${err.message} ${err.cause.message} ${err.stack}`
    for (const s of [secret, 'AKIDSECRETLOOKING', 'tok-secret']) assert.ok(!shown.includes(s), shown)
    await locks.close()

    // No credentials anywhere in the chain.
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_')))
    const child = spawn(process.execPath, [WORKER, 'take', 'x'], {
      env: {
        ...clean,
        HOME: '/nonexistent',
        AWS_EC2_METADATA_DISABLED: 'true',
        FERROLOCK_TEST_DYNAMO: JSON.stringify({ dynamodb: { table, endpoint: server.endpoint, region: 'us-east-1' } }),
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    const [code] = await bounded(once(child, 'exit'), 'a worker without credentials to exit')
    assert.notEqual(code, 0)
    assert.match(stderr, /ERR_BACKEND_UNAVAILABLE/)
    assert.match(stderr, /credentials/i)
  })
})

describe('dynamodb on moto_server', () => {
  test('createLockTable({ ttl: true }) turns on DynamoDB TTL for the ttlAttribute', async (t) => {
    const moto = await startMoto()
    t.after(() => moto.stop())
    const locks = createClient({
      dynamodb: {
        table: 'ttl-locks',
        endpoint: moto.endpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
        ttlAttribute: 'expiresAt',
      },
    })
    assert.deepEqual(await locks.createLockTable({ ttl: true }), { table: 'ttl-locks', created: true })
    const raw = new DynamoDBClient({
      endpoint: moto.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    })
    const out = await raw.send(new DescribeTimeToLiveCommand({ TableName: 'ttl-locks' }))
    assert.deepEqual(out.TimeToLiveDescription, { TimeToLiveStatus: 'ENABLED', AttributeName: 'expiresAt' })
    // Locks work on moto too, with the TTL attribute written.
    const lock = await locks.acquire('m', { ttl: 5000 })
    const { Item } = await raw.send(new GetItemCommand({ TableName: 'ttl-locks', Key: { key: { S: 'm' } } }))
    assert.ok(Number(Item.expiresAt.N) > Date.now() / 1000 + 24 * 3600)
    assert.equal(await lock.release(), true)
    raw.destroy()
    await locks.close()
  })

  test('wrong credentials: ERR_BACKEND_UNAVAILABLE at once, not retried, no secret shown', async (t) => {
    // With this setting moto checks credentials, as AWS does.
    const moto = await startMoto({ env: { INITIAL_NO_AUTH_ACTION_COUNT: '0' } })
    t.after(() => moto.stop())
    const secret = 'wrong-secret-value-123'
    const locks = createClient({
      dynamodb: {
        table: 'locks',
        endpoint: moto.endpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: 'AKIAWRONGKEYID', secretAccessKey: secret },
      },
    })
    for (const call of [() => locks.createLockTable(), () => locks.acquire('x'), () => locks.inspect('x')]) {
      const started = performance.now()
      const err = await call().catch((e) => e)
      assert.equal(err.code, 'ERR_BACKEND_UNAVAILABLE')
      assert.match(err.message, /HTTP 403|UnrecognizedClient|InvalidSignature|AccessDenied/)
      // A waiting acquire gives up at once: retrying cannot fix credentials.
      assert.ok(performance.now() - started < 2000)
      const shown = `${err.message} ${err.cause && err.cause.message} ${err.stack}`
      assert.ok(!shown.includes(secret), shown)
    }
    await locks.close()
  })
})
