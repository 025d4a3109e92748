// A TCP proxy for chaos tests: put it between a client and a real server, then make the server
// look hung or gone without touching the server itself.
//
//   const proxy = await startProxy(targetPort)   // listens on 127.0.0.1:proxy.port (a free port)
//   proxy.stall()        // bytes stop in both directions; connections stay open, new ones are
//                        // accepted but not forwarded (a server that hangs: SIGSTOP, a blackhole)
//   proxy.pass()         // what waited is delivered, forwarding resumes
//   proxy.cut()          // every open connection is reset; new ones still pass (or stall)
//   proxy.connections    // connections accepted so far (a client's connection attempts)
//   await proxy.close()  // resets everything and stops listening; bounded
//
// The target is 127.0.0.1:`targetPort` unless `{ host }` is given.
import net from 'node:net'
import { freePort } from './servers.mjs'

export async function startProxy(targetPort, { host = '127.0.0.1' } = {}) {
  let stalled = false
  let connections = 0
  const pairs = new Set() // [client, upstream] of every open connection

  const server = net.createServer((client) => {
    connections++
    client.on('error', () => {})
    client.pause()
    const pair = [client, null]
    pairs.add(pair)
    const end = () => {
      pairs.delete(pair)
      client.destroy()
      if (pair[1]) pair[1].destroy()
    }
    client.on('close', end)
    // Connect upstream only when passing: a stalled proxy is a server that accepts and hangs.
    const open = () => {
      if (client.destroyed || pair[1]) return
      const upstream = net.connect(targetPort, host)
      pair[1] = upstream
      upstream.on('error', () => {})
      upstream.on('close', end)
      client.on('data', (d) => upstream.write(d))
      upstream.on('data', (d) => client.write(d))
      if (!stalled) client.resume()
      else upstream.pause()
    }
    pair.open = open
    if (!stalled) open()
  })

  const port = await freePort()
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', resolve)
  })

  return {
    port,
    get connections() {
      return connections
    },
    stall() {
      stalled = true
      for (const [client, upstream] of pairs) {
        client.pause()
        if (upstream) upstream.pause()
      }
    },
    pass() {
      stalled = false
      for (const pair of pairs) {
        if (!pair[1]) pair.open()
        pair[0].resume()
        pair[1].resume()
      }
    },
    cut() {
      for (const [client, upstream] of pairs) {
        client.resetAndDestroy()
        if (upstream) upstream.resetAndDestroy()
      }
      pairs.clear()
    },
    close() {
      this.cut()
      return new Promise((resolve) => {
        const timer = setTimeout(resolve, 2000) // close waits for nothing we have not reset
        server.close(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    },
  }
}
