// Type tests for index.d.ts: never executed, only checked by `npx tsc -p tsconfig.json`.
// Correct use must compile; every `@ts-expect-error` line must fail to compile (tsc reports an
// unused one), so a loosened type shows up here as an error.
//
// The package imports itself by name, through package.json "exports" (the "types" condition),
// the way a TypeScript user would. This file is CommonJS-format (the package is "type": "commonjs").

import { EventEmitter, once } from 'node:events'

import * as ferrolock from 'ferrolock'
import {
  AbortedError,
  BackendUnavailableError,
  Client,
  ClientClosedError,
  createClient,
  InvalidArgumentError,
  Lock,
  LockError,
  LockLostError,
  LockNotAcquiredError,
  TableNotFoundError,
} from 'ferrolock'
import type {
  AcquireOptions,
  Backend,
  Callback,
  ClientOptions,
  ClientStats,
  ErrorCode,
  LockEvents,
  LockInfo,
  Logger,
  RedisOptions,
  RedlockClientOptions,
} from 'ferrolock'

/** Checks that a value is assignable to `T` (not that the types are equal), and uses it. */
declare function expectType<T>(value: T): void

// ---- createClient and its options ---------------------------------------------------------------

function clients(): Client[] {
  const pinoLike = {
    level: 'info',
    warn(obj: object, msg?: string, ...args: unknown[]): void {
      void [obj, msg, args]
    },
    error(obj: unknown, msg?: string): void {
      void [obj, msg]
    },
  }
  const logger: Logger = pinoLike
  const redis: RedisOptions = { host: '127.0.0.1', port: 6379, username: 'u', password: 'p', db: 2, keyPrefix: 'app:' }
  const options: ClientOptions = { redis, logger }
  const made = [
    createClient(),
    createClient({}),
    createClient({ memory: true }),
    createClient({ memory: true, keyPrefix: 'x:', logger: console }),
    createClient({ redis: 'redis://127.0.0.1:6379/0' }),
    createClient({ redis: { url: 'redis://:secret@db.internal:6380/1' }, keyPrefix: 'jobs:' }),
    createClient({ redis: undefined }),
    createClient(options),
    createClient(undefined),
    createClient('redis://127.0.0.1:6379'),
    createClient('rediss://:secret@db.internal:6380/1', { keyPrefix: 'jobs:', logger: console }),
  ]
  // A string that is not a redis:// or rediss:// URL is dynamo-lock's table name.
  const locker: { getLock(name: string, ttl: number, cb: (err: string | null) => void): void } = createClient('Locks', {
    awsConfig: { region: 'eu-west-1' },
  })
  // @ts-expect-error a dynamo-lock client has no acquire
  createClient('Locks').acquire('x')
  // @ts-expect-error a Redis URL takes client options, no second backend
  createClient('redis://127.0.0.1:6379', { redis: 'redis://127.0.0.1:6380' })
  // @ts-expect-error nor dynamo-lock's params
  createClient('redis://127.0.0.1:6379', { awsConfig: {} })
  void locker

  // @ts-expect-error redis is a URL string or an options object
  createClient({ redis: 42 })
  // @ts-expect-error one backend only: memory and redis together
  createClient({ memory: true, redis: 'redis://127.0.0.1:6379' })
  // @ts-expect-error memory only accepts true
  createClient({ memory: false })
  // @ts-expect-error unknown client option
  createClient({ redis: 'redis://127.0.0.1', prefix: 'x:' })
  // @ts-expect-error unknown Redis option (a typo of host)
  createClient({ redis: { hots: '127.0.0.1' } })
  // @ts-expect-error the port is a number
  createClient({ redis: { port: '6379' } })
  // @ts-expect-error keyPrefix is a string
  createClient({ keyPrefix: 1 })
  // @ts-expect-error a logger method takes (obj, msg), not a number first
  createClient({ logger: { warn: (code: number) => void code } })

  return made
}

