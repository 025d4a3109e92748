// Bad input fails fast with ERR_INVALID_ARG naming the argument, before any I/O: the Redis
// client below points at a port where nothing listens, so any I/O would end in
// ERR_BACKEND_UNAVAILABLE instead. Against a real server, nothing is left behind.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'

import Redis from 'ioredis'

import { createClient, InvalidArgumentError } from '../index.js'
import { freePort, startRedis } from './support/servers.mjs'

const urlMessages = JSON.parse(
  readFileSync(new URL('../crates/core/src/store/redis/url-messages.json', import.meta.url), 'utf8'),
)

// Names: empty, not strings, over 1024 bytes (also when only the UTF-8 encoding is).
const badNames = ['', 42, null, undefined, 'x'.repeat(1025), 'é'.repeat(513)]
const badTtls = [0, -1, NaN, Infinity, 1.5, 2 ** 31, '1000', null]
const badOptions = [
  [{ tll: 1000 }, /unknown option "tll" \(did you mean "ttl"\?\)/],
  [{ TTL: 1000 }, /did you mean "ttl"/],
  [{ ttl: 1000, refreshInterval: 1000 }, /refreshInterval/],
  [{ ttl: 1000, refreshInterval: 0 }, /refreshInterval/],
  [{ wait: -1 }, /options\.wait/],
  [{ wait: 'soon' }, /options\.wait/],
  [{ retryDelay: -5 }, /options\.retryDelay/],
  [{ retryJitter: 1.5 }, /options\.retryJitter/],
  [{ maxRetries: -1 }, /options\.maxRetries/],
  [{ autoExtend: 'yes' }, /options\.autoExtend/],
  [{ owner: 7 }, /options\.owner/],
  [{ data: { a: 1 } }, /options\.data/],
  [{ signal: {} }, /options\.signal/],
  ['fast', /options must be an object/],
  [[], /options must be an object/],
]

function expectInvalid(promise, pattern) {
  return assert.rejects(promise, (err) => {
    assert.ok(err instanceof InvalidArgumentError, `${err}`)
    assert.equal(err.code, 'ERR_INVALID_ARG')
    assert.match(err.message, pattern)
    return true
  })
}

async function everyBadCall(locks) {
  for (const name of badNames) {
    await expectInvalid(locks.acquire(name), /name/)
    await expectInvalid(locks.tryAcquire(name), /name/)
    await expectInvalid(locks.inspect(name), /name/)
    await expectInvalid(
      locks.using(name, async () => {}),
      /name/,
    )
  }
  for (const ttl of badTtls) {
    await expectInvalid(locks.acquire('x', { ttl }), /options\.ttl/)
    await expectInvalid(locks.tryAcquire('x', { ttl }), /options\.ttl/)
  }
  for (const [options, pattern] of badOptions) {
    await expectInvalid(locks.acquire('x', options), pattern)
    await expectInvalid(
      locks.using('x', options, async () => {}),
      pattern,
    )
  }
  await expectInvalid(locks.using('x', {}, 'not a function'), /fn must be a function/)
  // A callback that is not a function throws at once, a TypeError with the same code.
  for (const call of [
    () => locks.acquire('x', {}, 'cb'),
    () => locks.tryAcquire('x', {}, 42),
    () => locks.inspect('x', 'cb'),
    () => locks.close({}),
  ]) {
    assert.throws(call, (err) => err instanceof TypeError && err.code === 'ERR_INVALID_ARG')
  }
  // With a callback, the validation error goes to the callback instead of a rejection.
  const err = await new Promise((resolve) => locks.acquire('', resolve))
  assert.equal(err.code, 'ERR_INVALID_ARG')
}

