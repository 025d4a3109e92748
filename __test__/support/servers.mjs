// Real servers for the JS tests: redis-server processes on free ports, stopped by PID.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'

const running = new Set()
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

// Ports come from 20000-31999, below the kernel's ephemeral range, and each process counts
// through a window of its own, so servers started in parallel never receive the same port (a
// port the kernel hands out for listen(0) can be handed out again before its server started).
const PORT_WINDOW = 240
const portBase = 20_000 + (process.pid % 50) * PORT_WINDOW
let nextPort = 0

const canListen = (port) =>
  new Promise((resolve) => {
    const srv = net.createServer()
    srv.unref()
    srv.once('error', () => resolve(false))
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)))
  })

/** A TCP port nobody listens on right now. */
export async function freePort() {
  for (let i = 0; i < PORT_WINDOW; i++) {
    const port = portBase + (nextPort++ % PORT_WINDOW)
    if (await canListen(port)) return port
  }
  throw new Error(`no free port on 127.0.0.1 in ${portBase}..${portBase + PORT_WINDOW}`)
}

/** `n` distinct free ports. */
export async function freePorts(n) {
  const ports = []
  for (let i = 0; i < n; i++) ports.push(await freePort())
  return ports
}

/**
 * Sends one inline command and resolves the reply (no client library needed): the payload of a
 * bulk string (`$n`), otherwise the first reply line (`+OK`, `:42`, `-ERR ...`).
 */
export function rawCommand(port, line) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1')
    let buf = ''
    sock.setTimeout(2000, () => sock.destroy(new Error('timeout')))
    sock.on('error', reject)
    sock.on('data', (d) => {
      buf += d
      const m = /^\$(\d+)\r\n/.exec(buf)
      if ((m && buf.length >= m[0].length + Number(m[1]) + 2) || (!m && buf.includes('\r\n'))) {
        sock.end()
        resolve(m ? buf.slice(m[0].length, m[0].length + Number(m[1])) : buf.split('\r\n')[0])
      }
    })
    sock.write(line + '\r\n')
  })
}

async function waitReady(port, child) {
  for (let i = 0; i < 500; i++) {
    if (child.exitCode !== null) throw new Error(`redis-server on port ${port} exited with ${child.exitCode}`)
    try {
      if ((await rawCommand(port, 'PING')) === '+PONG') return
    } catch {
      // not listening yet
    }
    await delay(10)
  }
  throw new Error(`redis-server on port ${port} did not start`)
}

/** Starts redis-server without persistence; `extraArgs` are passed through. */
export async function startRedis({ port, extraArgs = [] } = {}) {
  port = port ?? (await freePort())
  let child
  const launch = async () => {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extraArgs],
      { stdio: 'ignore' },
    )
    child.on('error', (err) => {
      throw new Error(`cannot start redis-server (install it: apt-get install redis-server): ${err.message}`)
    })
    running.add(child)
    await waitReady(port, child)
  }
  const stop = async (signal = 'SIGKILL') => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill(signal)
    await exited
    running.delete(child)
  }
  await launch()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child.pid
    },
    /** Whether the process still runs. */
    get alive() {
      return child.exitCode === null && child.signalCode === null
    },
    /** Kills the server (SIGKILL: nothing is saved). */
    stop,
    /** Starts it again on the same port, empty. */
    restart: launch,
    /** One command through a raw socket, first reply line back. */
    command: (line) => rawCommand(port, line),
  }
}

// Kills a server process started here (SIGKILL) and waits for it to exit.
async function kill(child) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await exited
  running.delete(child)
}

const DYNALITE = new URL('../../node_modules/dynalite/cli.js', import.meta.url).pathname

