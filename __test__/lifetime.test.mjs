// A client keeps the process alive while it holds locks or has waiting acquires, like a
// socket, and lets it exit after close().
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { after, before, describe, test } from 'node:test'

import { HANG_MS } from './support/bounded.mjs'
import { startRedis } from './support/servers.mjs'

// Each child is bounded: past HANG_MS it is killed and the test fails naming the command.
const run = (cmd, args) => promisify(execFile)(cmd, args, { timeout: HANG_MS, killSignal: 'SIGKILL' })
const script = fileURLToPath(new URL('./fixtures/lifetime.mjs', import.meta.url))

describe('process lifetime', () => {
  let server
  before(async () => {
    server = await startRedis()
  })
  after(async () => {
    await server.stop()
  })

  for (const backend of ['memory', 'redis']) {
    const url = () => (backend === 'redis' ? [server.url] : [])
    test(`${backend}: a held lock keeps the process alive until close()`, async () => {
      const { stdout } = await run(process.execPath, [script, 'held', ...url()])
      assert.equal(stdout.trim(), 'closed')
    })
    test(`${backend}: a waiting acquire keeps the process alive until close()`, async () => {
      const { stdout } = await run(process.execPath, [script, 'waiting', ...url()])
      assert.equal(stdout.trim(), 'closed')
    })
    test(`${backend}: an idle client does not keep the process alive`, async () => {
      const { stdout } = await run(process.execPath, [script, 'idle', ...url()])
      assert.equal(stdout.trim(), '')
    })
  }
})