describe('bad input', () => {
  test('every public function rejects before any I/O (no server listening)', async () => {
    const locks = createClient({ redis: `redis://127.0.0.1:${await freePort()}` })
    await everyBadCall(locks)
    await locks.close()
  })

  test('memory backend: the same checks', async () => {
    const locks = createClient()
    await everyBadCall(locks)
    const lock = await locks.acquire('x')
    for (const ttl of badTtls) await expectInvalid(lock.extend(ttl), /ttl/)
    assert.throws(() => lock.release('cb'), { code: 'ERR_INVALID_ARG' })
    await lock.release()
    await locks.close()
  })

  test('nothing is left in Redis after rejected calls', async () => {
    const server = await startRedis()
    const locks = createClient({ redis: server.url })
    await everyBadCall(locks)
    const lock = await locks.acquire('real', { ttl: 5000 })
    for (const ttl of badTtls) await expectInvalid(lock.extend(ttl), /ttl/)
    await lock.release()
    const redis = new Redis(server.url)
    assert.deepEqual(await redis.keys('lock:*'), [])
    redis.disconnect()
    await locks.close()
    await server.stop()
  })

  // The JS layer and the Rust core each check a Redis URL's shape; the fixture pins both to the
  // same messages (the core's unit test reads the same file).
  test('a bad Redis URL gets the messages url-messages.json pins', () => {
    for (const [what, url, message] of urlMessages) {
      assert.throws(
        () => createClient({ redis: url }),
        (err) => err instanceof InvalidArgumentError && err.message === message.replace('{what}', 'options.redis'),
        what,
      )
      assert.throws(
        () => createClient({ redis: { cluster: ['redis://127.0.0.1:7000', url] } }),
        (err) => err.message === message.replace('{what}', 'options.redis.cluster[1]'),
        `${what} (cluster node)`,
      )
    }
  })

  test('createClient validates its options synchronously, without echoing secrets', () => {
    const cases = [
      [{ redis: 'http://example.com' }, /unsupported URL scheme/],
      [{ redis: 'redis://:s3cret@' }, /invalid Redis URL/],
      [{ redis: 'not a url s3cret' }, /invalid Redis URL/],
      [{ redis: 42 }, /options\.redis must be an object/],
      [{ redis: { port: 70000 } }, /options\.redis\.port/],
      [{ redis: { hots: 'x' } }, /unknown option "hots"/],
      [{ redis: { db: -1 } }, /options\.redis\.db/],
      [{ redis: { tls: { cert: 'x' } } }, /options\.redis\.tls: unknown option "cert"/],
      [{ redis: { tls: { ca: 42 } } }, /options\.redis\.tls\.ca/],
      [{ rdis: 'redis://x' }, /unknown option "rdis"/],
      [{ memory: true, redis: 'redis://127.0.0.1' }, /choose one backend/],
      [{ keyPrefix: 5 }, /keyPrefix/],
      [{ logger: 'console' }, /logger/],
      [42, /options must be an object/],
    ]
    for (const [options, pattern] of cases) {
      assert.throws(
        () => createClient(options),
        (err) => {
          assert.ok(err instanceof InvalidArgumentError, String(err))
          assert.match(err.message, pattern)
          assert.ok(!err.message.includes('s3cret'))
          return true
        },
      )
    }
  })

  test('redlock and cluster options are checked before any I/O, without echoing secrets', () => {
    const two = ['redis://127.0.0.1:1', 'redis://127.0.0.1:2']
    const cases = [
      [{ redlock: [] }, /at least 2 masters \(got 0\); for one server use options\.redis/],
      [{ redlock: ['redis://127.0.0.1:1'] }, /at least 2 masters \(got 1\)/],
      [{ redlock: 'redis://127.0.0.1:1' }, /options\.redlock must be an array/],
      [{ redlock: ['redis://a:1', 'redis://A:1/0'] }, /options\.redlock\[1\]: the same master \(a:1\/0\)/],
      [{ redlock: ['redis://u:s3cret@a', { host: 'a', port: 6379 }] }, /the same master \(a:6379\/0\)/],
      [{ redlock: ['redis://a:1', 'http://s3cret@b'] }, /options\.redlock\[1\]: unsupported URL scheme/],
      [{ redlock: ['redis://a:1', 42] }, /options\.redlock\[1\] must be a redis:\/\/ URL/],
      [{ redlock: ['redis://a:1', { cluster: ['redis://b:1'] }] }, /one server, not a cluster/],
      [{ redlock: two, driftFactor: -0.1 }, /options\.driftFactor/],
      [{ redlock: two, driftFactor: 0.5 }, /options\.driftFactor/],
      [{ redlock: two, driftFactor: NaN }, /options\.driftFactor/],
      [{ redlock: two, driftFactor: '0.01' }, /options\.driftFactor/],
      [{ redlock: two, clockDriftMs: -1 }, /options\.clockDriftMs/],
      [{ redlock: two, requestTimeout: 0 }, /options\.requestTimeout/],
      [{ redlock: two, retryCount: 1.5 }, /options\.retryCount/],
      [{ redlock: two, retryDelay: -1 }, /options\.retryDelay/],
      [{ redlock: two, redis: 'redis://a' }, /choose one backend \(got redis and redlock\)/],
      [{ redis: 'redis://a', driftFactor: 0.01 }, /options\.driftFactor applies to the redlock backend only/],
      [{ redis: { cluster: [] } }, /options\.redis\.cluster must be a non-empty array/],
      [{ redis: { cluster: 'redis://a' } }, /options\.redis\.cluster must be a non-empty array/],
      [
        { redis: { cluster: ['redis://a:1', 'ftp://s3cret@b'] } },
        /options\.redis\.cluster\[1\]: unsupported URL scheme/,
      ],
      [{ redis: { cluster: ['redis://a:1/2'] } }, /only database 0/],
      [{ redis: { cluster: ['redis://a:1'], db: 1 } }, /only database 0/],
      [{ redis: { cluster: ['redis://a:1'], url: 'redis://b' } }, /either cluster \(node URLs\) or url\/host\/port/],
    ]
    for (const [options, pattern] of cases) {
      assert.throws(
        () => createClient(options),
        (err) => {
          assert.ok(err instanceof InvalidArgumentError, String(err))
          assert.equal(err.code, 'ERR_INVALID_ARG')
          assert.match(err.message, pattern)
          assert.ok(!err.message.includes('s3cret'))
          return true
        },
      )
    }
  })

  test('redlock: a ttl too short for the drift allowance is refused', async () => {
    const masters = await Promise.all([freePort(), freePort(), freePort()])
    const locks = createClient({ redlock: masters.map((p) => `redis://127.0.0.1:${p}`), clockDriftMs: 10 })
    await expectInvalid(locks.acquire('x', { ttl: 5 }), /too short for the Redlock drift allowance/)
    await everyBadCall(locks)
    await locks.close()
  })

  test('calls after close() reject ERR_CLIENT_CLOSED', async () => {
    const locks = createClient()
    await locks.close()
    await assert.rejects(locks.acquire('x'), { code: 'ERR_CLIENT_CLOSED' })
    await assert.rejects(locks.tryAcquire('x'), { code: 'ERR_CLIENT_CLOSED' })
    await assert.rejects(locks.inspect('x'), { code: 'ERR_CLIENT_CLOSED' })
    await assert.rejects(
      locks.using('x', async () => {}),
      { code: 'ERR_CLIENT_CLOSED' },
    )
  })
})

