// Exclusive init: an Express app in 4 node cluster workers runs its database migration exactly
// once, and no worker serves a request before the migration is done. The lock lives in files on
// this host (the file backend, no server); set REDIS_URL to use Redis instead.
// Run: node examples/express-exclusive-init/server.js   (then: curl http://127.0.0.1:3000/)
// Env: PORT (3000; 0 picks a free one), WORKERS (4), STATE_DIR (where the lock files and the
// "database" live; default <tmpdir>/ferrolock-express-example), REDIS_URL (redis://host:6379).
'use strict'
const cluster = require('node:cluster')
const os = require('node:os')
const path = require('node:path')

const stateDir = process.env.STATE_DIR || path.join(os.tmpdir(), 'ferrolock-express-example')
const log = (msg) => console.log(`[${cluster.isPrimary ? 'primary' : `worker ${process.pid}`}] ${msg}`)

if (cluster.isPrimary) {
  const workers = Number(process.env.WORKERS || 4)
  let listening = 0
  cluster.on('listening', (_worker, address) => {
    if (++listening === workers) log(`all ${workers} workers serve on http://127.0.0.1:${address.port}/`)
  })
  // On SIGTERM, stop every worker, then exit. A worker that dies otherwise (say its migration
  // failed) stops them all, with exit code 1: this example fails loudly rather than restart.
  let stopping = false
  const stop = () => {
    stopping = true
    for (const worker of Object.values(cluster.workers)) worker.process.kill('SIGTERM')
  }
  process.on('SIGTERM', stop)
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) {
      log(`worker ${worker.process.pid} died (${signal || `exit code ${code}`}); stopping`)
      process.exitCode = 1
      stop()
    }
    if (Object.keys(cluster.workers).length === 0) process.exit()
  })
  for (let i = 0; i < workers; i++) cluster.fork()
} else {
  worker().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}

async function worker() {
  const { createClient } = require('ferrolock')
  const express = require('express')
  const db = require('./db')

  const locks = process.env.REDIS_URL
    ? createClient(process.env.REDIS_URL)
    : createClient({ file: path.join(stateDir, 'locks') })

  // Every worker asks for the same lock; one at a time gets it. The first one finds the schema
  // old and migrates; the others wait meanwhile, then find it done. using() releases the lock
  // even when the migration throws (then this worker exits, and the primary stops the app).
  const schema = await locks.using('db-migrate', { ttl: 10_000 }, async (signal, lock) => {
    const before = await db.schemaVersion(stateDir)
    if (before >= db.LATEST) {
      log(`schema already at version ${before}`)
      return before
    }
    log(`migrating schema ${before} -> ${db.LATEST} (fence ${lock.fence})`)
    await db.migrate(stateDir, signal, `worker ${process.pid}`)
    log('migration done')
    return db.LATEST
  })

  // Only now open the port: no request ever meets the old schema.
  const app = express()
  app.get('/', (_req, res) => res.json({ worker: process.pid, schema }))
  const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => log(`serving (schema ${schema})`))

  process.on('SIGTERM', () => {
    server.close()
    locks.close().then(() => process.exit(0))
  })
}
