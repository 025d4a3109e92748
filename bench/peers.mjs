// One adapter per library under test, all with the same shape:
//   const peer = await openPeer(name, port)
//   const handle = await peer.acquire(key)   // waits until the lock is ours
//   await peer.release(handle)
//   await peer.close()
// Each adapter opens one connection (one client) per call of openPeer, and puts its keys under
// its own prefix so that libraries never see each other's locks.
import { createRequire } from 'node:module'
import { randomUUID } from 'node:crypto'
import { promisify } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'

const require = createRequire(import.meta.url)

/** Lease length for every library: far above any hold time here, so nothing ever expires. */
export const TTL = 10_000

/**
 * Retry delays of the libraries that poll (ms). Only ferrolock (natively and through a client
 * object) is woken by the release; its fallback poll keeps the library default (100 ms + up to 50 ms jitter).
 */
export const RETRY = {
  raw: '1-3 ms (uniform random integer, i.e. 2 ± 1)',
  redlock: 'retryDelay 2 ± retryJitter 1 ms',
  'redis-semaphore': 'retryInterval 2 ms (the library has no jitter)',
  'dist-lock': 'retryDelay 2 ms (the library has no jitter)',
  ferrolock: 'push wake-up on release; fallback poll at the defaults (retryDelay 100, retryJitter 50 ms)',
  'ferrolock-ioredis':
    "push wake-up on release, received on a duplicate() of the caller's ioredis client; fallback poll at the defaults (retryDelay 100, retryJitter 50 ms)",
}

export const PEERS = ['ferrolock', 'ferrolock-ioredis', 'raw', 'redlock', 'redis-semaphore', 'dist-lock']

export const MS = 1e6 // ns per ms
export const now = () => process.hrtime.bigint()

/** Acquire + release cycles of `peer` on `key` until `endAt` (hrtime ns); returns how many. */
export async function cycles(peer, key, endAt) {
  let n = 0
  while (now() < endAt) {
    await peer.release(await peer.acquire(key))
    n++
  }
  return n
}

// Compare-and-delete: the usual safe release for a SET NX PX lock.
const CAD_LUA = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0`

function ioredis(port) {
  const Redis = require('ioredis')
  return new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1 })
}

const openers = {
  async ferrolock(port) {
    const { createClient } = require('..')
    const locks = createClient({ redis: `redis://127.0.0.1:${port}`, keyPrefix: 'bench:ferrolock:' })
    const options = { ttl: TTL, autoExtend: false }
    return {
      acquire: (key) => locks.acquire(key, options),
      release: (lock) => lock.release(),
      close: () => locks.close(),
    }
  },

  // ferrolock through the caller's own ioredis client (the transport seam): every command goes
  // through ioredis's call(); waiters are woken through a duplicate() of it (made on the first
  // wait), so the retry options stay at the defaults, as for ferrolock.
  async 'ferrolock-ioredis'(port) {
    const { createClient } = require('..')
    const redis = ioredis(port)
    const locks = createClient({ redis, keyPrefix: 'bench:ferrolock-io:' })
    const options = { ttl: TTL, autoExtend: false }
    return {
      acquire: (key) => locks.acquire(key, options),
      release: (lock) => lock.release(),
      close: async () => (await locks.close(), await redis.quit()),
    }
  },

  async raw(port) {
    const redis = ioredis(port)
    // defineCommand sends EVALSHA (falling back to EVAL once): one round trip per release.
    redis.defineCommand('cad', { numberOfKeys: 1, lua: CAD_LUA })
    return {
      async acquire(name) {
        const key = `bench:raw:${name}`
        const token = randomUUID()
        while ((await redis.set(key, token, 'PX', TTL, 'NX')) !== 'OK') {
          await sleep(1 + Math.floor(Math.random() * 3))
        }
        return { key, token }
      },
      release: ({ key, token }) => redis.cad(key, token),
      close: () => redis.quit(),
    }
  },

  async redlock(port) {
    const { default: Redlock } = require('redlock')
    const redis = ioredis(port)
    // retryCount -1: retry forever (the library treats it as Infinity).
    const redlock = new Redlock([redis], { retryCount: -1, retryDelay: 2, retryJitter: 1 })
    return {
      acquire: (name) => redlock.acquire([`bench:redlock:${name}`], TTL),
      release: (lock) => lock.release(),
      close: () => redis.quit(),
    }
  },

  async 'redis-semaphore'(port) {
    const { Mutex } = require('redis-semaphore')
    const redis = ioredis(port)
    // refreshInterval 0: no background refresh, like autoExtend: false for ferrolock.
    const options = { lockTimeout: TTL, acquireTimeout: 60_000, retryInterval: 2, refreshInterval: 0 }
    return {
      async acquire(name) {
        const mutex = new Mutex(redis, `bench:redis-semaphore:${name}`, options)
        await mutex.acquire()
        return mutex
      },
      release: (mutex) => mutex.release(),
      close: () => redis.quit(),
    }
  },

  async 'dist-lock'(port) {
    // dist-lock drives the client through send_command/hmget: the node_redis v3 callback API.
    const client = require('redis3').createClient({ host: '127.0.0.1', port })
    await new Promise((resolve, reject) => {
      client.once('ready', resolve)
      client.once('error', reject)
    })
    const distLock = require('dist-lock')(client, {
      ttl: TTL,
      retryDelay: 2,
      maxRetries: -1,
      keyPrefix: 'bench:dist-lock:',
    })
    const acquire = promisify(distLock.acquire)
    return {
      acquire: (name) => acquire(name),
      release: (lock) => promisify(lock.release)(),
      close: () => new Promise((resolve) => client.quit(() => resolve())),
    }
  },
}

/** Opens one client of library `name` against the redis-server on `port`. */
export async function openPeer(name, port) {
  const open = openers[name]
  if (!open) throw new Error(`unknown peer ${name}`)
  return open(port)
}
