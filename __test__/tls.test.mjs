// rediss:// and { tls: { ca } }: a redis-server with TLS on, a certificate from a CA made here.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'

import { createClient } from '../index.js'
import { waitUntil } from './support/bounded.mjs'
import { freePort, startRedis } from './support/servers.mjs'

describe('redis over TLS', () => {
  let dir, server, tlsPort, ca
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferrolock-tls-'))
    const ssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' })
    ssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '2',
      '-subj',
      '/CN=ferrolock test CA',
    )
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1')
    writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\n')
    ssl(
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'server.pem',
      '-days',
      '2',
      '-extfile',
      'ext.cnf',
    )
    ca = readFileSync(join(dir, 'ca.pem'), 'utf8')
    tlsPort = await freePort()
    server = await startRedis({
      extraArgs: [
        '--tls-port',
        String(tlsPort),
        '--tls-cert-file',
        join(dir, 'server.pem'),
        '--tls-key-file',
        join(dir, 'server.key'),
        '--tls-ca-cert-file',
        join(dir, 'ca.pem'),
        '--tls-auth-clients',
        'no',
      ],
    })
  })
  after(async () => {
    await server.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  test('rediss:// with a private CA: acquire, wake-up, release', async () => {
    const locks = createClient({ redis: { url: `rediss://127.0.0.1:${tlsPort}`, tls: { ca } } })
    const other = createClient({ redis: { host: '127.0.0.1', port: tlsPort, tls: { ca } } })
    const lock = await locks.acquire('tls-job', { ttl: 5000 })
    assert.equal(await other.tryAcquire('tls-job'), null)
    const waiting = other.acquire('tls-job', { retryDelay: 600_000 }) // woken over TLS pub/sub
    await waitUntil(() => other.stats().watched > 0, 'a watched lock')
    assert.equal(await lock.release(), true)
    const next = await waiting
    assert.ok(next.fence > lock.fence)
    await next.release()
    await locks.close()
    await other.close()
  })

  test('a server certificate the client does not trust is ERR_BACKEND_UNAVAILABLE', async () => {
    const locks = createClient({ redis: `rediss://127.0.0.1:${tlsPort}` }) // system roots only
    await assert.rejects(locks.tryAcquire('tls-job'), { code: 'ERR_BACKEND_UNAVAILABLE' })
    await locks.close()
  })
})