/** Starts dynalite (an in-memory DynamoDB-compatible server, a devDependency) on a free port. */
export async function startDynalite() {
  // Ready when dynalite itself says it listens; if it exits first (the port was taken in the
  // meantime), try another port.
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    const child = spawn(
      process.execPath,
      [DYNALITE, '--port', String(port), '--host', '127.0.0.1', '--createTableMs', '0', '--deleteTableMs', '0'],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    )
    running.add(child)
    const listening = await new Promise((resolve) => {
      let out = ''
      child.stdout.on('data', (d) => {
        out += d
        if (out.includes('listening')) resolve(true)
      })
      child.once('exit', () => resolve(false))
    })
    if (listening) return dynalite(child, port)
    running.delete(child)
    if (attempt >= 4) throw new Error('dynalite did not start')
  }
}

function dynalite(child, port) {
  const endpoint = `http://127.0.0.1:${port}`
  return {
    port,
    endpoint,
    pid: child.pid,
    /** Client options for a table on this server (static test credentials). */
    options: (table, extra = {}) => ({
      dynamodb: {
        table,
        endpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
        ...extra,
      },
    }),
    stop: () => kill(child),
  }
}

/**
 * Starts moto_server (Python; `npm test` installs it) on a free port, for what dynalite lacks.
 * `env`: e.g. INITIAL_NO_AUTH_ACTION_COUNT=0 makes it check credentials.
 */
export async function startMoto({ env = {} } = {}) {
  const port = await freePort()
  const child = spawn('python3', ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], {
    stdio: 'ignore',
    env: { ...process.env, ...env },
  })
  running.add(child)
  const endpoint = `http://127.0.0.1:${port}`
  for (let i = 0; ; i++) {
    if (child.exitCode !== null)
      throw new Error(`moto_server exited with ${child.exitCode} (pip install 'moto[server]')`)
    const up = await fetch(`${endpoint}/moto-api/`).then(
      () => true,
      () => false,
    )
    if (up) break
    if (i > 300) throw new Error(`moto_server on port ${port} did not start`)
    await delay(50)
  }
  return {
    endpoint,
    pid: child.pid,
    stop: () => kill(child),
  }
}

/** `n` independent redis-server masters (for Redlock). */
export async function startMasters(n) {
  const masters = await Promise.all((await freePorts(n)).map((port) => startRedis({ port })))
  return {
    masters,
    urls: masters.map((m) => m.url),
    stop: () => Promise.all(masters.map((m) => m.stop())),
  }
}

// The fields of the CLUSTER NODES lines of masters not marked failing.
const liveMasters = (list) =>
  list
    .split('\n')
    .map((line) => line.split(' '))
    .filter((f) => f[2] && f[2].split(',').includes('master') && !f[2].includes('fail'))

/**
 * A Redis Cluster of 3 masters with one replica each (6 redis-server processes on free ports,
 * joined by `redis-cli --cluster create`). Fails over about a second after a master dies.
 */
