// createClient({ requestTimeout }): accepted on every backend, range-checked before any I/O,
// given once for DynamoDB (here or as dynamodb.requestTimeout).
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { createClient } from '../index.js'

const dynamodb = { table: 'locks', region: 'us-east-1', endpoint: 'http://127.0.0.1:1' }

test('requestTimeout is range-checked on every backend', () => {
  const message = `options.requestTimeout must be an integer number of milliseconds from 1 to ${2 ** 31 - 1}`
  for (const backend of [{}, { redis: 'redis://127.0.0.1:1' }, { dynamodb }]) {
    for (const bad of [0, -1, 1.5, 2 ** 31, Number.NaN, Infinity]) {
      assert.throws(
        () => createClient({ ...backend, requestTimeout: bad }),
        (err) => err.code === 'ERR_INVALID_ARG' && err.message.startsWith(message),
        `${JSON.stringify(backend)} requestTimeout ${bad}`,
      )
    }
    assert.throws(() => createClient({ ...backend, requestTimeout: '1000' }), { code: 'ERR_INVALID_ARG' })
  }
  assert.throws(() => createClient({ dynamodb: { ...dynamodb, requestTimeout: 500 }, requestTimeout: 500 }), {
    code: 'ERR_INVALID_ARG',
    message: /give it once/,
  })
})

test('requestTimeout is accepted on every backend', async () => {
  const clients = [
    createClient({ requestTimeout: 1 }),
    createClient({ redis: 'redis://127.0.0.1:1', requestTimeout: 2 ** 31 - 1 }),
    createClient({ redlock: ['redis://127.0.0.1:1', 'redis://127.0.0.1:2'], requestTimeout: 300 }),
    createClient({ dynamodb, requestTimeout: 1500 }),
  ]
  await Promise.all(clients.map((c) => c.close()))
})