function client(locks: Client): void {
  expectType<Backend>(locks.backend)
  expectType<'memory' | 'file' | 'redis' | 'redis-cluster' | 'redlock' | 'dynamodb'>(locks.backend)
  // @ts-expect-error backend is read-only
  locks.backend = 'redis'
  // @ts-expect-error there is only memory, redis (one server or a cluster) and redlock
  expectType<'dynamodb'>(locks.backend)

  const stats: ClientStats = locks.stats()
  const { pending, held, watched } = locks.stats()
  expectType<number>(pending + held + watched + stats.pending)

  // @ts-expect-error Client is made by createClient, not constructed
  new Client()
  // @ts-expect-error Lock is made by acquire, not constructed
  new Lock()
}

// ---- acquire and tryAcquire: promises ------------------------------------------------------------

async function acquireWithPromises(locks: Client): Promise<void> {
  const plain: Lock = await locks.acquire('report-job')
  const options: AcquireOptions = {
    ttl: 10_000,
    wait: 5_000,
    retryDelay: 50,
    retryJitter: 25,
    maxRetries: Infinity,
    autoExtend: true,
    refreshInterval: 3_000,
    owner: 'worker-1',
    data: JSON.stringify({ job: 42 }),
    signal: AbortSignal.timeout(1_000),
  }
  const full = await locks.acquire('report-job', options)
  await locks.acquire('a', { wait: true })
  await locks.acquire('b', { wait: false, autoExtend: false })
  await locks.acquire('c', undefined)
  const maybeTtl: number | undefined = undefined
  await locks.acquire('c', { ttl: maybeTtl, wait: undefined, signal: undefined })
  expectType<Promise<Lock>>(locks.acquire('d', { ttl: 1_000 }))
  expectType<Promise<Lock | null>>(locks.tryAcquire('e'))
  expectType<Promise<Lock | null>>(locks.tryAcquire('e', { ttl: 1_000, data: 'x' }))

  const maybe = await locks.tryAcquire('x')
  // @ts-expect-error tryAcquire may resolve null
  void maybe.fence
  if (maybe) expectType<bigint>(maybe.fence)

  // @ts-expect-error ttl is a number of ms, not a string
  await locks.acquire('x', { ttl: '10s' })
  // @ts-expect-error unknown option (a typo of ttl)
  await locks.acquire('x', { tll: 1_000 })
  const typo = { tll: 1_000 }
  // @ts-expect-error unknown option in a variable (no property in common with AcquireOptions)
  await locks.acquire('x', typo)
  // @ts-expect-error wait is a boolean or a deadline in ms
  await locks.acquire('x', { wait: 'forever' })
  // @ts-expect-error signal is an AbortSignal, not its controller
  await locks.acquire('x', { signal: new AbortController() })
  // @ts-expect-error data is a string
  await locks.acquire('x', { data: { job: 42 } })
  // @ts-expect-error the name is required
  await locks.acquire()
  // @ts-expect-error the name comes first
  await locks.acquire({ ttl: 1_000 })
  // @ts-expect-error the name is a string
  await locks.tryAcquire(42)
  // @ts-expect-error the promise form must be awaited to get the lock
  const notYet: Lock = locks.acquire('x')

  void [plain, full, notYet]
}

// ---- callbacks -----------------------------------------------------------------------------------

