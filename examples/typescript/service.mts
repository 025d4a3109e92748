// A small typed service: it issues invoice numbers with no gaps and no duplicates, however many
// requests come at once, by taking a lock around read-increment-write of the counter. Compiled
// with `tsc --strict`; every ferrolock call below is checked against the package's typings.
// Run: npx tsc -p examples/typescript && node examples/typescript/dist/service.mjs
// Env: REDIS_URL (redis://host:6379) to share the lock between processes; without it, the memory
// backend, which excludes within this one process only.
import { createClient, LockError, type ClientOptions, type Lock, type LockInfo } from 'ferrolock'

interface Invoice {
  number: number
  customer: string
  fence: bigint
}

const options: ClientOptions = process.env.REDIS_URL ? { redis: process.env.REDIS_URL } : {}
const locks = createClient(options)

// The "database": a counter that must not be read and written by two requests at once.
let lastNumber = 0
function slowly<T>(value: T): Promise<T> {
  return new Promise((resolve) => setTimeout(() => resolve(value), 20)) // a database round trip
}

async function issueInvoice(customer: string): Promise<Invoice> {
  // using<T> resolves what the function returns: here an Invoice, typed.
  return locks.using('invoice-counter', { ttl: 5_000 }, async (signal, lock: Lock) => {
    const number = (await slowly(lastNumber)) + 1
    if (signal.aborted) throw signal.reason // lost the lock: do not write
    lastNumber = number
    return { number, customer, fence: lock.fence }
  })
}

// A maintenance task that must not wait: tryAcquire resolves null while someone holds the lock.
async function compactIfIdle(): Promise<string> {
  const lock = await locks.tryAcquire('invoice-counter', { ttl: 5_000, owner: 'compactor' })
  if (lock === null) {
    const holder: LockInfo | null = await locks.inspect('invoice-counter')
    return `compaction skipped: held by ${holder?.owner ?? 'someone who just left'}`
  }
  lock.on('lost', (err) => console.error(`compaction lost its lock: ${err.code}`))
  try {
    return 'compaction ran'
  } finally {
    await lock.release()
  }
}

async function main(): Promise<void> {
  const customers = ['acme', 'globex', 'initech', 'umbrella', 'hooli']
  const pending = customers.map(issueInvoice)
  console.log(await compactIfIdle()) // the invoices hold the lock now
  for (const invoice of await Promise.all(pending)) {
    console.log(`invoice ${invoice.number} for ${invoice.customer} (fence ${invoice.fence})`)
  }
  console.log(await compactIfIdle()) // idle now

  // Errors carry a typed code: a bounded wait that runs out is ERR_LOCK_NOT_ACQUIRED.
  const held = await locks.acquire('invoice-counter', { ttl: 5_000 })
  try {
    await locks.acquire('invoice-counter', { wait: 100 })
  } catch (err) {
    if (!(err instanceof LockError)) throw err
    console.log(`busy: ${err.code}`)
  } finally {
    await held.release()
  }
  await locks.close()
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