export async function startCluster() {
  const dir = await mkdtemp(join(tmpdir(), 'ferrolock-cluster-'))
  const ports = await freePorts(12) // 6 client ports, 6 cluster bus ports
  const nodes = await Promise.all(
    Array.from({ length: 6 }, async (_, i) => {
      return startRedis({
        port: ports[i],
        extraArgs: [
          '--cluster-enabled',
          'yes',
          '--cluster-port',
          String(ports[6 + i]),
          '--cluster-config-file',
          join(dir, `nodes-${i}.conf`),
          '--cluster-node-timeout',
          '500',
          '--cluster-replica-validity-factor',
          '0',
          // Replicas write the snapshot they receive: into the temp dir, never the cwd (where
          // any server started later would load it).
          '--dir',
          dir,
          '--dbfilename',
          `dump-${i}.rdb`,
        ],
      })
    }),
  )
  const create = spawn(
    'redis-cli',
    ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '1', '--cluster-yes'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let output = ''
  create.stdout.on('data', (d) => (output += d))
  create.stderr.on('data', (d) => (output += d))
  const [code] = await once(create, 'exit')
  if (code !== 0) throw new Error(`redis-cli --cluster create failed with ${code}: ${output}`)
  const live = () => nodes.filter((n) => n.alive)
  const cluster = {
    nodes,
    urls: nodes.map((n) => n.url),
    /** Resolves once every live node reports cluster_state:ok with 3 masters. */
    async ready() {
      for (let i = 0; i < 2000; i++) {
        const states = await Promise.all(
          live().map(async (n) => [
            await rawCommand(n.port, 'CLUSTER INFO'),
            await rawCommand(n.port, 'CLUSTER NODES'),
          ]),
        ).catch(() => [])
        const ok =
          states.length > 0 &&
          states.every(([info, list]) => info.includes('cluster_state:ok') && liveMasters(list).length === 3)
        if (ok) return
        await delay(20)
      }
      throw new Error('the cluster did not reach cluster_state:ok')
    },
    /** The live node that is master of `key`'s slot. */
    async masterOf(key) {
      const slot = Number((await rawCommand(live()[0].port, `CLUSTER KEYSLOT ${key}`)).slice(1))
      const list = await rawCommand(live()[0].port, 'CLUSTER NODES')
      for (const f of liveMasters(list)) {
        const owns = f.slice(8).some((r) => {
          const [lo, hi = lo] = r.split('-').map(Number)
          return lo <= slot && slot <= hi
        })
        if (owns) return nodes.find((n) => n.port === Number(f[1].split('@')[0].split(':').pop()))
      }
      throw new Error(`no master for slot ${slot}`)
    },
    /** The node that replicates `master`. */
    async replicaOf(master) {
      const list = (await rawCommand(master.port, 'CLUSTER NODES')).split('\n').map((l) => l.split(' '))
      const id = list.find((f) => f[1] && Number(f[1].split('@')[0].split(':').pop()) === master.port)?.[0]
      const replica = list.find((f) => f[2] && f[2].includes('slave') && f[3] === id)
      if (!replica) throw new Error(`no replica of port ${master.port}`)
      return nodes.find((n) => n.port === Number(replica[1].split('@')[0].split(':').pop()))
    },
    /**
     * Resolves once every replica of `master` has all the writes the master had when this was
     * called. (Later writes, e.g. a heartbeat or a waiter's attempts, keep moving the master's
     * offset; replicas report theirs about once a second, so waiting for equality could miss.)
     */
    async replicated(master) {
      let target
      for (let i = 0; i < 500; i++) {
        const info = await rawCommand(master.port, 'INFO replication')
        target = target ?? Number(/master_repl_offset:(\d+)/.exec(info)?.[1])
        const replicas = info.split('\r\n').filter((l) => /^slave\d+:/.test(l))
        const caughtUp = (r) => r.includes('state=online') && Number(/offset=(\d+)/.exec(r)?.[1]) >= target
        if (replicas.length > 0 && replicas.every(caughtUp)) return
        await delay(20)
      }
      throw new Error(`the replicas did not catch up to offset ${target} within 10 s`)
    },
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()))
      await rm(dir, { recursive: true, force: true })
    },
  }
  await cluster.ready()
  return cluster
}

/**
 * A TCP proxy in front of 127.0.0.1:`target`. `stall(true)` stops forwarding (bytes wait, the
 * connections stay open: a master that hangs); `stall(false)` delivers them and resumes.
 */
export async function startStallProxy(target) {
  let stalled = false
  const sockets = new Set()
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1')
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => {})
      s.on('close', () => {
        sockets.delete(s)
        client.destroy()
        upstream.destroy()
      })
    }
    const pipe = (from, to) =>
      from.on('data', (d) => {
        to.write(d)
      })
    pipe(client, upstream)
    pipe(upstream, client)
    if (stalled) {
      client.pause()
      upstream.pause()
    }
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stall(on) {
      stalled = on
      for (const s of sockets) {
        if (on) s.pause()
        else s.resume()
      }
    },
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}
