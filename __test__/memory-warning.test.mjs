// The memory backend says when it excludes nothing: in a node cluster worker or under PM2
// cluster mode (NODE_APP_INSTANCE), one FerrolockWarning per process, unless silenced.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { test } from 'node:test'

import { createClient } from '../index.js'

const run = promisify(execFile)
const script = fileURLToPath(new URL('./fixtures/memory-warning.cjs', import.meta.url))

async function warnings(mode, env = {}) {
  const { NODE_APP_INSTANCE, ...rest } = process.env // never inherit a PM2 setting
  void NODE_APP_INSTANCE
  const { stdout } = await run(process.execPath, [script, mode], { env: { ...rest, ...env }, timeout: 30_000 })
  const lines = stdout.trim().split('\n')
  assert.equal(lines.at(-1), 'done', `the child finished (${stdout})`)
  return lines.slice(0, -1).map((line) => JSON.parse(line))
}

test('under PM2 cluster mode: one warning per process, naming the backends that share locks', async () => {
  const seen = await warnings('plain', { NODE_APP_INSTANCE: '0' })
  assert.equal(seen.length, 1, JSON.stringify(seen))
  assert.equal(seen[0].type, 'FerrolockWarning')
  assert.equal(seen[0].code, 'FERROLOCK_MEMORY_NOT_SHARED')
  assert.match(seen[0].message, /PM2/)
  assert.match(seen[0].message, /Redis backend/)
  assert.match(seen[0].message, /file backend/)
  assert.match(seen[0].message, /memoryWarning: false/)
})

test('in a node cluster worker: one warning', async () => {
  const seen = await warnings('cluster')
  assert.deepEqual(
    seen.map((w) => w.code),
    ['FERROLOCK_MEMORY_NOT_SHARED'],
  )
  assert.match(seen[0].message, /node cluster worker/)
})

test('a single process, or memoryWarning: false, gets no warning', async () => {
  assert.deepEqual(await warnings('plain'), [])
  assert.deepEqual(await warnings('silenced', { NODE_APP_INSTANCE: '0' }), [])
})

test('memoryWarning is checked: a boolean, and for the memory backend only', () => {
  assert.throws(() => createClient({ memoryWarning: 'no' }), { code: 'ERR_INVALID_ARG' })
  assert.throws(() => createClient({ redis: 'redis://127.0.0.1:1', memoryWarning: false }), {
    code: 'ERR_INVALID_ARG',
    message: /memoryWarning applies to the memory backend only/,
  })
})
