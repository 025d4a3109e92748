'use strict'
// How native operations settle. A native method starts its work on the addon's I/O thread and
// returns at once; the result comes back through the one completion queue of this thread
// (src/completion.rs), which calls `onReady` once per batch with `[id, kind, value, ...]`: every
// result finished meanwhile is settled in that one turn. Lock events come the same way,
// addressed by the lock's handle.

const { Completions } = require('./native.js')
const { fromReason, lift } = require('./errors.js')
const { MAX_MS } = require('./options/shape.js')

const RESOLVE = 0
const EVENT = 2

const pending = new Map() // operation number -> { resolve, reject }
const listeners = new Map() // lock handle -> the Lock, whose [kEvent](event) takes its events
const kEvent = Symbol('leaseEvent')
const early = new Map() // lock handle -> events that came before the lock was listened to
let nextOp = 0

// The queue's wake-up is weak: it never keeps the process alive by itself. A pending operation,
// or a lock whose heartbeat runs, holds this timer's reference, like a socket with work would.
let holds = 0
const keepAlive = setInterval(() => {}, MAX_MS)
keepAlive.unref()
function hold() {
  if (holds++ === 0) keepAlive.ref()
}
function unhold() {
  if (--holds === 0) keepAlive.unref()
}

let batches = 0 // calls of onReady, for tests of the coalescing

function onReady(batch) {
  batches++
  for (let i = 0; i < batch.length; i += 3) {
    const id = batch[i]
    const value = batch[i + 2]
    if (batch[i + 1] === EVENT) {
      const listener = listeners.get(id)
      if (listener) listener[kEvent](value)
      else early.set(id, [...(early.get(id) || []), value])
      continue
    }
    const op = pending.get(id)
    if (op === undefined) continue
    pending.delete(id)
    unhold()
    if (batch[i + 1] === RESOLVE) op.resolve(value)
    else op.reject(fromReason(value))
  }
}

let completions
/** This thread's completion queue (made on first use). */
function queue() {
  if (!completions) completions = new Completions(onReady)
  return completions
}

/**
 * Runs `start(op)`, a native method given its operation number, and returns the promise it
 * settles. Bad arguments the binding refuses at once reject it with a typed error.
 */
function submit(start) {
  const op = (nextOp = (nextOp % 0xfffffffe) + 1)
  return new Promise((resolve, reject) => {
    try {
      start(op)
    } catch (err) {
      reject(lift(err))
      return
    }
    pending.set(op, { resolve, reject })
    hold()
  })
}

/** Sends the events of the lock `handle` to `listener[kEvent]` (those that came early first). */
function listen(handle, listener) {
  listeners.set(handle, listener)
  hold()
  const before = early.get(handle)
  if (before) {
    early.delete(handle)
    for (const event of before) listener[kEvent](event)
  }
}

/** Stops the events of the lock `handle`. */
function unlisten(handle) {
  if (listeners.delete(handle)) unhold()
  early.delete(handle)
}

/** The promise methods the compat entries use, over a native client. */
function promised(native) {
  return {
    claim: (name, token, owner, ttl) => submit((op) => native.claim(op, name, token, owner, ttl)),
    extendToken: (name, token, ttl) => submit((op) => native.extendToken(op, name, token, ttl)),
    releaseToken: (name, token) => submit((op) => native.releaseToken(op, name, token)),
    raw: (operation, params) => submit((op) => native.raw(op, operation, params)),
  }
}

/** Counters for tests: wake-ups so far, operations and lock listeners in flight. */
const counters = () => ({ batches, pending: pending.size, listeners: listeners.size, early: early.size })

module.exports = { queue, submit, listen, unlisten, promised, counters, kEvent }
