// DynamoDB benchmark: ferrolock against dynamo-lock 0.1.3 and a raw @aws-sdk/client-dynamodb v3
// loop, in one run, on one dynalite that this script starts (on a free port) and stops.
//
//   node bench/dynamodb.mjs          (part of npm run bench)
//
// One sequential loop per library, on one key:
//   ferrolock    acquire + release (one conditional UpdateItem each)
//   raw v3       PutItem if absent + DeleteItem if ours (the least a correct lock can send)
//   dynamo-lock  getLock on a fresh name (GetItem + conditional PutItem); it has no release,
//                so a cycle on one name would have to wait for expiry
// Reports cycles/s (median of ROUNDS rounds, libraries taking turns), client CPU per cycle, and
// requests per cycle counted by a small proxy in front of dynalite. Writes its block in
// bench/RESULTS.md.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { createRequire } from 'node:module'
import os from 'node:os'
import { fileURLToPath } from 'node:url'

import { startDynalite } from '../__test__/support/servers.mjs'

const require = createRequire(import.meta.url)
const { createClient } = require('../index.js')
const { DynamoDBClient, PutItemCommand, DeleteItemCommand, CreateTableCommand } = require('@aws-sdk/client-dynamodb')
const dynamoLock = require('dynamo-lock')

const ROUNDS = 3
const ROUND_MS = 1500
const COUNT_CYCLES = 200
const creds = { accessKeyId: 'bench', secretAccessKey: 'bench' }
const RESULTS = fileURLToPath(new URL('./RESULTS.md', import.meta.url))
// bench/run.mjs rewrites RESULTS.md but keeps this block.
const START = '<!-- DYNAMODB: written by bench/dynamodb.mjs -->'
const END = '<!-- /DYNAMODB -->'

