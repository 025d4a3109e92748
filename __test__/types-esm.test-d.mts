// Type tests of the ESM typings (index.d.mts, compat/leverege.d.mts, and the CommonJS entries as
// an ES module sees them): never executed, only checked by `tsc`. The package imports itself by
// name, through package.json "exports" (the "import" condition), as an ESM user's code would.

import ferrolock, {
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
  type AcquireOptions,
  type Callback,
  type ErrorCode,
} from 'ferrolock'
import distLock from 'ferrolock/dist-lock'
import { createClient as dynamoCreateClient } from 'ferrolock/dynamo-lock'
import ExclusiveLock from 'ferrolock/exclusive-lock'
import schemas from 'ferrolock/exclusive-lock/schemas'
import LeveregeLock, { LockError as LeveregeLockError, LockHandle, type CreateOptions } from 'ferrolock/leverege'

/** Checks that a value is assignable to `T`, and uses it. */
declare function expectType<T>(value: T): void

// The default export is the whole CommonJS module.exports: dist-lock's factory carrying the API.
expectType<typeof createClient>(ferrolock.createClient)
expectType<typeof LockError>(ferrolock.LockError)
const viaFactory = ferrolock({ send_command() {}, hmget() {} })
viaFactory.acquire('x', (err, lock) => void (err ?? lock))

const locks: Client = createClient({ memory: true })
const fromUrl: Client = createClient('redis://127.0.0.1:6379')
const options: AcquireOptions = { ttl: 1_000, wait: false }
const done: Callback<boolean> = (err, value) => void (err ?? expectType<boolean>(value))

async function errors(): Promise<void> {
  try {
    const lock: Lock = await locks.acquire('x', options)
    await lock.release(done)
  } catch (err) {
    if (err instanceof LockError) {
      const code: ErrorCode = err.code
      // @ts-expect-error a misspelt code does not compile
      if (err.code === 'ERR_LOK_LOST') return
      void code
    }
  }
  const all = [
    AbortedError,
    BackendUnavailableError,
    ClientClosedError,
    InvalidArgumentError,
    LockLostError,
    LockNotAcquiredError,
    TableNotFoundError,
    Client,
  ]
  void all
}

// The drop-in entries.
expectType<Function>(distLock)
expectType<Function>(dynamoCreateClient)
expectType<Function>(ExclusiveLock)
expectType<string[]>(schemas.instantiation_options.required)

async function leverege(): Promise<void> {
  const settings: CreateOptions = { type: 'inMemory', retry: 0 }
  const lock = LeveregeLock.create(settings)
  try {
    const handle: LockHandle = await lock.lock('key', 1_000)
    await handle.unlock()
  } catch (err) {
    if (err instanceof LeveregeLockError) expectType<number | undefined>(err.attempts)
  }
  expectType<typeof LeveregeLock.LockError>(LeveregeLockError)
  await lock.destroy()
}

void [fromUrl, errors, leverege]
