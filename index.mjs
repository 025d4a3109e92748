// ESM entry: the same objects as the CommonJS entry.
import ferrolock from './index.js'

export const {
  createClient,
  Client,
  Lock,
  LockError,
  LockNotAcquiredError,
  LockLostError,
  InvalidArgumentError,
  BackendUnavailableError,
  ClientClosedError,
  AbortedError,
  TableNotFoundError,
} = ferrolock
export default ferrolock
