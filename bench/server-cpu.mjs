// redis-server CPU per uncontended acquire + release cycle, from the server's own accounting
// (INFO commandstats), for ferrolock and the peers, on one redis-server that this script starts
// (on a free port) and stops.
//
//   node bench/server-cpu.mjs [--cycles N] [--port P] [--write] [peer ...]
//
// Peers default to ferrolock, ferrolock-scripts and raw (any name of bench/peers.mjs works).
// `ferrolock-scripts` sends ferrolock's own Lua scripts (crates/core/src/store/redis), with the
// keys and arguments ferrolock sends, through one ioredis client like raw's: the server-side
// cost of ferrolock's protocol at raw's pace, whatever the speed of ferrolock's client.
// `--port` measures on a redis-server that is already running there (e.g. to compare two
// builds on one server) instead of starting one.
// Per library and mode (sequential: one loop on one key; 64 keys: 64 concurrent loops on 64
// keys, the same total of cycles): one client, a warm-up (connections, script loading),
// CONFIG RESETSTAT, the cycles, then INFO commandstats. Reported per cycle:
// - all usec: the `usec` of every command summed. A script's own `usec` includes the commands
//   it runs, and those are counted again under their own names, so this counts the work inside
//   scripts twice (for every library alike: raw's compare-and-delete is a script too);
// - top usec: only what clients sent (the script calls, and raw's SET), each once;
// - the commands per cycle, by name (calls / cycles).
// Both figures are the server's busy time, without waiting for the network. They still depend
// on the client's pace: a server that sleeps between requests runs each one on colder caches,
// so a slower client makes the same commands cost more (compare ferrolock-scripts with
// ferrolock), and outside load on the machine does the same. Compare rows of one run.
// `--write` puts the table into bench/RESULTS.md between the SERVER-CPU markers (inside the
// notes block that bench/run.mjs keeps).
import { readFileSync, writeFileSync, existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { startRedis } from '../__test__/support/servers.mjs'
import { openPeer as openBenchPeer, TTL } from './peers.mjs'
import { createRequire } from 'node:module'
import { randomUUID } from 'node:crypto'

const require = createRequire(import.meta.url)
const Redis = require('ioredis')

const args = process.argv.slice(2)
const take = (flag) => {
  const i = args.indexOf(flag)
  if (i < 0) return undefined
  const [, value] = args.splice(i, 2)
  return value
}
const CYCLES = Number(take('--cycles') ?? 20_000)
const PORT = take('--port')
const write = args.includes('--write')
const peers = args.filter((a) => !a.startsWith('--'))
if (peers.length === 0) peers.push('ferrolock', 'ferrolock-scripts', 'raw')
if (!Number.isInteger(CYCLES) || CYCLES < 100) throw new Error('--cycles: an integer of at least 100')
const WARM = 500

// The commands a client sends (the rest run inside scripts).
const TOP = new Set(['evalsha', 'eval', 'evalsha_ro', 'eval_ro', 'fcall', 'set'])

/** INFO commandstats as { name: { calls, usec } } (subcommands as `config|resetstat`). */
function commandstats(text) {
  const stats = {}
  for (const line of text.split('\r\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line)
    if (m) stats[m[1]] = { calls: Number(m[2]), usec: Number(m[3]) }
  }
  return stats
}

// ferrolock's scripts through ioredis, as ferrolock's Redis store sends them (see redis.rs).
const SCRIPTS = new URL('../crates/core/src/store/redis/', import.meta.url)
const lua = (name) => readFileSync(new URL(`${name}.lua`, SCRIPTS), 'utf8')
async function openScripts(port) {
  const redis = new Redis({ host: '127.0.0.1', port })
  redis.defineCommand('lockAcquire', { numberOfKeys: 4, lua: lua('acquire') })
  redis.defineCommand('lockRelease', { numberOfKeys: 3, lua: lua('release') })
  const keep = 60_000
  return {
    async acquire(name) {
      const lock = `bench:ferrolock-scripts:${name}`
      const base = `{${lock}}`
      const token = randomUUID()
      const keys = [lock, `${base}:fence`, `${base}:queue`, `${base}:waiters`]
      // The fence (a decimal string) when granted; never held here (one loop per key).
      const fence = await redis.lockAcquire(...keys, token, token, TTL, 0, keep)
      if (Array.isArray(fence)) throw new Error(`not granted: ${JSON.stringify(fence)}`)
      return { keys, token, channel: `${base}:released` }
    },
    release: ({ keys, token, channel }) => redis.lockRelease(keys[0], keys[1], keys[2], token, keep, channel, '0'),
    close: () => redis.quit(),
  }
}
const openPeer = (name, port) => (name === 'ferrolock-scripts' ? openScripts(port) : openBenchPeer(name, port))

const MODES = [
  ['sequential', 1],
  ['64 keys', 64],
]

/** `total` cycles spread over `loops` concurrent loops, each on a key of its own. */
async function run(peer, name, loops, total) {
  const loop = async (k) => {
    const key = `server-cpu-${name}-${k}`
    for (let i = k; i < total; i += loops) await peer.release(await peer.acquire(key))
  }
  await Promise.all(Array.from({ length: loops }, (_, k) => loop(k)))
}

async function measure(name, [mode, loops], port, info) {
  const peer = await openPeer(name, port)
  try {
    await run(peer, name, loops, WARM)
    await info.call('config', 'resetstat')
    await run(peer, name, loops, CYCLES)
    const stats = commandstats(await info.call('info', 'commandstats'))
    delete stats['config|resetstat']
    delete stats.info
    let all = 0
    let top = 0
    const perCycle = []
    for (const [cmd, { calls, usec }] of Object.entries(stats)) {
      all += usec
      // raw's SET is sent by the client; ferrolock's SET runs inside a script.
      if (TOP.has(cmd) && !(cmd === 'set' && stats.evalsha && name !== 'raw')) top += usec
      perCycle.push(`${cmd} ${(calls / CYCLES).toFixed(2).replace(/\.00$/, '')}`)
    }
    return { name, mode, all: all / CYCLES, top: top / CYCLES, commands: perCycle.join(', ') }
  } finally {
    await peer.close()
  }
}

const redis = PORT ? null : await startRedis()
const port = PORT ? Number(PORT) : redis.port
const info = new Redis({ host: '127.0.0.1', port })
const rows = []
try {
  const version = /redis_version:(\S+)/.exec(await info.info('server'))[1]
  // Libraries take turns within each mode, so a burst of outside load hits one mode, not one
  // library.
  for (const mode of MODES) for (const name of peers) rows.push(await measure(name, mode, port, info))
  const ratio = (r, field) => {
    const raw = rows.find((x) => x.name === 'raw' && x.mode === r.mode)
    return raw ? `${(r[field] / raw[field]).toFixed(2)}×` : '–'
  }
  const table = [
    `redis-server ${version}, ${CYCLES} acquire + release cycles per library and mode (ttl 10 s, no`,
    `auto-extend), measured ${new Date().toISOString()} with \`node bench/server-cpu.mjs\`.`,
    '',
    '| library | mode | all usec / cycle | vs raw | top usec / cycle | vs raw | commands per cycle |',
    '|---|---|---:|---:|---:|---:|---|',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.mode} | ${r.all.toFixed(2)} | ${ratio(r, 'all')} | ${r.top.toFixed(2)} | ${ratio(r, 'top')} | ${r.commands} |`,
    ),
  ]
  console.log(table.join('\n'))
  if (write) writeSection(table)
} finally {
  info.disconnect()
  await redis?.stop()
}

function writeSection(table) {
  const file = fileURLToPath(new URL('./RESULTS.md', import.meta.url))
  const START = '<!-- SERVER-CPU: written by bench/server-cpu.mjs -->'
  const END = '<!-- /SERVER-CPU -->'
  const block = [START, '', '### redis-server CPU per uncontended cycle', '', ...table, '', END].join('\n')
  let text = existsSync(file) ? readFileSync(file, 'utf8') : ''
  const a = text.indexOf(START)
  const b = text.indexOf(END)
  if (a >= 0 && b > a) text = text.slice(0, a) + block + text.slice(b + END.length)
  else {
    // Inside the notes block, which bench/run.mjs keeps when it rewrites the file.
    const notesEnd = text.indexOf('<!-- /NOTES -->')
    text = notesEnd >= 0 ? `${text.slice(0, notesEnd)}${block}\n\n${text.slice(notesEnd)}` : `${text}\n${block}\n`
  }
  writeFileSync(file, text)
}
