// Counting the connections a client makes to servers, without a proxy in between (a Redis
// Cluster's redirects name the real node addresses, so a proxy cannot stand in front of it).
//
//   const received = await nodeConnections([port1, port2])  // Map port -> total_connections_received
//   const watch = watchClientSockets([port1, port2], serverPids)
//   ...                                                       // then, later:
//   watch.stop()   // [{ port, local }] for every TCP connection to one of the ports that was
//                  // not open when the watch started: a connection attempt made meanwhile
//
// The watch reads the kernel's socket table (/proc/net/tcp) every 10 ms, so it also sees an
// attempt to a stopped (SIGSTOP) server, whose kernel still completes the handshake, and one
// that closed again before stop(). Sockets of the servers' own processes (a replica's link to
// its master) are not counted.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'

import { rawCommand } from './servers.mjs'

/** `total_connections_received` of each server (each reading is one connection of its own). */
export async function nodeConnections(ports) {
  const out = new Map()
  for (const port of ports) {
    const info = await rawCommand(port, 'INFO stats')
    const m = /total_connections_received:(\d+)/.exec(info)
    if (!m) throw new Error(`no total_connections_received in INFO stats of port ${port}`)
    out.set(port, Number(m[1]))
  }
  return out
}

// The socket inodes a process holds open.
function socketInodes(pid) {
  const inodes = new Set()
  let fds = []
  try {
    fds = readdirSync(`/proc/${pid}/fd`)
  } catch {
    return inodes // gone
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (m) inodes.add(m[1])
    } catch {
      // closed meanwhile
    }
  }
  return inodes
}

// Client sides of TCP connections to one of `ports` on 127.0.0.1, as "port:local" strings,
// except those held by a process in `exclude` (inodes).
function clientSockets(ports, exclude) {
  const wanted = new Set(ports.map((p) => p.toString(16).toUpperCase().padStart(4, '0')))
  const out = new Set()
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/)
    if (f.length < 10) continue
    const [local, remote, state, inode] = [f[1], f[2], f[3], f[9]]
    const [remoteHost, remotePort] = remote.split(':')
    if (remoteHost !== '0100007F' || !wanted.has(remotePort) || state === '0A') continue
    if (inode !== '0' && exclude.has(inode)) continue
    out.add(`${parseInt(remotePort, 16)}:${parseInt(local.split(':')[1], 16)}`)
  }
  return out
}

/** Starts watching for new client connections to `ports`; see the top of the file. */
export function watchClientSockets(ports, serverPids = []) {
  const serverInodes = () => {
    const all = new Set()
    for (const pid of serverPids) for (const inode of socketInodes(pid)) all.add(inode)
    return all
  }
  const known = clientSockets(ports, serverInodes())
  const fresh = new Set()
  const sample = () => {
    for (const s of clientSockets(ports, serverInodes())) if (!known.has(s)) fresh.add(s)
  }
  const timer = setInterval(sample, 10)
  return {
    stop() {
      clearInterval(timer)
      sample()
      return [...fresh].map((s) => {
        const [port, local] = s.split(':').map(Number)
        return { port, local }
      })
    },
  }
}
