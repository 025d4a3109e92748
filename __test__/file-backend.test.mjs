// The file backend across real processes on one host: mutual exclusion, a killed and a stopped
// holder, many names, torn records, a full and a read-only file system, fences across restarts.
import assert from 'node:assert/strict'
import { execFile, execFileSync, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { after, test } from 'node:test'

import { createClient } from '../index.js'

const run = promisify(execFile)
const worker = fileURLToPath(new URL('./fixtures/file-worker.mjs', import.meta.url))
const root = mkdtempSync(join(tmpdir(), 'ferrolock-file-'))
after(() => rmSync(root, { recursive: true, force: true }))
let seq = 0
const freshDir = () => join(root, `d${++seq}`)
const hashOf = (name) => createHash('sha256').update(name).digest('hex')

// Rejects after `ms` with a message naming what hung.
function within(ms, what, promise) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

// A `hold` worker: resolves with the child and a function that waits for its next output line.
async function holder(dir, name, ttl) {
  const child = spawn(process.execPath, [worker, 'hold', dir, name, String(ttl)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const next = (what) =>
    within(20000, what, lines.next()).then((r) => {
      assert.ok(!r.done, `${what}: the holder exited`)
      return r.value
    })
  const held = await next('the holder taking the lock')
  assert.match(held, /^held \d+$/)
  return { child, next, fence: BigInt(held.split(' ')[1]) }
}

function kill(child, signal = 'SIGKILL') {
  if (child.exitCode === null && child.signalCode === null) child.kill(signal)
}

test('4 processes x 4 workers x 10 acquisitions: the counter is exact, no critical sections overlap', async () => {
  const dir = freshDir()
  const counter = join(root, `counter-${seq}`)
  writeFileSync(counter, '0')
  const outputs = await within(
    120000,
    'the counting processes',
    Promise.all(
      Array.from({ length: 4 }, () => run(process.execPath, [worker, 'count', dir, 'counter', counter, '4', '10'])),
    ),
  )
  const intervals = outputs
    .flatMap(({ stdout }) => JSON.parse(stdout))
    .map(([a, b]) => [BigInt(a), BigInt(b)])
    .sort((x, y) => (x[0] < y[0] ? -1 : 1))
  assert.equal(Number(execFileSync('cat', [counter], { encoding: 'utf8' })), 160)
  assert.equal(intervals.length, 160)
  for (let i = 1; i < intervals.length; i++) {
    assert.ok(intervals[i][0] > intervals[i - 1][1], `critical sections ${i - 1} and ${i} overlap`)
  }
})

test('a SIGKILLed holder frees the lock at once: a waiter gets it within 1 s, not after its 30 s ttl', async () => {
  const dir = freshDir()
  const { child, fence } = await holder(dir, 'job', 30000)
  const locks = createClient({ file: dir })
  try {
    assert.equal(await locks.tryAcquire('job'), null)
    const waiting = locks.acquire('job', { ttl: 5000, wait: 20000 })
    await new Promise((resolve) => setTimeout(resolve, 100)) // the waiter is queued and watching
    const killedAt = Date.now()
    kill(child)
    const lock = await within(20000, 'the waiter after SIGKILL', waiting)
    const took = Date.now() - killedAt
    assert.ok(took < 1000, `took ${took} ms after SIGKILL`)
    assert.ok(lock.fence > fence)
    await lock.release()
  } finally {
    kill(child)
    await locks.close()
  }
})

test('a SIGSTOPped holder loses the lock when its lease ends, and emits lost when resumed', async () => {
  const dir = freshDir()
  const ttl = 1500
  const { child, next, fence } = await holder(dir, 'job', ttl)
  const locks = createClient({ file: dir })
  try {
    child.kill('SIGSTOP')
    const stoppedAt = Date.now()
    assert.equal(await locks.tryAcquire('job'), null, 'a stopped holder keeps its lease until it ends')
    const lock = await within(20000, 'the takeover after the lease', locks.acquire('job', { ttl: 10000 }))
    const took = Date.now() - stoppedAt
    // Not before the lease could have ended (the last heartbeat was at most ttl/3 before the stop).
    assert.ok(took >= ttl - ttl / 3 - 50, `taken over ${took} ms after SIGSTOP, before the lease ended`)
    assert.ok(lock.fence > fence)
    child.kill('SIGCONT')
    assert.equal(await next('the resumed holder'), 'lost')
    // The resumed holder changed nothing: the lock is still the new owner's.
    const info = await locks.inspect('job')
    assert.equal(info.fence, lock.fence)
    assert.equal(lock.lost, false)
    await lock.release()
  } finally {
    kill(child, 'SIGCONT')
    kill(child)
    await locks.close()
  }
})

test('an aborted wait rejects ERR_ABORTED within 300 ms', async () => {
  const dir = freshDir()
  const a = createClient({ file: dir })
  const b = createClient({ file: dir })
  try {
    const held = await a.acquire('x', { ttl: 30000 })
    const ac = new AbortController()
    const waiting = b.acquire('x', { signal: ac.signal })
    await new Promise((resolve) => setTimeout(resolve, 100))
    const abortedAt = Date.now()
    ac.abort()
    await assert.rejects(waiting, { code: 'ERR_ABORTED' })
    const took = Date.now() - abortedAt
    assert.ok(took < 300, `rejected ${took} ms after abort`)
    await held.release()
    assert.ok(await b.tryAcquire('x'), 'the aborted waiter left no place in the queue behind')
  } finally {
    await a.close()
    await b.close()
  }
})

test('10,000 distinct names, and names that look like paths or differ in case only', async () => {
  const dir = freshDir()
  const locks = createClient({ file: dir })
  const other = createClient({ file: dir })
  try {
    const names = Array.from({ length: 10000 }, (_, i) => `name-${i}`)
    for (let i = 0; i < names.length; i += 100) {
      const batch = names.slice(i, i + 100)
      const held = await Promise.all(batch.map((n) => locks.acquire(n, { ttl: 30000, autoExtend: false })))
      assert.deepEqual(
        held.map((l) => l.fence),
        batch.map(() => 1n),
      )
      assert.deepEqual(
        await Promise.all(held.map((l) => l.release())),
        batch.map(() => true),
      )
    }
    const files = readdirSync(dir)
    assert.equal(files.length, 30000) // .lk, .rec and .hold per name
    for (const f of files) assert.match(f, /^[0-9a-f]{64}\.(lk|rec|hold)$/)

    const odd = ['../x', '/', '/etc/passwd', 'a\0b', 'A', 'a', '.', '..', 'é', 'e\u0301', 'x'.repeat(1024)]
    const besideBefore = readdirSync(root).sort()
    const held = []
    for (const n of odd) {
      const lock = await locks.tryAcquire(n, { ttl: 30000 })
      assert.ok(lock, `${JSON.stringify(n)} was free: no other name maps to it`)
      held.push(lock)
      assert.equal(await other.tryAcquire(n), null)
      assert.equal((await other.inspect(n)).fence, 1n)
    }
    assert.deepEqual(readdirSync(root).sort(), besideBefore, 'nothing was written beside the directory')
    assert.ok(readdirSync(dir).includes(`${hashOf('../x')}.rec`))
    assert.equal(readdirSync(dir).length, 30000 + 3 * odd.length)
    await Promise.all(held.map((l) => l.release()))
  } finally {
    await locks.close()
    await other.close()
  }
})

test('a torn record never grants the lock twice, and fences keep increasing', async () => {
  const dir = freshDir()
  const { child, fence } = await holder(dir, 'torn', 30000)
  const locks = createClient({ file: dir })
  const record = join(dir, `${hashOf('torn')}.rec`)
  try {
    const whole = execFileSync('cat', [record])
    writeFileSync(record, whole.subarray(0, Math.floor(whole.length / 2))) // a write cut short
    assert.equal(await locks.tryAcquire('torn'), null, 'the live holder keeps it')
    assert.ok(await locks.inspect('torn'))
    kill(child)
    const lock = await within(20000, 'the acquire after the holder died', locks.acquire('torn', { ttl: 5000 }))
    assert.ok(lock.fence > fence, `fence ${lock.fence} after ${fence}`)
    assert.equal((await locks.inspect('torn')).fence, lock.fence, 'the record is whole again')
    await lock.release()

    writeFileSync(record, 'garbage') // no holder at all
    const again = await locks.acquire('torn', { ttl: 5000 })
    assert.ok(again.fence > lock.fence)
    await again.release()
  } finally {
    kill(child)
    await locks.close()
  }
})

test('fences strictly increase across full restarts', async () => {
  const dir = freshDir()
  const fences = []
  for (let i = 0; i < 3; i++) {
    const { stdout } = await run(process.execPath, [worker, 'fence', dir, 'restart'])
    fences.push(BigInt(stdout.trim()))
  }
  const both = await Promise.all([0, 1].map(() => run(process.execPath, [worker, 'fence', dir, 'restart'])))
  fences.push(...both.map(({ stdout }) => BigInt(stdout.trim())).sort((a, b) => (a < b ? -1 : 1)))
  assert.deepEqual(fences, [1n, 2n, 3n, 4n, 5n])
})

test('the directory is made with mode 0700 (or the given mode); a file in its place is refused', async () => {
  const dir = freshDir()
  const locks = createClient({ file: dir })
  await (await locks.acquire('m')).release()
  assert.equal(statSync(dir).mode & 0o777, 0o700)
  const groupDir = freshDir()
  const shared = createClient({ file: { dir: groupDir, mode: 0o750 } })
  await (await shared.acquire('m')).release()
  assert.equal(statSync(groupDir).mode & 0o777, 0o750)
  await Promise.all([locks.close(), shared.close()])

  const notDir = join(root, 'a-file')
  writeFileSync(notDir, '')
  const bad = createClient({ file: notDir })
  await assert.rejects(bad.acquire('m'), { code: 'ERR_BACKEND_UNAVAILABLE', message: /is not a directory/ })
  const below = createClient({ file: join(notDir, 'locks') })
  await assert.rejects(below.acquire('m'), { code: 'ERR_BACKEND_UNAVAILABLE', message: /not a directory/ })
  await Promise.all([bad.close(), below.close()])
})

test('bad file options are refused with ERR_INVALID_ARG before any I/O', () => {
  for (const file of [
    '',
    5,
    null,
    [],
    { dir: '' },
    { dir: 'x', mode: -1 },
    { dir: 'x', mode: 0o10000 },
    { dir: 'x', mode: 1.5 },
    { dir: 'x', fsync: 'yes' },
    { dir: 'x', other: 1 },
  ]) {
    assert.throws(() => createClient({ file }), { code: 'ERR_INVALID_ARG' }, JSON.stringify(file))
  }
  assert.throws(() => createClient({ file: 'x', redis: 'redis://localhost' }), { code: 'ERR_INVALID_ARG' })
  assert.throws(() => createClient({ file: 'x', keyPrefix: 'p' }), { code: 'ERR_INVALID_ARG' })
  assert.equal(createClient({ file: join(root, 'never-made') }).backend, 'file')
  assert.ok(!readdirSync(root).includes('never-made'), 'nothing is made before the first operation')
})

// A small tmpfs of our own (the tests run as root). Mounting is part of the test: if it is not
// permitted, the test fails.
function withTmpfs(size, fn) {
  const mnt = mkdtempSync(join(tmpdir(), 'ferrolock-mnt-'))
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mnt])
  return Promise.resolve()
    .then(() => fn(mnt))
    .finally(() => {
      execFileSync('umount', [mnt])
      rmSync(mnt, { recursive: true, force: true })
    })
}

test('a full disk: ERR_BACKEND_UNAVAILABLE, and no lock state is lost or corrupted', async () => {
  await withTmpfs('64k', async (mnt) => {
    const dir = join(mnt, 'locks')
    const locks = createClient({ file: dir })
    const other = createClient({ file: dir })
    try {
      const held = await locks.acquire('kept', { ttl: 30000, data: 'state' })
      // Fill the file system to the last byte.
      const filler = join(mnt, 'filler')
      let chunk = Buffer.alloc(4096)
      writeFileSync(filler, '')
      for (;;) {
        try {
          writeFileSync(filler, chunk, { flag: 'a' })
        } catch (err) {
          assert.equal(err.code, 'ENOSPC')
          if (chunk.length === 1) break
          chunk = Buffer.alloc(chunk.length >> 1)
        }
      }
      await assert.rejects(other.acquire('new', { ttl: 5000 }), {
        code: 'ERR_BACKEND_UNAVAILABLE',
        message: /no space left/,
      })
      await assert.rejects(held.release(), { code: 'ERR_BACKEND_UNAVAILABLE', message: /no space left/ })
      // Nothing was lost: the lock is still held, by the same owner, with its fence and data.
      assert.equal(await other.tryAcquire('kept'), null)
      const info = await other.inspect('kept')
      assert.equal(info.fence, held.fence)
      assert.equal(info.data, 'state')
      assert.equal(await other.inspect('new'), null)

      rmSync(filler)
      // The unconfirmed release ended the lock for its holder; its kernel lock goes with the
      // client, and the lock is free at once, not after its 30 s lease.
      assert.equal(held.lost, true)
      await locks.close()
      const next = await within(5000, 'the acquire after the holder closed', other.acquire('kept', { ttl: 5000 }))
      assert.equal(next.fence, held.fence + 1n)
      await next.release()
      assert.equal((await other.acquire('new', { ttl: 5000 })).fence, 1n)
    } finally {
      await locks.close()
      await other.close()
    }
  })
})

test('a read-only file system: a clear ERR_BACKEND_UNAVAILABLE', async () => {
  await withTmpfs('1m', async (mnt) => {
    const dir = join(mnt, 'locks')
    mkdirSync(dir)
    execFileSync('mount', ['-o', 'remount,ro', mnt])
    const locks = createClient({ file: dir })
    try {
      await assert.rejects(locks.acquire('x'), { code: 'ERR_BACKEND_UNAVAILABLE', message: /read-only/ })
      const missing = createClient({ file: join(mnt, 'missing') })
      await assert.rejects(missing.acquire('x'), { code: 'ERR_BACKEND_UNAVAILABLE', message: /read-only/ })
      await missing.close()
    } finally {
      await locks.close()
    }
  })
})
