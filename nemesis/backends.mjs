// The servers of each backend for a nemesis run, and the faults each one can take. Every server
// is a real process on a free port (the test helpers' launchers), stopped by PID at the end.
//
// A backend is { client, servers, proxies, failover?, stop }:
//   client:  createClient() options for the workers (through the stall proxies where possible);
//   servers: [{ id, pid, restart(), restartLosesData, dataLossOnStop }] for SIGSTOP and restarts;
//   proxies: [{ stall(on) }] TCP proxies the workers go through;
//   failover(names): Redis Cluster: kill the master of a name's slot, wait for its replica to
//            take over, start the old master again (it rejoins as a replica).
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { createRequire } from 'node:module'
import { startRedis, startMasters, startCluster, startStallProxy, freePort } from '../__test__/support/servers.mjs'

const require = createRequire(import.meta.url)

export const BACKENDS = ['redis', 'redlock', 'cluster', 'dynamodb', 'file']

// A redis-server of the helpers as a nemesis server: an empty restart loses every lock.
const redisServer = (id, s) => ({
  id,
  restartLosesData: true,
  get pid() {
    return s.pid
  },
  get alive() {
    return s.alive
  },
  restart: async () => {
    await s.stop()
    await s.restart()
  },
})

export async function startBackend(backend) {
  if (backend === 'redis') {
    const s = await startRedis()
    const proxy = await startStallProxy(s.port)
    return {
      client: { redis: proxy.url },
      servers: [redisServer('redis', s)],
      proxies: [proxy],
      stop: async () => {
        await proxy.close()
        await s.stop()
      },
    }
  }
  if (backend === 'redlock') {
    const m = await startMasters(3)
    const proxies = await Promise.all(m.masters.map((s) => startStallProxy(s.port)))
    return {
      client: { redlock: proxies.map((p) => p.url), requestTimeout: 300 },
      servers: m.masters.map((s, i) => redisServer(`master-${i}`, s)),
      proxies,
      stop: async () => {
        await Promise.all(proxies.map((p) => p.close()))
        await m.stop()
      },
    }
  }
  if (backend === 'cluster') {
    const c = await startCluster()
    return {
      // Cluster clients follow the nodes' own addresses (MOVED, CLUSTER SLOTS): no proxy.
      client: { redis: { cluster: c.urls } },
      // A node stopped longer than the node timeout (500 ms) is failed over: data may be lost.
      servers: c.nodes.map((s, i) => ({ ...redisServer(`node-${i}`, s), dataLossOnStop: true })),
      proxies: [],
      failover: async (names) => {
        const master = await c.masterOf(`{lock:${names[Math.floor(Math.random() * names.length)]}}`)
        await master.stop()
        await c.ready()
        await master.restart()
        await c.ready()
      },
      stop: () => c.stop(),
    }
  }
  if (backend === 'dynamodb') return startDynamo()
  if (backend === 'file') {
    const dir = await mkdtemp(join(tmpdir(), 'ferrolock-nemesis-'))
    return { client: { file: dir }, servers: [], proxies: [], stop: () => rm(dir, { recursive: true, force: true }) }
  }
  throw new Error(`unknown backend ${backend} (one of ${BACKENDS.join(', ')})`)
}

const DYNALITE = new URL('../node_modules/dynalite/cli.js', import.meta.url).pathname

// dynalite on one port for the whole run, so that it can restart in place, keeping its data in
// LevelDB files (DynamoDB does not lose acknowledged writes: its restart is an outage, not an
// empty server).
async function startDynamo() {
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'ferrolock-nemesis-dynalite-'))
  const endpoint = `http://127.0.0.1:${port}`
  let child
  const launch = async () => {
    const args = ['--port', String(port), '--host', '127.0.0.1', '--createTableMs', '0', '--path', dir]
    child = spawn(process.execPath, [DYNALITE, ...args], { stdio: ['ignore', 'pipe', 'ignore'] })
    const up = await new Promise((resolve) => {
      let out = ''
      child.stdout.on('data', (d) => {
        out += d
        if (out.includes('listening')) resolve(true)
      })
      child.once('exit', () => resolve(false))
    })
    if (!up) throw new Error(`dynalite did not start on port ${port}`)
    await makeTable() // made once; after a restart it exists (created: false)
  }
  const kill = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
  }
  const base = { table: 'nemesis', region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } }
  const makeTable = async () => {
    const { createClient } = require('../index.js')
    const admin = createClient({ dynamodb: { ...base, endpoint } })
    try {
      await admin.createLockTable({ ttl: false })
    } finally {
      await admin.close()
    }
  }
  await launch()
  process.on('exit', () => child.kill('SIGKILL'))
  const proxy = await startStallProxy(port)
  return {
    client: { dynamodb: { ...base, endpoint: `http://127.0.0.1:${proxy.port}` } },
    servers: [
      {
        id: 'dynalite',
        restartLosesData: false,
        get pid() {
          return child.pid
        },
        restart: async () => {
          await kill()
          await delay(50)
          await launch()
        },
      },
    ],
    proxies: [proxy],
    stop: async () => {
      await proxy.close()
      await kill()
      await rm(dir, { recursive: true, force: true })
    },
  }
}