describe('bad input that once got through', () => {
  const refused = (make, pattern) => {
    assert.throws(make, (err) => {
      assert.ok(err instanceof InvalidArgumentError, `${err}`)
      assert.equal(err.code, 'ERR_INVALID_ARG')
      assert.match(err.message, pattern)
      assert.ok(!err.message.includes('s3cret'), 'the URL (and its password) is never repeated')
      return true
    })
  }

  test('Redis connection settings that could never connect are refused by createClient', () => {
    refused(() => createClient({ redis: 'redis://:s3cret@127.0.0.1:0' }), /port must be from 1 to 65535/)
    refused(() => createClient({ redis: 'redis://:s3cret@127.0.0.1:6379/-1' }), /database number must be from 0/)
    refused(() => createClient({ redis: 'redis://:s3cret@127.0.0.1:6379/99999999999' }), /database number/)
    refused(() => createClient({ redis: { host: '' } }), /host must be a host name or an IP address/)
    refused(() => createClient({ redis: { host: 'a b' } }), /host must be a host name or an IP address/)
    refused(() => createClient({ redis: { cluster: ['redis://:s3cret@127.0.0.1:0'] } }), /port must be from 1/)
    refused(
      () => createClient({ redis: { url: 'rediss://127.0.0.1:6379', tls: { ca: 'not a certificate' } } }),
      /tls\.ca must hold at least one PEM certificate/,
    )
  })

  test('names and owners must be well-formed Unicode: lone surrogates would collide', async () => {
    const locks = createClient()
    await expectInvalid(locks.tryAcquire('job-\uD800'), /well-formed Unicode/)
    await expectInvalid(locks.tryAcquire('job-\uDC00'), /well-formed Unicode/)
    await expectInvalid(locks.inspect('job-\uD800'), /well-formed Unicode/)
    await expectInvalid(locks.tryAcquire('job', { owner: 'me-\uD800' }), /options\.owner must be well-formed/)
    const fine = await locks.tryAcquire('job-\uFFFD')
    assert.ok(fine)
    await fine.release()
    await locks.close()
  })

  test('a value that cannot be turned into text still gets ERR_INVALID_ARG', async () => {
    const locks = createClient()
    const throwing = {
      toString: () => {
        throw new Error('no')
      },
    }
    await expectInvalid(locks.tryAcquire(Object.create(null)), /name must be a non-empty string/)
    await expectInvalid(locks.tryAcquire(throwing), /name must be a non-empty string/)
    await expectInvalid(locks.tryAcquire('x', { owner: Object.create(null) }), /options\.owner/)
    await expectInvalid(locks.tryAcquire('x', { data: throwing }), /options\.data/)
    await locks.close()
  })
})

describe('lock data has a size limit', () => {
  test('1 MiB by default, configurable with maxDataBytes; refused before any I/O', async () => {
    const port = await freePort() // nothing listens: any I/O would be ERR_BACKEND_UNAVAILABLE
    const remote = createClient({ redis: `redis://127.0.0.1:${port}` })
    await expectInvalid(remote.tryAcquire('big', { data: 'x'.repeat(2 ** 20 + 1) }), /at most 1048576/)
    await remote.close()
    const small = createClient({ maxDataBytes: 4 })
    await expectInvalid(small.tryAcquire('small', { data: 'abcde' }), /options\.data is 5 bytes; at most 4/)
    await expectInvalid(small.tryAcquire('small', { data: 'éé£' }), /options\.data is 6 bytes/)
    const fits = await small.tryAcquire('small', { data: Buffer.from('abcd') })
    assert.ok(fits)
    await fits.release()
    await small.close()
    assert.throws(() => createClient({ maxDataBytes: 0 }), /options\.maxDataBytes must be an integer from 1/)
    const fine = createClient()
    const lock = await fine.tryAcquire('fits', { data: 'x'.repeat(2 ** 20) })
    assert.ok(lock, 'exactly 1 MiB fits')
    await lock.release()
    await fine.close()
  })
})
