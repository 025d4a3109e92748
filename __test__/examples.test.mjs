// The examples in examples/ run as a user would run them, each checked by its output: the
// Express app under node cluster, the cron processes with a fenced store, the TypeScript service
// (compiled with tsc --strict) and the DynamoDB lease + heartbeat job. Express and cron run on the
// file backend (their default) and on Redis (REDIS_URL).
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import http from 'node:http'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { promisify } from 'node:util'

import { ROOT, runExample, startExample } from './support/example-process.mjs'
import { startDynalite, startRedis } from './support/servers.mjs'

const run = promisify(execFile)
let redis
const dirs = []
const tempDir = async (prefix) => {
  const dir = await mkdtemp(join(tmpdir(), `ferrolock-${prefix}-`))
  dirs.push(dir)
  return dir
}

before(async () => {
  redis = await startRedis()
})
after(async () => {
  await redis?.stop()
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })))
})

const lines = (output, regex) => output.split('\n').filter((line) => regex.test(line))

// One GET on a new connection (no keep-alive), so node cluster hands each to the next worker.
function get(port) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 5000 }, (res) => {
      let body = ''
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(body) }))
    })
    req.on('timeout', () => req.destroy(new Error('GET / took more than 5 s')))
    req.on('error', reject)
  })
}

describe('examples/express-exclusive-init', () => {
  async function check(env) {
    const stateDir = await tempDir('express')
    const app = startExample('examples/express-exclusive-init/server.js', {
      env: { PORT: '0', WORKERS: '4', STATE_DIR: stateDir, ...env },
    })
    try {
      const [, port] = await app.waitFor(/all 4 workers serve on http:\/\/127\.0\.0\.1:(\d+)\//, 'all workers served')

      // Every worker answers, and each says the schema it serves is the migrated one.
      const seen = new Set()
      for (let i = 0; i < 200 && seen.size < 4; i++) {
        const { status, body } = await get(Number(port))
        assert.equal(status, 200)
        assert.equal(body.schema, 1, `worker ${body.worker} serves schema ${body.schema}`)
        seen.add(body.worker)
      }
      assert.equal(seen.size, 4, `4 workers answered within 200 requests: ${[...seen]}`)

      // The migration ran once, and every worker started serving after it had finished.
      const out = app.output.split('\n')
      assert.equal(lines(app.output, /migrating schema 0 -> 1/).length, 1, app.output)
      assert.equal(lines(app.output, /schema already at version 1/).length, 3, app.output)
      const done = out.findIndex((line) => line.includes('migration done'))
      const serving = out.flatMap((line, i) => (line.includes('serving (schema 1)') ? [i] : []))
      assert.equal(serving.length, 4, app.output)
      assert.ok(done >= 0 && serving.every((i) => i > done), `serving only after the migration:\n${app.output}`)
      const db = JSON.parse(await readFile(join(stateDir, 'db.json'), 'utf8'))
      assert.equal(db.schema, 1)
      assert.equal(db.migrations.length, 1, JSON.stringify(db))

      app.signal('SIGTERM')
      const { code } = await app.exited
      assert.equal(code, 0, `stopped cleanly:\n${app.output}`)
    } finally {
      app.kill()
    }

    // Started again on the same state: every worker finds the schema migrated, nothing runs.
    const again = startExample('examples/express-exclusive-init/server.js', {
      env: { PORT: '0', WORKERS: '4', STATE_DIR: stateDir, ...env },
    })
    try {
      await again.waitFor(/all 4 workers serve on /, 'all workers served after a restart')
      assert.equal(lines(again.output, /schema already at version 1/).length, 4, again.output)
      assert.doesNotMatch(again.output, /migrating/)
      assert.equal(JSON.parse(await readFile(join(stateDir, 'db.json'), 'utf8')).migrations.length, 1)
      again.signal('SIGTERM')
      assert.equal((await again.exited).code, 0, again.output)
    } finally {
      again.kill()
    }
  }

  test('on Redis (REDIS_URL): the migration runs once, all 4 workers serve after it; not again on restart', () =>
    check({ REDIS_URL: redis.url }))
  test('on the file backend (the default): the migration runs once, all 4 workers serve after it; not again on restart', () =>
    check({}))
})

describe('examples/worker-cron', () => {
  async function check(env) {
    const lockDir = await tempDir('cron')
    const output = await runExample('examples/worker-cron/index.js', {
      env: { WORKERS: '3', TICKS: '4', TICK_MS: '3000', STALL_TICK: '1', LOCK_DIR: lockDir, ...env },
    })
    const summary = JSON.parse(/^summary (.*)$/m.exec(output)?.[1] ?? 'null')
    assert.ok(summary, output)
    // Each tick's result was written exactly once, stall or not.
    assert.deepEqual(Object.keys(summary.done), ['0', '1', '2', '3'], output)
    for (const [tick, writers] of Object.entries(summary.done))
      assert.equal(writers.length, 1, `tick ${tick}: ${output}`)
    // The stalled holder of tick 1 came back after its lease and its write was refused: the next
    // holder had taken over with a higher fence and finished the tick.
    assert.equal(summary.refused.length, 1, output)
    const [stale] = summary.refused
    assert.deepEqual(stale.value.done, 1)
    assert.ok(BigInt(stale.fence) < BigInt(stale.highest), JSON.stringify(stale))
    assert.notEqual(stale.by, summary.done[1][0], 'the tick was finished by another process')
    assert.equal(lines(output, /tick 1: stalling/).length, 1, output)
    assert.equal(lines(output, /tick 1: taking over/).length, 1, output)
    assert.equal(lines(output, /the store refused my write: stale fence/).length, 1, output)
  }

  test('on Redis (REDIS_URL): each tick runs once; a stale holder is refused', () => check({ REDIS_URL: redis.url }))
  test('on the file backend (the default): each tick runs once; a stale holder is refused', () => check({}))
})

test('examples/typescript compiles with tsc --strict and runs', async () => {
  await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'examples/typescript'], {
    cwd: ROOT,
    timeout: 60_000,
  })
  for (const env of [{}, { REDIS_URL: redis.url }]) {
    const output = await runExample('examples/typescript/dist/service.mjs', { env })
    const invoices = lines(output, /^invoice \d+ for /).map((line) => Number(/^invoice (\d+)/.exec(line)[1]))
    assert.deepEqual(
      invoices.sort((a, b) => a - b),
      [1, 2, 3, 4, 5],
      output,
    )
    assert.match(output, /^compaction skipped: held by /m)
    assert.match(output, /^compaction ran$/m)
    assert.match(output, /^busy: ERR_LOCK_NOT_ACQUIRED$/m)
  }
})