function acquireWithCallbacks(locks: Client): void {
  const r1 = locks.acquire('x', (err, lock) => {
    if (err) {
      expectType<Error>(err)
      expectType<undefined>(lock)
      return
    }
    expectType<null>(err)
    expectType<bigint>(lock.fence)
    lock.release((releaseErr, ok) => {
      if (!releaseErr) expectType<boolean>(ok)
    })
  })
  expectType<void>(r1)
  locks.acquire('x', { ttl: 5_000 }, (err, lock) => void (err ?? lock.token))
  locks.acquire('x', undefined, (err) => void err)
  locks.acquire('x', () => {})
  // Annotated the usual ways: the value is optional, since it is undefined on error.
  locks.acquire('x', (err: Error | null, lock?: Lock) => void [err, lock])
  locks.acquire('x', function (this: void, err: Error | null, lock: Lock | undefined) {
    void [err, lock]
  })
  const named: Callback<Lock> = (err, lock) => void (err ? err.message : lock.name)
  locks.acquire('x', { wait: false }, named)

  locks.tryAcquire('x', (err, lock) => {
    if (err) return
    expectType<Lock | null>(lock)
  })
  locks.tryAcquire('x', { ttl: 100 }, (err, lock) => void (err ?? lock?.release()))
  // Callbacks that only look at the error fit every method.
  locks.tryAcquire('x', (err) => void err)
  locks.tryAcquire('x', { ttl: 100 }, (err: Error | null) => void err)
  locks.inspect('x', (err) => void err)
  locks.using(
    'x',
    () => 1,
    (err) => void err,
  )
  locks.using(
    'x',
    { ttl: 100 },
    () => 1,
    (err) => void err,
  )

  // @ts-expect-error the callback form returns void, not a promise
  void locks.acquire('x', () => {}).then
  // @ts-expect-error without checking err first, lock may be undefined
  locks.acquire('x', (_err, lock) => void lock.fence)
  // @ts-expect-error the value is undefined on error, so it cannot be typed as always present
  locks.acquire('x', (err: Error | null, lock: Lock) => void [err, lock])
  // @ts-expect-error a callback with a third required parameter
  locks.acquire('x', (err: Error | null, lock: Lock | undefined, extra: number) => void [err, lock, extra])
  // @ts-expect-error the value is a Lock, not a string
  locks.acquire('x', (err: Error | null, lock?: string) => void [err, lock])
  // @ts-expect-error the error comes first and is an Error or null
  locks.acquire('x', (err: string) => void err)
  // @ts-expect-error tryAcquire passes Lock | null
  locks.tryAcquire('x', (err: Error | null, lock?: Lock) => void [err, lock])
  // @ts-expect-error options and callback in the wrong order
  locks.acquire('x', () => {}, { ttl: 1 })
}

// ---- using ----------------------------------------------------------------------------------------

async function using(locks: Client): Promise<void> {
  const n = await locks.using('report-job', async (signal, lock) => {
    expectType<AbortSignal>(signal)
    expectType<Lock>(lock)
    if (signal.aborted) throw signal.reason
    return lock.fence > 0n ? 42 : 0
  })
  expectType<number>(n)
  const s: string = await locks.using('x', { ttl: 5_000, wait: 1_000 }, () => 'sync result')
  const v: void = await locks.using('x', undefined, async () => {})
  const r1 = locks.using(
    'x',
    { autoExtend: true },
    async () => ({ rows: 3 }),
    (err, result) => {
      if (!err) expectType<number>(result.rows)
    },
  )
  const r2 = locks.using(
    'x',
    (signal) => signal.aborted,
    (err, aborted) => void (err ?? expectType<boolean>(aborted)),
  )
  expectType<void>(r1)
  expectType<void>(r2)

  // @ts-expect-error the first parameter of fn is an AbortSignal
  await locks.using('x', async (signal: string) => signal)
  // @ts-expect-error the second parameter of fn is the Lock
  await locks.using('x', async (_signal: AbortSignal, lock: string) => lock)
  // @ts-expect-error the result has fn's type
  const wrong: string = await locks.using('x', async () => 1)
  // @ts-expect-error fn is required
  await locks.using('x', { ttl: 1_000 })
  // @ts-expect-error options come before fn
  await locks.using('x', async () => 1, { ttl: 1_000 })
  // @ts-expect-error the callback receives fn's result type
  locks.using(
    'x',
    async () => 1,
    (err: Error | null, value?: string) => void [err, value],
  )

  void [s, v, wrong]
}

// ---- inspect, close --------------------------------------------------------------------------------

