// Type tests for the drop-in entries' typings: never executed, only checked by `tsc`. Each
// entry is imported by its package subpath, the way a migrating user's code would.

import { EventEmitter, once } from 'node:events'

import ExclusiveLock = require('ferrolock/exclusive-lock')
import schemas = require('ferrolock/exclusive-lock/schemas')
import dynamoLock = require('ferrolock/dynamo-lock')
import Lock = require('ferrolock/leverege')

// exclusive-lock
declare const cache: { set(...args: any[]): Promise<unknown>; pexpire(...args: any[]): Promise<unknown> }
const ex = new ExclusiveLock({ name: 'app', cache_connection: cache as any, lock_ttl_ms: 3000, lock_refresh_ms: 1000 })
const acquired: Promise<boolean> = ex.acquire()
const key: string = ex.key
ex.on('refreshed', ({ lock_ttl_ms }) => lock_ttl_ms.toFixed())
// With @types/node, an ExclusiveLock is Node's EventEmitter and its timer Node's Timeout.
const emitter: EventEmitter = ex
const timer: NodeJS.Timeout | null = ex.refresh_timer
void once(ex, 'acquired')
void [emitter, timer]
void acquired
void key
const required: string[] = schemas.instantiation_options.required
void required

// dynamo-lock
const locker = dynamoLock.createClient('Locks', { awsConfig: { region: 'eu-west-1' } })
locker.getLock('job', 10_000, (err, result) => {
  if (err) return err.toUpperCase()
  return result === 'SUCCESS'
})
const table: string = locker.lockTableName
void table

// @leverege/lock
async function leverege() {
  const lock = Lock.create({ type: 'inMemory', namespace: 'myApp', retry: 0, delay: 100 })
  const held = await lock.lockNs('myKey', 1000)
  const extended = await held.extend(2000)
  await extended.unlock()
  await lock.destroy()
}
void leverege