test('examples/dynamodb: two jobs take turns; each keeps its lease past 2 s by heartbeats', async () => {
  const dynamo = await startDynalite()
  let first, second
  try {
    const env = {
      AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      AWS_PROFILE: '',
      LOCK_TABLE: 'example-locks',
      STEPS: '6',
      STEP_MS: '500',
    }
    // The first job holds the lease before the second starts, so the order is known.
    // job-a runs 6 s, so that job-b (a new process, slow to start on a loaded machine) finds it holding.
    first = startExample('examples/dynamodb/job.js', { env: { ...env, JOB_OWNER: 'job-a', STEPS: '12' } })
    await first.waitFor(/\[job-a\] acquired nightly-export \(fence 1\)/, 'job-a acquired the lock')
    second = startExample('examples/dynamodb/job.js', { env: { ...env, JOB_OWNER: 'job-b' } })
    await second.waitFor(/\[job-b\] nightly-export is held by job-a \(fence 1\); waiting/, 'job-b saw job-a hold')
    await first.waitFor(/\[job-a\] step 12\/12/, 'job-a finished its steps')
    assert.doesNotMatch(second.output, /acquired/, 'job-b waits while job-a heartbeats')
    const [a, b] = await Promise.all([first.exited, second.exited])
    assert.equal(a.code, 0, a.output)
    assert.equal(b.code, 0, b.output)
    assert.match(b.output, /\[job-b\] acquired nightly-export \(fence 2\)/)
    for (const [job, out] of [
      ['job-a', a.output],
      ['job-b', b.output],
    ]) {
      const m = new RegExp(`\\[${job}\\] released: true; held (\\d+) ms with (\\d+) heartbeats`).exec(out)
      assert.ok(m, out)
      assert.ok(Number(m[1]) >= 3000, `held for the whole job, longer than the lease: ${out}`)
      assert.ok(Number(m[2]) >= 2, `heartbeats kept the lease: ${out}`)
      assert.doesNotMatch(out, /lost the lease/)
    }
  } finally {
    first?.kill()
    second?.kill()
    await dynamo.stop()
  }
})