async function inspectAndClose(locks: Client): Promise<void> {
  const info = await locks.inspect('report-job')
  // @ts-expect-error inspect resolves null when nobody holds the lock
  void info.owner
  if (info !== null) {
    const full: LockInfo = info
    expectType<string>(info.owner)
    expectType<bigint>(info.fence)
    expectType<number | null>(info.remainingTtl)
    expectType<string | Buffer | null>(info.data)
    const left: number = info.remainingTtl ?? Infinity
    // @ts-expect-error remainingTtl may be null
    const unchecked: number = info.remainingTtl
    // @ts-expect-error the fence is a bigint
    const asNumber: number = info.fence
    void [full, left, unchecked, asNumber]
  }
  locks.inspect('report-job', (err, found) => {
    if (err) return
    expectType<LockInfo | null>(found)
  })

  expectType<Promise<void>>(locks.close())
  await locks.close()
  locks.close((err) => void err)
  locks.close(() => {})
  // @ts-expect-error close takes no options
  await locks.close({ force: true })
}

// ---- Lock ------------------------------------------------------------------------------------------

async function lockApi(locks: Client): Promise<void> {
  const lock = await locks.acquire('report-job', { ttl: 10_000 })
  expectType<string>(lock.name)
  expectType<string>(lock.token)
  expectType<string>(lock.owner)
  expectType<bigint>(lock.fence)
  expectType<boolean>(lock.lost)
  expectType<number>(lock.expiresAt)
  expectType<AbortSignal>(lock.signal)
  const fence: bigint = lock.fence
  const asString: string = String(lock.fence)
  const emitter: EventEmitter = lock
  // Node's own helpers take a Lock as the EventEmitter it is at run time.
  const releasedOnce: Promise<unknown[]> = once(lock, 'released')
  void releasedOnce

  // @ts-expect-error the fence is a bigint, not a number
  const asNumber: number = lock.fence
  // @ts-expect-error the fence is read-only
  lock.fence = 1n
  // @ts-expect-error lost is read-only
  lock.lost = true
  // @ts-expect-error the signal is read-only
  lock.signal = new AbortController().signal

  const extended: boolean = await lock.extend(5_000)
  lock.extend(5_000, (err, ok) => void (err ?? expectType<boolean>(ok)))
  const released: boolean = await lock.release()
  lock.release((err) => void err)
  expectType<Promise<void>>(lock[Symbol.asyncDispose]())
  // @ts-expect-error extend takes a ttl in ms
  await lock.extend('5s')
  // @ts-expect-error extend needs the new ttl
  await lock.extend()
  // @ts-expect-error release takes no ttl
  await lock.release(1_000)

  void [fence, asString, emitter, asNumber, extended, released]
}

async function awaitUsing(locks: Client): Promise<bigint> {
  await using lock = await locks.acquire('report-job')
  return lock.fence
}

// ---- Lock events -----------------------------------------------------------------------------------

function events(lock: Lock): void {
  const chained: Lock = lock
    .on('acquired', () => {})
    .on('refreshed', ({ ttl }) => expectType<number>(ttl))
    .on('expiring', (info) => expectType<number>(info.remaining))
    .on('lost', (err) => {
      expectType<LockLostError>(err)
      expectType<'ERR_LOCK_LOST'>(err.code)
    })
    .on('released', () => {})
    .on('error', (err) => expectType<'ERR_BACKEND_UNAVAILABLE'>(err.code))
  lock.once('lost', (err: LockLostError) => void err)
  lock.once('released', () => {})
  const onRefreshed = (info: { ttl: number }): void => void info
  lock.addListener('refreshed', onRefreshed)
  lock.prependListener('refreshed', onRefreshed)
  lock.prependOnceListener('expiring', (info) => void info.remaining)
  lock.off('refreshed', onRefreshed)
  lock.removeListener('refreshed', onRefreshed)
  const listener: (...args: LockEvents['lost']) => void = (err) => void err.message
  lock.on('lost', listener)
  // Other events keep EventEmitter's untyped signature.
  lock.on('newListener', (event: string | symbol) => void event)
  lock.on(Symbol('custom'), () => {})
  const dynamicName: string = 'anything'
  lock.on(dynamicName, (...args: unknown[]) => void args)
  const emitted: boolean = lock.emit('refreshed', { ttl: 1_000 })
  lock.emit('acquired')
  lock.emit('lost', new LockLostError('gone'))
  lock.emit('custom-event', 1, 2, 3)

  // @ts-expect-error 'refreshed' passes { ttl }, not { remaining }
  lock.on('refreshed', (info: { remaining: number }) => void info)
  // @ts-expect-error 'lost' passes a LockLostError, not a string
  lock.on('lost', (reason: string) => void reason)
  // @ts-expect-error 'error' passes a BackendUnavailableError, not a LockLostError
  lock.on('error', (err: LockLostError) => void err)
  // @ts-expect-error 'acquired' passes nothing
  lock.once('acquired', (when: number) => void when)
  // @ts-expect-error the payload of 'expiring' is an object
  lock.on('expiring', (remaining: number) => void remaining)
  // @ts-expect-error emit checks the payload too
  lock.emit('refreshed', { ttl: '1s' })
  // @ts-expect-error 'released' has no payload
  lock.emit('released', true)
  // @ts-expect-error 'lost' needs its error
  lock.emit('lost')

  void [chained, emitted]
}

