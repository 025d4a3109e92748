// Secrets never appear in an error's message or cause, whatever the server echoes: a DynamoDB
// endpoint of this test's own that puts the request headers (Authorization with the access key
// id, the session token) into a DynamoDB-shaped error, and a Redis endpoint that echoes the AUTH
// command with the password of the URL.
import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { after, before, describe, test } from 'node:test'

import { createClient } from '../index.js'
import { freePort } from './support/servers.mjs'

const T = { timeout: 30_000 }

// Every text of an error: its message, and its causes' messages.
function texts(err) {
  const out = []
  for (let e = err; e; e = e.cause) out.push(String(e.message ?? e))
  return out.join('\n')
}

// One RESP command (an array of bulk strings) from the start of `buf`: its arguments and the
// characters it used, or null while it is incomplete.
function parseCommand(buf) {
  const head = /^\*(\d+)\r\n/.exec(buf)
  if (!head) return null
  let at = head[0].length
  const args = []
  for (let i = 0; i < Number(head[1]); i++) {
    const len = /^\$(\d+)\r\n/.exec(buf.slice(at))
    if (!len) return null
    const start = at + len[0].length
    const end = start + Number(len[1])
    if (buf.length < end + 2) return null
    args.push(buf.slice(start, end))
    at = end + 2
  }
  return { args, used: at }
}

describe('secrets in server replies are masked', () => {
  let dynamo, redis
  before(async () => {
    // DynamoDB-shaped: 400, a JSON error whose message is every request header.
    dynamo = http.createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        const headers = Object.entries(req.headers)
          .map(([k, v]) => `${k}: ${v}`)
          .join('; ')
        res.writeHead(400, { 'content-type': 'application/x-amz-json-1.0' })
        res.end(JSON.stringify({ __type: 'com.amazonaws.dynamodb.v20120810#ValidationException', message: headers }))
      })
    })
    // Redis-shaped: accepts the connection (AUTH, CLIENT), then refuses every command with an
    // error that repeats everything the connection sent, AUTH and its password included.
    redis = net.createServer((sock) => {
      sock.on('error', () => {})
      let buf = ''
      const sent = []
      sock.on('data', (d) => {
        buf += d.toString('latin1')
        for (;;) {
          const parsed = parseCommand(buf)
          if (!parsed) break
          buf = buf.slice(parsed.used)
          sent.push(parsed.args.join(' '))
          const name = parsed.args[0].toUpperCase()
          if (name === 'AUTH' || name === 'CLIENT' || name === 'SELECT') sock.write('+OK\r\n')
          else sock.write(`-ERR unknown command, you sent: ${sent.join('; ')}\r\n`)
        }
      })
    })
    for (const server of [dynamo, redis]) {
      const port = await freePort()
      await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve))
    }
  })
  after(async () => {
    await new Promise((resolve) => dynamo.close(resolve))
    await new Promise((resolve) => redis.close(resolve))
  })

  for (const keyId of ['AKIAIOSFODNN7EXAMPLE', 'ASIAY34FZKBOKMUTVV7A']) {
    test(`DynamoDB: access key id ${keyId.slice(0, 4)}…, secret and session token`, T, async () => {
      const credentials = {
        accessKeyId: keyId,
        secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
        sessionToken: 'IQoJb3JpZ2luX2VjEXAMPLEsessionTOKEN0123456789/abcdefghijklmnopqrstuvwxyz+ABCDEFG==',
      }
      const locks = createClient({
        dynamodb: {
          table: 'locks',
          region: 'us-east-1',
          endpoint: `http://127.0.0.1:${dynamo.address().port}`,
          credentials,
        },
      })
      try {
        const err = await locks.tryAcquire('job').then(
          () => assert.fail('the endpoint refuses every request'),
          (e) => e,
        )
        assert.equal(err.code, 'ERR_BACKEND_UNAVAILABLE')
        const all = texts(err)
        // The echo arrived (so the masking below was needed) ...
        assert.match(all, /x-amz-security-token/i, all)
        assert.match(all, /authorization/i, all)
        // ... and no secret is left in it.
        for (const secret of [keyId, credentials.secretAccessKey, credentials.sessionToken]) {
          assert.ok(!all.includes(secret), `${secret.slice(0, 4)}… in: ${all}`)
        }
        assert.doesNotMatch(all, /A[KS]IA[A-Z0-9]{12,}/)
      } finally {
        await locks.close()
      }
    })
  }

  test('Redis: the password of the URL', T, async () => {
    const password = 'hunter2-very-secret'
    const locks = createClient({
      redis: `redis://app:${password}@127.0.0.1:${redis.address().port}`,
      requestTimeout: 2000,
    })
    try {
      const err = await locks.tryAcquire('job').then(
        () => assert.fail('the endpoint refuses every command'),
        (e) => e,
      )
      assert.equal(err.code, 'ERR_BACKEND_UNAVAILABLE')
      const all = texts(err)
      assert.match(all, /you sent/, all) // the echo arrived
      assert.ok(!all.includes(password), all)
    } finally {
      await locks.close()
    }
  })
})
