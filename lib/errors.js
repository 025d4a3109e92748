'use strict'
// ferrolock's error classes, and the lifting of the binding's errors into them.

const { clientCause } = require('./transport.js')

class LockError extends Error {
  constructor(message, code, options) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
}
const errorClass = (name, code) =>
  ({
    [name]: class extends LockError {
      constructor(message, options) {
        super(message, code, options)
      }
    },
  })[name]
const LockNotAcquiredError = errorClass('LockNotAcquiredError', 'ERR_LOCK_NOT_ACQUIRED')
const LockLostError = errorClass('LockLostError', 'ERR_LOCK_LOST')
const InvalidArgumentError = errorClass('InvalidArgumentError', 'ERR_INVALID_ARG')
const BackendUnavailableError = errorClass('BackendUnavailableError', 'ERR_BACKEND_UNAVAILABLE')
const ClientClosedError = errorClass('ClientClosedError', 'ERR_CLIENT_CLOSED')
const AbortedError = errorClass('AbortedError', 'ERR_ABORTED')
const TableNotFoundError = errorClass('TableNotFoundError', 'ERR_TABLE_NOT_FOUND')
const BY_CODE = {
  ERR_TABLE_NOT_FOUND: TableNotFoundError,
  ERR_LOCK_NOT_ACQUIRED: LockNotAcquiredError,
  ERR_LOCK_LOST: LockLostError,
  ERR_INVALID_ARG: InvalidArgumentError,
  ERR_BACKEND_UNAVAILABLE: BackendUnavailableError,
  ERR_CLIENT_CLOSED: ClientClosedError,
  ERR_ABORTED: AbortedError,
}

// Set on an error whose cause is the caller's own client object's error (the compat entries
// hand that original on, as the old packages did).
const kClientCause = Symbol('ferrolock.clientCause')

// A reason of the binding, `{ code, message, cause, original }`, as a typed error.
function fromReason(reason) {
  const Cls = BY_CODE[reason.code] || LockError
  // An error of the caller's own client object comes back as itself, the cause.
  const original = clientCause(reason.original)
  const cause = original || (reason.cause ? new Error(reason.cause) : undefined)
  const options = cause ? { cause } : undefined
  const message = reason.message
  const err = Cls === LockError ? new LockError(message, reason.code, options) : new Cls(message, options)
  if (original) Object.defineProperty(err, kClientCause, { value: true })
  return err
}

// What the binding throws at once carries its reason as JSON in the message: lift it into a
// typed error. Anything else (already typed, or not ours) is returned as it is.
function lift(err) {
  if (err instanceof LockError) return err
  let parsed
  try {
    parsed = JSON.parse(err && err.message)
  } catch {
    return err
  }
  return parsed && typeof parsed.code === 'string' ? fromReason(parsed) : err
}

module.exports = {
  LockError,
  LockNotAcquiredError,
  LockLostError,
  InvalidArgumentError,
  BackendUnavailableError,
  ClientClosedError,
  AbortedError,
  TableNotFoundError,
  fromReason,
  lift,
  kClientCause,
}