// ---- errors --------------------------------------------------------------------------------------

type KnownError =
  | LockNotAcquiredError
  | LockLostError
  | InvalidArgumentError
  | BackendUnavailableError
  | ClientClosedError
  | AbortedError

async function errors(locks: Client): Promise<void> {
  try {
    await locks.acquire('report-job', { wait: 1_000 })
  } catch (err) {
    if (err instanceof LockNotAcquiredError) {
      expectType<'ERR_LOCK_NOT_ACQUIRED'>(err.code)
      expectType<string>(err.message)
      expectType<unknown>(err.cause)
    } else if (err instanceof LockError) {
      expectType<ErrorCode>(err.code)
      expectType<Error>(err)
      switch (err.code) {
        case 'ERR_LOCK_LOST':
          expectType<ErrorCode>(err.code)
          break
        // @ts-expect-error a misspelt code is not an ErrorCode, so the case does not compile
        case 'ERR_LOK_LOST':
          break
      }
      // @ts-expect-error the same for a comparison
      if (err.code === 'ERR_LOCK_NOT_AQUIRED') return
    }
  }

  const e = new AbortedError('acquiring "x" was aborted') as KnownError
  switch (e.code) {
    case 'ERR_LOCK_LOST':
      expectType<LockLostError>(e)
      break
    case 'ERR_ABORTED':
      expectType<AbortedError>(e)
      break
    default:
      expectType<Exclude<KnownError['code'], 'ERR_LOCK_LOST' | 'ERR_ABORTED'>>(e.code)
  }

  const codes: ErrorCode[] = [
    new LockNotAcquiredError().code,
    new LockLostError('lost').code,
    new InvalidArgumentError('bad', { cause: new Error('why') }).code,
    new BackendUnavailableError('down').code,
    new ClientClosedError('closed').code,
    new AbortedError('aborted').code,
    'ERR_LOCK_RELEASED',
  ]
  const base = new LockError('custom', 'ERR_BACKEND_UNAVAILABLE', { cause: 'a reason' })
  const isError: Error = base
  // @ts-expect-error a LockError's code is one of the ErrorCode strings
  new LockError('custom', 'ERR_CUSTOM')

  // @ts-expect-error each subclass has its own literal code
  const wrongCode: 'ERR_LOCK_LOST' = new AbortedError('aborted').code
  // @ts-expect-error not an ErrorCode
  const unknownCode: ErrorCode = 'ERR_NOPE'
  // @ts-expect-error LockError needs its code
  new LockError('message only')
  // @ts-expect-error the code is read-only
  base.code = 'ERR_OTHER'

  void [codes, isError, wrongCode, unknownCode]
}

// ---- the namespace (what `require('ferrolock')` returns) --------------------------------------

