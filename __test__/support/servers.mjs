// Real servers for the JS tests: redis-server processes on free ports, stopped by PID.
import { spawn } from 'node:child_process'
import net from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'

const running = new Set()
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

/** A TCP port nobody listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

/** Sends one inline command and resolves the first reply line (no client library needed). */
export function rawCommand(port, line) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1')
    let buf = ''
    sock.setTimeout(2000, () => sock.destroy(new Error('timeout')))
    sock.on('error', reject)
    sock.on('data', (d) => {
      buf += d
      if (buf.includes('\r\n')) {
        sock.end()
        resolve(buf.split('\r\n')[0])
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
    /** Kills the server (SIGKILL: nothing is saved). */
    stop,
    /** Starts it again on the same port, empty. */
    restart: launch,
    /** One command through a raw socket, first reply line back. */
    command: (line) => rawCommand(port, line),
  }
}

const DYNALITE = new URL('../../node_modules/dynalite/cli.js', import.meta.url).pathname

/** Starts dynalite (an in-memory DynamoDB-compatible server, a devDependency) on a free port. */
export async function startDynalite() {
  const port = await freePort()
  const child = spawn(
    process.execPath,
    [DYNALITE, '--port', String(port), '--host', '127.0.0.1', '--createTableMs', '0', '--deleteTableMs', '0'],
    { stdio: 'ignore' },
  )
  running.add(child)
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`dynalite on port ${port} exited with ${child.exitCode}`)
    const up = await new Promise((resolve) => {
      const sock = net.connect(port, '127.0.0.1', () => resolve(sock.end() && true))
      sock.on('error', () => resolve(false))
    })
    if (up) break
    if (i > 500) throw new Error(`dynalite on port ${port} did not start`)
    await delay(10)
  }
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
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGKILL')
      await exited
      running.delete(child)
    },
  }
}

/** Starts moto_server (Python; `npm test` installs it) on a free port, for what dynalite lacks. */
export async function startMoto() {
  const port = await freePort()
  const child = spawn('python3', ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' })
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
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGKILL')
      await exited
      running.delete(child)
    },
  }
}
