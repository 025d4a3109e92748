// ferrolock benchmark, multi-server part: Redlock over 3 independent masters and a Redis Cluster.
//
//   node bench/quorum.mjs          (run by npm run bench after bench/run.mjs)
//
// Redlock: ferrolock `{ redlock: [3 urls] }` against the redlock package 4.2.0 and 5.0.0-beta.2,
// each with one ioredis client per master, on the same 3 redis-server processes.
// Cluster: ferrolock `{ redis: { cluster } }` against raw ioredis Cluster (SET NX PX + a
// compare-and-delete script) on the same 6-node cluster (3 masters, 3 replicas).
// Scenarios: sequential (one loop, one key) and 64 keys (64 concurrent loops), 3 rounds with the
// libraries taking turns, median round reported. Writes its section of bench/RESULTS.md
// (between the QUORUM markers, which bench/run.mjs keeps).
import { readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

import { startCluster, startMasters } from '../__test__/support/servers.mjs'
import { MS, cycles, now } from './peers.mjs'

const require = createRequire(import.meta.url)
const TTL = 10_000
const ROUNDS = 3
const WARM_MS = 200
const RUN_MS = 1000
const KEYS = 64

const CAD_LUA = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0`

const ioredis = (url) => {
  const Redis = require('ioredis')
  return new Redis(url, { maxRetriesPerRequest: 1 })
}

// Every adapter: acquire(key) waits until the lock is ours; release(handle); close().
const redlockPeers = {
  async ferrolock(urls) {
    const { createClient } = require('..')
    const locks = createClient({ redlock: urls, keyPrefix: 'bench:ferrolock:' })
    const options = { ttl: TTL, autoExtend: false }
    return {
      acquire: (key) => locks.acquire(key, options),
      release: (lock) => lock.release(),
      close: () => locks.close(),
    }
  },
  async 'redlock 4.2.0'(urls) {
    const Redlock = require('redlock4')
    const clients = urls.map(ioredis)
    const redlock = new Redlock(clients, { retryCount: -1, retryDelay: 2, retryJitter: 1 })
    return {
      acquire: (key) => redlock.lock(`bench:redlock4:${key}`, TTL),
      release: (lock) => lock.unlock(),
      close: () => Promise.all(clients.map((c) => c.quit())),
    }
  },
  async 'redlock 5.0.0-beta.2'(urls) {
    const { default: Redlock } = require('redlock')
    const clients = urls.map(ioredis)
    const redlock = new Redlock(clients, { retryCount: -1, retryDelay: 2, retryJitter: 1 })
    return {
      acquire: (key) => redlock.acquire([`bench:redlock5:${key}`], TTL),
      release: (lock) => lock.release(),
      close: () => Promise.all(clients.map((c) => c.quit())),
    }
  },
}

const clusterPeers = {
  async ferrolock(urls) {
    const { createClient } = require('..')
    const locks = createClient({ redis: { cluster: urls }, keyPrefix: 'bench:ferrolock:' })
    const options = { ttl: TTL, autoExtend: false }
    return {
      acquire: (key) => locks.acquire(key, options),
      release: (lock) => lock.release(),
      close: () => locks.close(),
    }
  },
  async 'raw ioredis Cluster'(urls) {
    const { Cluster } = require('ioredis')
    const cluster = new Cluster(urls.map((u) => ({ host: '127.0.0.1', port: Number(new URL(u).port) })))
    cluster.defineCommand('cad', { numberOfKeys: 1, lua: CAD_LUA })
    return {
      async acquire(name) {
        const key = `bench:raw:${name}`
        const token = randomUUID()
        while ((await cluster.set(key, token, 'PX', TTL, 'NX')) !== 'OK') {
          await sleep(1 + Math.floor(Math.random() * 3))
        }
        return { key, token }
      },
      release: ({ key, token }) => cluster.cad(key, token),
      close: () => cluster.quit(),
    }
  },
}

async function timed(peer, keys) {
  const run = async (ms) => {
    const endAt = now() + BigInt(ms * MS)
    const counts = await Promise.all(keys.map((key) => cycles(peer, key, endAt)))
    return counts.reduce((a, b) => a + b, 0)
  }
  await run(WARM_MS)
  const t0 = now()
  const n = await run(RUN_MS)
  return n / (Number(now() - t0) / 1e9)
}

/** Median cycles/s per peer for one scenario, the peers taking turns each round. */
async function scenario(label, peers, urls, keys) {
  const opened = []
  for (const open of Object.values(peers)) opened.push(await open(urls))
  const runs = opened.map(() => [])
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < opened.length; i++) runs[i].push(await timed(opened[i], keys))
  }
  for (const p of opened) await p.close()
  const names = Object.keys(peers)
  return names.map((name, i) => {
    const sorted = runs[i].sort((a, b) => a - b)
    const rate = sorted[Math.floor(sorted.length / 2)]
    console.log(`${label} ${name.padEnd(22)} ${Math.round(rate).toString().padStart(7)} cycles/s`)
    return { name, rate, min: sorted[0], max: sorted[sorted.length - 1] }
  })
}

const int = (x) => Math.round(x).toLocaleString('en-US')

function table(title, seq, conc, baseline) {
  const base = (rows) => rows.find((r) => r.name === baseline).rate
  const cell = (r) => `${int(r.rate)} (${int(r.min)}–${int(r.max)})`
  const lines = [
    `| ${title} | sequential cycles/s | ×${baseline} | 64 keys cycles/s | ×${baseline} |`,
    '| --- | ---: | ---: | ---: | ---: |',
  ]
  for (let i = 0; i < seq.length; i++) {
    lines.push(
      `| ${seq[i].name} | ${cell(seq[i])} | ${(seq[i].rate / base(seq)).toFixed(2)}× | ${cell(conc[i])} | ${(conc[i].rate / base(conc)).toFixed(2)}× |`,
    )
  }
  return lines.join('\n')
}

const RESULTS = fileURLToPath(new URL('./RESULTS.md', import.meta.url))
export const QUORUM_START = '<!-- QUORUM: written by bench/quorum.mjs -->'
export const QUORUM_END = '<!-- /QUORUM -->'

async function main() {
  const started = new Date()
  const keys64 = Array.from({ length: KEYS }, (_, i) => `conc:${i}`)

  const masters = await startMasters(3)
  let redlock
  try {
    redlock = {
      seq: await scenario('redlock sequential', redlockPeers, masters.urls, ['seq']),
      conc: await scenario('redlock 64 keys   ', redlockPeers, masters.urls, keys64),
    }
  } finally {
    await masters.stop()
  }

  const cluster = await startCluster()
  let clustered
  try {
    clustered = {
      seq: await scenario('cluster sequential', clusterPeers, cluster.urls, ['seq']),
      conc: await scenario('cluster 64 keys   ', clusterPeers, cluster.urls, keys64),
    }
  } finally {
    await cluster.stop()
  }

  const section = `${QUORUM_START}

## Redlock and Redis Cluster

From \`bench/quorum.mjs\`, run of ${started.toISOString()} (same machine; median of ${ROUNDS} rounds of
${RUN_MS} ms after ${WARM_MS} ms warm-up, range in brackets). ttl ${TTL} ms, no auto-extension,
one client (one connection per server) per library; the redlock packages retry every 2 ± 1 ms,
ferrolock waits for release notifications (fallback poll at its defaults).

Redlock over the same 3 independent redis-server masters (ratios against redlock 5.0.0-beta.2):

${table('library', redlock.seq, redlock.conc, 'redlock 5.0.0-beta.2')}

Redis Cluster, 3 masters + 3 replicas (ratios against raw ioredis Cluster \`SET NX PX\` + compare-and-delete):

${table('library', clustered.seq, clustered.conc, 'raw ioredis Cluster')}

What ferrolock's Redlock does per cycle that the redlock packages do not: after a grant whose
per-master fences differ, it raises the lower masters' fence counters to the agreed fence (a
request in the background, which the release waits for), so that fences keep increasing across
owners; and it sends each master's request as its own task so that a stalled master delays
nothing once a majority answered.

${QUORUM_END}`

  let text = readFileSync(RESULTS, 'utf8')
  const a = text.indexOf(QUORUM_START)
  const b = text.indexOf(QUORUM_END)
  if (a >= 0 && b > a) text = text.slice(0, a) + section + text.slice(b + QUORUM_END.length)
  else text = `${text.trimEnd()}\n\n${section}\n`
  try {
    const { format, resolveConfig } = await import('prettier')
    text = await format(text, { ...(await resolveConfig(RESULTS)), parser: 'markdown' })
  } catch {
    // unformatted is fine
  }
  writeFileSync(RESULTS, text)
  console.log(`wrote ${RESULTS}`)
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err)
    process.exit(1)
  },
)