function namespace(): void {
  const locks: Client = ferrolock.createClient({ memory: true })
  const classes = [
    ferrolock.Client,
    ferrolock.Lock,
    ferrolock.LockError,
    ferrolock.LockNotAcquiredError,
    ferrolock.LockLostError,
    ferrolock.InvalidArgumentError,
    ferrolock.BackendUnavailableError,
    ferrolock.ClientClosedError,
    ferrolock.AbortedError,
  ]
  // @ts-expect-error nor anything else index.js does not export
  void ferrolock.NativeClient

  void [locks, classes]
}

export const checks = [
  clients,
  client,
  acquireWithPromises,
  acquireWithCallbacks,
  using,
  inspectAndClose,
  lockApi,
  awaitUsing,
  events,
  errors,
  namespace,
]

// TLS options: true, or a private CA.
createClient({ redis: { url: 'rediss://127.0.0.1:6380', tls: true } })
createClient({ redis: { url: 'rediss://127.0.0.1:6380', tls: { ca: Buffer.from('pem') } } })
// @ts-expect-error -- the CA is PEM text or a Buffer, not a path list
createClient({ redis: { tls: { ca: ['a.pem'] } } })

// DynamoDB: client options, DynamoDB-only acquire options, records, tables, data as Buffer.
async function dynamodb() {
  const locks = createClient({
    dynamodb: {
      table: 'locks',
      region: 'eu-west-1',
      endpoint: 'http://127.0.0.1:8000',
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
      partitionKey: 'key',
      sortKey: { name: 'sk', value: 'lock' },
      ownerName: 'box-1',
      leaseDuration: 20_000,
      heartbeatPeriod: 0,
      ttlAttribute: 'expiresAt',
      requestTimeout: 3000,
    },
  })
  createClient({ dynamodb: { table: 'locks' }, logger: console })
  createClient({ file: '/var/lib/app/locks' })
  createClient({ file: { dir: './locks', mode: 0o750, fsync: true }, logger: console, maxDataBytes: 1024 })
  // @ts-expect-error the file backend has no keyPrefix (use another directory)
  createClient({ file: './locks', keyPrefix: 'x' })
  // @ts-expect-error one backend at a time
  createClient({ file: './locks', redis: 'redis://localhost' })
  // @ts-expect-error the directory is required
  createClient({ file: { mode: 0o700 } })
  // @ts-expect-error -- the table is required
  createClient({ dynamodb: { region: 'eu-west-1' } })
  // @ts-expect-error -- keyPrefix does not apply to DynamoDB
  createClient({ dynamodb: { table: 'locks' }, keyPrefix: 'x:' })
  // @ts-expect-error -- one backend at a time
  createClient({ dynamodb: { table: 'locks' }, redis: 'redis://127.0.0.1' })
  // @ts-expect-error -- credentials need both parts
  createClient({ dynamodb: { table: 'locks', credentials: { accessKeyId: 'a' } } })

  const lock = await locks.acquire('job', {
    data: Buffer.from([1, 2]),
    replaceData: true,
    deleteOnRelease: false,
    additionalAttributes: { job: { id: 7 }, tags: ['a'], done: null },
    additionalTimeToWait: 5000,
    safeTime: 2000,
  })
  // @ts-expect-error -- attributes are JSON values
  void locks.acquire('job', { additionalAttributes: { at: new Date() } })
  const beat: Promise<boolean> = lock.sendHeartbeat({ data: 'step 2' })
  lock.sendHeartbeat((err, ok) => void (err ? err.message : ok))
  const released: Promise<boolean> = lock.release({ data: Buffer.from('done') })
  lock.release(undefined, (err, ok) => void (err ? err.message : ok))
  const rec = await locks.get('job')
  if (rec) {
    expectType<bigint>(rec.fence)
    expectType<string | Buffer | null>(rec.data)
    expectType<boolean>(rec.released && rec.expired)
    expectType<number>(rec.leaseDuration)
  }
  const info = await locks.inspect('job')
  expectType<string | Buffer | null | undefined>(info?.data)
  const made: { table: string; created: boolean } = await locks.createLockTable({
    readCapacity: 5,
    writeCapacity: 5,
    tags: { team: 'a' },
    ttl: true,
  })
  const gone: { table: string; deleted: boolean } = await locks.deleteLockTable()
  locks.createLockTable((err, r) => void (err ? err.message : r.created))
  const backend: Backend = 'dynamodb'
  const code: ErrorCode = 'ERR_TABLE_NOT_FOUND'
  const err = new TableNotFoundError('no table')
  expectType<'ERR_TABLE_NOT_FOUND'>(err.code)
  expectType<LockError>(err)
  void [beat, released, made, gone, backend, code]
}
void dynamodb
// Redis Cluster: node URLs, with the connection settings shared by every node.
createClient({ redis: { cluster: ['redis://10.0.0.1:7000', 'redis://10.0.0.2:7000'], password: 'p' } })
// @ts-expect-error -- the cluster is a list of URLs
createClient({ redis: { cluster: 'redis://10.0.0.1:7000' } })