// Forwards every request to dynalite and counts them by operation (X-Amz-Target).
function countingProxy(target) {
  const counts = new Map()
  const server = http.createServer((req, res) => {
    const op = String(req.headers['x-amz-target'] || '?')
      .split('.')
      .pop()
    counts.set(op, (counts.get(op) || 0) + 1)
    const up = http.request(target + req.url, { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode, r.headers)
      r.pipe(res)
    })
    up.on('error', () => res.destroy())
    req.pipe(up)
  })
  server.keepAliveTimeout = 60_000
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${server.address().port}`, counts, server })),
  )
}

// Each library: open(endpoint) -> { cycle(i), close() }.
const LIBS = {
  ferrolock: async (endpoint) => {
    const locks = createClient({ dynamodb: { table: 'ferrolock', endpoint, region: 'us-east-1', credentials: creds } })
    return {
      cycle: async () => {
        const lock = await locks.acquire('bench', { autoExtend: false, wait: false })
        await lock.release()
      },
      close: () => locks.close(),
    }
  },
  'raw v3': async (endpoint) => {
    const db = new DynamoDBClient({ endpoint, region: 'us-east-1', credentials: creds })
    return {
      cycle: async (i) => {
        const guid = `g${i}`
        await db.send(
          new PutItemCommand({
            TableName: 'raw',
            Item: { name: { S: 'bench' }, guid: { S: guid }, expiresOn: { N: String(Date.now() + 10_000) } },
            ConditionExpression: 'attribute_not_exists(#n)',
            ExpressionAttributeNames: { '#n': 'name' },
          }),
        )
        await db.send(
          new DeleteItemCommand({
            TableName: 'raw',
            Key: { name: { S: 'bench' } },
            ConditionExpression: 'guid = :g',
            ExpressionAttributeValues: { ':g': { S: guid } },
          }),
        )
      },
      close: async () => db.destroy(),
    }
  },
  'dynamo-lock 0.1.3': async (endpoint) => {
    const client = dynamoLock.createClient('dynamolock', {
      awsConfig: { endpoint, region: 'us-east-1', ...creds, maxRetries: 0 },
    })
    let run = 0
    const prefix = `r${process.hrtime.bigint()}`
    return {
      cycle: () =>
        new Promise((resolve, reject) =>
          client.getLock(`${prefix}-${run++}`, 10_000, (err, ok) => (err ? reject(new Error(err)) : resolve(ok))),
        ),
      close: async () => {},
    }
  },
}

async function createTables(endpoint) {
  const db = new DynamoDBClient({ endpoint, region: 'us-east-1', credentials: creds })
  for (const [table, key] of [
    ['raw', 'name'],
    ['dynamolock', 'name'],
  ]) {
    await db.send(
      new CreateTableCommand({
        TableName: table,
        AttributeDefinitions: [{ AttributeName: key, AttributeType: 'S' }],
        KeySchema: [{ AttributeName: key, KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    )
  }
  db.destroy()
  const locks = createClient({ dynamodb: { table: 'ferrolock', endpoint, region: 'us-east-1', credentials: creds } })
  await locks.createLockTable()
  await locks.close()
}

async function timed(lib, ms) {
  let i = 0
  const warm = performance.now() + 200
  while (performance.now() < warm) await lib.cycle(i++)
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const end = t0 + ms
  let n = 0
  while (performance.now() < end) {
    await lib.cycle(i++)
    n++
  }
  const secs = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  return { rate: n / secs, cpuUs: (cpu.user + cpu.system) / n }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

const server = await startDynalite()
try {
  await createTables(server.endpoint)
  // Requests per cycle, through the counting proxy.
  const proxy = await countingProxy(server.endpoint)
  const perCycle = {}
  for (const [name, open] of Object.entries(LIBS)) {
    const lib = await open(proxy.url)
    await lib.cycle(0) // connection set-up and first-use costs are not per cycle
    proxy.counts.clear()
    for (let i = 1; i <= COUNT_CYCLES; i++) await lib.cycle(i)
    const total = [...proxy.counts.values()].reduce((a, b) => a + b, 0)
    perCycle[name] = {
      total: total / COUNT_CYCLES,
      ops: [...proxy.counts].map(([op, c]) => `${op} ${(c / COUNT_CYCLES).toFixed(2)}`).join(', '),
    }
    await lib.close()
  }
  proxy.server.close()

  // Throughput: ROUNDS rounds, libraries taking turns, median round per library.
  const libs = {}
  for (const [name, open] of Object.entries(LIBS)) libs[name] = await open(server.endpoint)
  const rounds = Object.fromEntries(Object.keys(LIBS).map((n) => [n, []]))
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, lib] of Object.entries(libs)) rounds[name].push(await timed(lib, ROUND_MS))
  }
  for (const lib of Object.values(libs)) await lib.close()

  const rows = Object.keys(LIBS).map((name) => {
    const rate = median(rounds[name].map((x) => x.rate))
    const cpuUs = median(rounds[name].map((x) => x.cpuUs))
    return { name, rate, cpuUs, ...perCycle[name] }
  })
  const ferro = rows[0]
  const lines = [
    '| library | cycles/s | ferrolock ÷ library | client CPU µs/cycle | requests/cycle | requests by operation |',
    '|---|---:|---:|---:|---:|---|',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.rate.toFixed(0)} | ${(ferro.rate / r.rate).toFixed(2)}× | ${r.cpuUs.toFixed(0)} | ${r.total.toFixed(2)} | ${r.ops} |`,
    ),
  ]
  const block = [
    START,
    '## DynamoDB (dynalite)',
    '',
    `Written by \`node bench/dynamodb.mjs\` on ${new Date().toISOString().slice(0, 10)}: ${os.cpus().length} CPUs, Node ${process.version}, one dynalite (in memory) on the same machine.`,
    `Sequential loop on one key, median of ${ROUNDS} rounds of ${ROUND_MS} ms (libraries taking turns); requests counted over ${COUNT_CYCLES} cycles by a proxy.`,
    'A cycle: ferrolock acquire + release; raw v3 conditional PutItem + DeleteItem; dynamo-lock getLock of a fresh name (it has no release).',
    '',
    ...lines,
    END,
  ].join('\n')
  console.log(block)
  writeBlock(block)
} finally {
  await server.stop()
}

// ---- RESULTS.md -------------------------------------------------------------------------------

function writeBlock(block) {
  const file = RESULTS
  let text = existsSync(file) ? readFileSync(file, 'utf8') : ''
  const a = text.indexOf(START)
  const b = text.indexOf(END)
  if (a >= 0 && b > a) text = text.slice(0, a) + block + text.slice(b + END.length)
  else text = `${text.trimEnd()}\n\n${block}\n`
  writeFileSync(file, text)
}
