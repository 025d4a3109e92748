// The "database" of the example: one JSON file, { schema, migrations: [{ by, at }] }. The
// migration is slow and not safe to run twice at once, like a real one (ALTER TABLE, backfill).
'use strict'
const fs = require('node:fs/promises')
const path = require('node:path')
const { setTimeout: delay } = require('node:timers/promises')

const LATEST = 1

async function read(dir) {
  try {
    return JSON.parse(await fs.readFile(path.join(dir, 'db.json'), 'utf8'))
  } catch (err) {
    if (err.code === 'ENOENT') return { schema: 0, migrations: [] }
    throw err
  }
}

async function schemaVersion(dir) {
  return (await read(dir)).schema
}

async function migrate(dir, signal, by) {
  const db = await read(dir)
  await delay(300, undefined, { signal }) // the slow part; stops if the lock is lost
  db.schema = LATEST
  db.migrations.push({ by, at: new Date().toISOString() })
  // Write a new file and rename it over the old one: a reader never sees half a file.
  await fs.mkdir(dir, { recursive: true })
  const tmp = path.join(dir, `db.json.${process.pid}`)
  await fs.writeFile(tmp, JSON.stringify(db, null, 2))
  await fs.rename(tmp, path.join(dir, 'db.json'))
}

module.exports = { LATEST, schemaVersion, migrate, read }