// Redlock: masters as URLs or single-server options, plus the quorum settings.
const redlockOptions: RedlockClientOptions = {
  redlock: ['redis://a:6379', { host: 'b', port: 6379, password: 'p' }, 'redis://c:6379'],
  driftFactor: 0.01,
  clockDriftMs: 2,
  requestTimeout: 250,
  retryCount: 10,
  retryDelay: 200,
  retryJitter: 200,
  keyPrefix: 'locks:',
  restartQuarantine: 60_000,
}
createClient(redlockOptions)
createClient({ redlock: ['redis://a', 'redis://b'], restartQuarantine: false })
// @ts-expect-error -- the quarantine is turned off with false, not true
createClient({ redlock: ['redis://a', 'redis://b'], restartQuarantine: true })
// @ts-expect-error -- a Redlock master is one server, not a cluster
createClient({ redlock: [{ cluster: ['redis://a:7000'] }, 'redis://b'] })
// @ts-expect-error -- one backend only: redis and redlock together
createClient({ redis: 'redis://a', redlock: ['redis://a', 'redis://b'] })
// @ts-expect-error -- driftFactor is a number
createClient({ redlock: ['redis://a', 'redis://b'], driftFactor: '0.01' })
// @ts-expect-error -- retryCount belongs to the redlock backend
createClient({ redis: 'redis://a', retryCount: 3 })

// Your own client objects (the transport seam).
declare const ioredisLike: { call(command: string, ...args: any[]): Promise<unknown> }
declare const nodeRedis3Like: {
  send_command(command: string, args: any[], cb: (err: Error | null, reply: unknown) => void): boolean
}
declare const nodeRedis4Like: { sendCommand(args: string[]): Promise<unknown> }
createClient({ redis: ioredisLike, keyPrefix: 'app:' })
createClient({ redis: nodeRedis3Like })
createClient({ redis: nodeRedis4Like })
createClient({ redlock: [ioredisLike, nodeRedis4Like, 'redis://c'] })
declare const dynamoV3Like: { send(command: object): Promise<unknown> }
createClient({ dynamodb: { table: 'locks', client: dynamoV3Like } })
// @ts-expect-error -- a client object needs a command method
createClient({ redis: { get: () => null } })
// @ts-expect-error -- not a DynamoDB client
createClient({ dynamodb: { table: 'locks', client: { query: () => null } } })

// The main export is also dist-lock's factory, and createClient takes dynamo-lock's call shape.
import ferrolockMain = require('ferrolock')
declare const nodeRedis3: { send_command(...args: any[]): unknown; hmget(...args: any[]): unknown }
const distLocks = ferrolockMain(nodeRedis3, { ttl: 5000, keyPrefix: 'app:' })
distLocks.acquire('job', 'me', (err, lock) => {
  if (err || !lock) return
  const attempt: number = lock.acquiredOnAttempt
  void attempt
  lock.release()
})
const locker = ferrolockMain.createClient('Locks', { awsConfig: { region: 'eu-west-1' } })
const lockTableName: string = locker.lockTableName
void lockTableName
const memory: Client = ferrolockMain.createClient()
void memory
// @ts-expect-error -- dist-lock's factory needs a Redis client
ferrolockMain({}, {})
