// Secrets never appear in an error's message or cause, whatever the server echoes: a DynamoDB
// endpoint of this test's own that puts the request headers (Authorization with the access key
// id, the session token) into a DynamoDB-shaped error, and a Redis endpoint that echoes the AUTH
// command with the password of the URL. The same through the caller's own client objects (real
// ioredis and AWS SDK clients, whose errors carry the echo): their error reaches `cause` masked,
// the untouched original under Symbol.for('ferrolock.original').
import assert from 'node:assert/strict'
import http from 'node:http'
import { createRequire } from 'node:module'
import net from 'node:net'
import { after, before, describe, test } from 'node:test'
import { inspect } from 'node:util'

import { createClient } from '../index.js'
import { bounded } from './support/bounded.mjs'
import { freePort, startRedis } from './support/servers.mjs'

const require = createRequire(import.meta.url)
const ORIGINAL = Symbol.for('ferrolock.original')

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

  // Every way the error can be shown: its texts, util.inspect, JSON of the cause.
  const shown = (err) => [texts(err), inspect(err, { depth: 10 }), JSON.stringify(err.cause)].join('\n')

  test("Redis: an ioredis client object's own error carries its password", T, async () => {
    const Redis = require('ioredis')
    const password = 'correct-horse-battery' // not the URL test's: that one is remembered
    const io = new Redis({
      host: '127.0.0.1',
      port: redis.address().port,
      username: 'app',
      password,
      enableReadyCheck: false,
    })
    const locks = createClient({ redis: io })
    try {
      const err = await locks.tryAcquire('job').then(
        () => assert.fail('the endpoint refuses every command'),
        (e) => e,
      )
      assert.equal(err.code, 'ERR_BACKEND_UNAVAILABLE')
      const all = shown(err)
      assert.match(all, /you sent: auth app \*\*\*/i, all) // the echo arrived, masked
      assert.ok(!all.includes(password), all)
      // The cause stands in for the client's ReplyError: same class and fields, masked texts.
      assert.ok(err.cause instanceof Redis.ReplyError)
      assert.equal(err.cause.name, 'ReplyError')
      assert.ok(!err.cause.stack.includes(password), err.cause.stack)
      assert.equal(err.cause.command.name.toLowerCase(), 'evalsha')
      // The caller's own error object: reachable, and not changed.
      const original = err.cause[ORIGINAL]
      assert.ok(original instanceof Redis.ReplyError)
      assert.match(original.message, new RegExp(`auth app ${password}`, 'i'))
      assert.match(err.cause.message, /auth app \*\*\*;/i)
    } finally {
      await locks.close()
      io.disconnect()
    }
  })

  const credentials = {
    accessKeyId: 'AKIAI44QH8DHBEXAMPLE',
    secretAccessKey: 'je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY',
    sessionToken: 'FQoGZXIvYXdzEXAMPLEclientOBJECTsession0123456789/abcdefghijklmnopqrstuvwxyz+ABCDEFG==',
  }
  const sdks = {
    '@aws-sdk/client-dynamodb v3 DynamoDBClient': () => {
      const { DynamoDBClient } = require('@aws-sdk/client-dynamodb')
      return new DynamoDBClient({
        region: 'us-east-1',
        endpoint: endpoint(),
        credentials: { ...credentials },
        maxAttempts: 1,
      })
    },
    'aws-sdk v2 DynamoDB': () => {
      const AWS = require('aws-sdk')
      return new AWS.DynamoDB({
        region: 'us-east-1',
        endpoint: endpoint(),
        credentials: { ...credentials },
        maxRetries: 0,
      })
    },
  }
  const endpoint = () => `http://127.0.0.1:${dynamo.address().port}`
  for (const [sdk, make] of Object.entries(sdks)) {
    test(`DynamoDB: the error of an ${sdk} object carries its key id and session token`, T, async () => {
      const locks = createClient({ dynamodb: { table: 'locks', client: make() } })
      try {
        const err = await locks.tryAcquire('job').then(
          () => assert.fail('the endpoint refuses every request'),
          (e) => e,
        )
        assert.equal(err.code, 'ERR_BACKEND_UNAVAILABLE')
        const all = shown(err)
        assert.match(all, /x-amz-security-token/i, all) // the echo arrived
        for (const secret of Object.values(credentials)) {
          assert.ok(!all.includes(secret), `${secret.slice(0, 4)}… in: ${all}`)
        }
        const original = err.cause[ORIGINAL]
        assert.ok(original, "a stand-in for the caller's error")
        assert.equal(Object.getPrototypeOf(err.cause), Object.getPrototypeOf(original))
        assert.equal(err.cause.name, original.name)
        assert.ok(original.message.includes(credentials.sessionToken), 'the original is not changed')
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

test("a heartbeat's 'error' through a client object: its cause is masked, the original kept", T, async () => {
  const Redis = require('ioredis')
  const password = 'heartbeat-pw-7781'
  const server = await startRedis()
  assert.equal(await server.command(`CONFIG SET requirepass ${password}`), '+OK')
  const io = new Redis({ port: server.port, host: '127.0.0.1', password })
  const locks = createClient({ redis: io })
  try {
    const lock = await locks.acquire('beat', { ttl: 900, refreshInterval: 100 })
    // From now on the client fails every command with an error that repeats its password (as a
    // proxy or a wrapper that logs the connection string might).
    const failure = new Error(
      `connection to redis://default:${password}@127.0.0.1:${server.port} refused by proxy (pass ${password})`,
    )
    const original = io.call
    io.call = () => Promise.reject(failure)
    let err
    try {
      err = await bounded(new Promise((resolve) => lock.once('error', resolve)), "the heartbeat's 'error'")
    } finally {
      io.call = original
    }
    assert.equal(err.code, 'ERR_BACKEND_UNAVAILABLE')
    const all = [texts(err), inspect(err, { depth: 10 })].join('\n')
    assert.match(all, /refused by proxy \(pass \*\*\*\)/, all)
    assert.ok(!all.includes(password), all)
    assert.equal(err.cause[ORIGINAL], failure)
    assert.ok(failure.message.includes(password), 'the original is not changed')
    await lock.release()
  } finally {
    await locks.close()
    io.disconnect()
    await server.stop()
  }
})

// A secret inside an array or a plain object of the caller's error (AggregateError.errors, ioredis
// ReplyError.command.args) is masked too; binary data is left as it is.
test("a client object's error with a secret in a nested array or object becomes a masked stand-in", () => {
  const { rememberRedisSecrets, safeCause } = require('../lib/secrets.js')
  rememberRedisSecrets({ options: { password: 'pw-Zq81-nested' } })
  const err = new Error('clean message')
  err.errors = [new Error('AUTH pw-Zq81-nested failed')]
  err.command = { name: 'auth', args: ['default', 'pw-Zq81-nested'] }
  err.buf = Buffer.from('raw')
  const cause = safeCause(err)
  assert.notEqual(cause, err)
  assert.ok(!inspect(cause, { depth: 10 }).includes('pw-Zq81'), inspect(cause, { depth: 10 }))
  assert.equal(cause[Symbol.for('ferrolock.original')], err, 'the original stays reachable')
  assert.ok(Array.isArray(cause.errors) && cause.errors[0] instanceof Error)
  assert.deepEqual(cause.command, { name: 'auth', args: ['default', '***'] })
  assert.equal(cause.buf, err.buf)
  assert.equal(err.command.args[1], 'pw-Zq81-nested', "the caller's error is unchanged")
  // Nothing secret: the caller's own object.
  const plain = new Error('clean')
  plain.command = { name: 'get', args: ['k'] }
  assert.equal(safeCause(plain), plain)
})
