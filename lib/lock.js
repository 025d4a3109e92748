'use strict'
// A held lock as an EventEmitter: 'acquired', then 'refreshed' | 'expiring' | 'error' as its
// heartbeats report, and one of 'lost' | 'released' at the end. Heartbeats and the session
// monitor run in Rust; their events come through the completion queue (lib/ops.js).

const { EventEmitter } = require('node:events')
const { BackendUnavailableError, LockError, LockLostError, lift } = require('./errors.js')
const { settle, optionsThenCallback } = require('./callbacks.js')
const { show, invalid, checkKeys } = require('./options/shape.js')
const { checkData } = require('./options/acquire.js')
const { clientCause } = require('./transport.js')
const { immediateRelease } = require('./native.js')
const ops = require('./ops.js')

const call = (logger, level, obj, msg) => logger && typeof logger[level] === 'function' && logger[level](obj, msg)

// ---- Lock ----------------------------------------------------------------------------------------

const asyncDispose = Symbol.asyncDispose || Symbol.for('nodejs.asyncDispose')
const kClientClosed = Symbol('clientClosed')

// 'acquired' comes first, once the caller had a chance to attach listeners: in one
// setImmediate for every lock made in the same turn.
let toAnnounce = []
let announcing = false // an announceAll is scheduled
// The length at which the list is next pruned: twice what a pruning left, so that many locks
// made in one turn cost a copy of the list now and then, not one per lock.
let pruneAt = 1024
function announceAll() {
  announcing = false
  pruneAt = 1024
  const locks = toAnnounce
  toAnnounce = []
  for (const lock of locks) lock[kAnnounce]()
}
const kAnnounce = Symbol('announce')
let lastOwner = null // the owner name of the last lock made
const kAnnounced = Symbol('announced')
// The bits of Lock#flags.
const OVER = 1
const ANNOUNCED = 2
const RELEASING = 4
const LOST = 8
const LET_GO = 16 // the binding let the lock go (its release settled, or JS forgot it)
const LET_GO_LOST = 32 // ... and it was lost then
const LISTENED = 64 // its events come through the completion queue (lib/ops.js listen)
// Where a null goes while a lock has no object of rarely used fields: nowhere.
const NOWHERE = { controller: null, endReason: null, backlog: null }

class Lock extends EventEmitter {
  #handle // the lock's handle in its client's table of held locks (src/lock.rs)
  // Thousands of locks may be held at once, so a Lock keeps few fields of its own (each one is
  // paid per lock, and past a dozen or so V8 moves them to a second object): the yes/no state in
  // one number, and what few locks need (a signal, an end reason, early events) in one object made
  // on first use. The accessors below read and write them under their own names:
  //   over; announced; releasing (a release() is in flight: its outcome, not a 'lost' event, ends
  //   the lock); lost (`lost`, `signal.aborted` and the 'lost' event change together, in #finish);
  //   controller (made on first use of `signal`); endReason (the abort reason once the lock is
  //   over: once lost; made on demand once released); backlog (events that came before
  //   'acquired' was emitted).
  #flags = 0
  #extra = null
  #shared // what every lock of the client shares: { native, immediate, logger, onOver, capabilities }

  /**
   * Made by the client for the lock its binding keeps under `handle`: a lock of `name` taken
   * under `token` for `owner` with `fence`; `events`: it reports events of its own. `shared` is
   * one object per client: `{ native, immediate, logger, onOver, capabilities }` (`native`: the
   * binding's client; `immediate`: its number for the immediate calls, 0 where its store has
   * none); `onOver(lock)` is called once when the lock ends. Thousands of locks may be held at
   * once: each field here is paid per lock.
   */
  constructor(handle, name, token, owner, fence, events, shared) {
    super()
    // EventEmitter starts every emitter with an empty listener table (a dictionary object of
    // about 190 bytes); most held locks never get a listener. Undefined is its documented empty
    // state: the first listener makes the table.
    this._events = undefined
    this.#handle = handle
    this.#shared = shared
    this.name = name
    this.token = token
    // Most locks of a process share one owner name: keep one copy of it.
    if (owner !== lastOwner) lastOwner = owner
    this.owner = lastOwner
    this.fence = fence
    // Only heartbeats (and the session monitor of `safeTime`) produce events on their own;
    // they come through the completion queue, and keep the process alive while the lock is held.
    if (events) {
      this.#flags = LISTENED
      ops.listen(handle, this)
    }
    if (!announcing) {
      announcing = true
      setImmediate(announceAll)
    } else if (toAnnounce.length >= pruneAt) {
      // A loop that never yields to the event loop keeps adding: drop the locks that ended
      // (and so announced) already, so they are not kept until the next turn.
      toAnnounce = toAnnounce.filter((lock) => !lock[kAnnounced])
      pruneAt = Math.max(1024, 2 * toAnnounce.length)
    }
    toAnnounce.push(this)
  }

  get #over() {
    return (this.#flags & OVER) !== 0
  }
  set #over(on) {
    this.#flags = on ? this.#flags | OVER : this.#flags & ~OVER
  }
  get #announced() {
    return (this.#flags & ANNOUNCED) !== 0
  }
  set #announced(on) {
    this.#flags = on ? this.#flags | ANNOUNCED : this.#flags & ~ANNOUNCED
  }
  get #releasing() {
    return (this.#flags & RELEASING) !== 0
  }
  set #releasing(on) {
    this.#flags = on ? this.#flags | RELEASING : this.#flags & ~RELEASING
  }
  get #lost() {
    return (this.#flags & LOST) !== 0
  }
  set #lost(on) {
    this.#flags = on ? this.#flags | LOST : this.#flags & ~LOST
  }
  get #controller() {
    return this.#extra === null ? null : this.#extra.controller
  }
  set #controller(value) {
    this.#more(value).controller = value
  }
  get #endReason() {
    return this.#extra === null ? null : this.#extra.endReason
  }
  set #endReason(value) {
    this.#more(value).endReason = value
  }
  get #backlog() {
    return this.#extra === null ? null : this.#extra.backlog
  }
  set #backlog(value) {
    this.#more(value).backlog = value
  }
  // The object of rarely used fields, made when a value other than null is first stored.
  #more(value) {
    if (this.#extra === null && value !== null) this.#extra = { controller: null, endReason: null, backlog: null }
    return this.#extra || NOWHERE
  }

  get [kAnnounced]() {
    return this.#announced
  }

  [kAnnounce]() {
    if (this.#announced) return
    this.#announced = true
    this.emit('acquired')
    const backlog = this.#backlog
    this.#backlog = null
    if (!backlog) return
    for (const ev of backlog) {
      if (ev.kind === 'report') ev.report()
      else this.#onEvent(ev)
    }
  }

  /**
   * True once the lock was lost (expired, deleted, taken over, or its release not confirmed);
   * it turns true together with `signal.aborted`, just before the 'lost' event.
   */
  get lost() {
    return this.#lost
  }
  /** Epoch ms when the lease ends as this process counts it (now, once the lock is over). */
  get expiresAt() {
    return Date.now() + (this.#flags & LET_GO ? 0 : this.#shared.native.lockValidFor(this.#handle))
  }
  /** Aborted when the lock is lost or released. */
  get signal() {
    if (!this.#controller) {
      this.#controller = new AbortController()
      if (this.#over) this.#controller.abort(this.#reason())
    }
    return this.#controller.signal
  }

  // An event of this lock from the completion queue (lib/ops.js).
  [ops.kEvent](ev) {
    this.#onEvent(ev)
  }

  #onEvent(ev) {
    // The core reports a release it could not confirm as 'lost' just before release() rejects;
    // release() ends the lock itself then, keeping it in the binding for a second try.
    if (this.#releasing && ev.kind === 'lost') return
    if (!this.#announced) {
      // A lock lost before its first turn (acquire() resolved after its lease ran out) is over
      // at once for `lost` and `signal`; the events follow 'acquired' on that turn.
      if (ev.kind === 'lost') this.#finish('lost', ev.reason, true)
      else (this.#backlog || (this.#backlog = [])).push(ev)
      return
    }
    // release() may have ended the lock already: nothing is reported after that.
    if (this.#over) return
    try {
      this.#deliver(ev)
    } catch (err) {
      // A listener threw: surface it like any listener error, but keep the heartbeat going.
      process.nextTick(() => {
        throw err
      })
    }
  }

  // `ev`: `{ kind, ... }` from the binding, or a number: 'refreshed' with that ttl (the event of
  // every heartbeat, sent without an object).
  #deliver(ev) {
    if (typeof ev === 'number') {
      if (this.listenerCount('refreshed') > 0) this.emit('refreshed', { ttl: ev })
      return
    }
    switch (ev.kind) {
      case 'expiring':
        call(this.#shared.logger, 'warn', { lock: this.name, remaining: ev.remaining }, 'ferrolock: lease expiring')
        this.emit('expiring', { remaining: ev.remaining })
        break
      case 'error': {
        const original = clientCause(ev.original)
        const err = new BackendUnavailableError(
          `heartbeat of lock "${this.name}" failed: ${ev.message}`,
          original ? { cause: original } : undefined,
        )
        call(this.#shared.logger, 'error', { lock: this.name, err }, 'ferrolock: heartbeat failed')
        // Recoverable: only reported to those who listen, never crashes the process.
        if (this.listenerCount('error') > 0) this.emit('error', err)
        break
      }
      case 'lost':
        this.#finish('lost', ev.reason)
        break
    }
  }

  // Called by Client#close after the native side released everything.
  [kClientClosed]() {
    // Lost: its release on close was not confirmed by the server (or it was already gone).
    if (this.#lost || this.#nativeLost()) {
      this.#finish('lost', 'its release was not confirmed when the client closed; the key expires by its lease')
    } else this.#finish('released')
  }

  // Ends the lock once: aborts the signal and emits 'lost' or 'released' ('acquired' first, if
  // the lock ends before its turn came; with `later`, on that turn). `keep`: the binding keeps
  // the lock, so a later release() can try the delete again.
  #finish(kind, reason, later = false, keep = false) {
    if (this.#over) return
    this.#over = true
    if (this.#flags & LISTENED) ops.unlisten(this.#handle)
    if (!keep) this.#forget(kind === 'lost')
    this.#shared.onOver(this)
    if (kind === 'lost') {
      const err = new LockLostError(`lock "${this.name}" was lost: ${reason}`)
      this.#lost = true
      this.#endReason = err
      if (this.#controller) this.#controller.abort(err)
      const report = () => {
        call(this.#shared.logger, 'warn', { lock: this.name, fence: String(this.fence) }, err.message)
        this.emit('lost', err)
      }
      if (later && !this.#announced) (this.#backlog || (this.#backlog = [])).push({ kind: 'report', report })
      else {
        this[kAnnounce]()
        report()
      }
    } else {
      this[kAnnounce]()
      if (toAnnounce[toAnnounce.length - 1] === this) toAnnounce.pop()
      if (this.#controller) this.#controller.abort(this.#reason())
      this.emit('released')
    }
  }

  // Why the signal is aborted. An Error costs a stack trace: a released lock makes its reason
  // only when `signal` is asked for.
  #reason() {
    if (this.#endReason === null) {
      this.#endReason = new LockError(`lock "${this.name}" was released`, 'ERR_LOCK_RELEASED')
    }
    return this.#endReason
  }

  /** Sets the lease to `ttl` ms from now. Resolves false (and emits 'lost') if it is no longer ours. */
  extend(ttl, callback) {
    return settle(callback, async () => {
      if (typeof ttl !== 'number') throw invalid(`ttl must be a number (got ${show(ttl)})`)
      return this.#renewed(await ops.submit((op) => this.#shared.native.lockExtend(op, this.#handle, ttl, undefined)))
    })
  }

  /**
   * Renews the lease for its current ttl now (a manual heartbeat, e.g. with `heartbeatPeriod: 0`).
   * `{ data }` also replaces the stored data (DynamoDB). Resolves false (and emits 'lost') if it is no longer ours.
   */
  sendHeartbeat(...input) {
    const { options, callback } = optionsThenCallback(input)
    return settle(callback, async () => {
      const { data } = this.#dataOption(options, 'sendHeartbeat')
      return this.#renewed(await ops.submit((op) => this.#shared.native.lockExtend(op, this.#handle, undefined, data)))
    })
  }

  #renewed(ok) {
    if (!ok) this.#finish('lost', 'the lock was deleted or taken by another owner')
    return ok
  }

  // `{ data }` of sendHeartbeat and release (and `{ delete }` of release).
  #dataOption(options, method) {
    const o = options === undefined ? {} : options
    checkKeys(o, method === 'release' ? ['data', 'delete'] : ['data'], `${method} options`)
    checkData(o.data, `${method} options.data`, this.#shared.capabilities)
    if (o.delete !== undefined && typeof o.delete !== 'boolean')
      throw invalid('release options.delete must be a boolean')
    if ((o.data !== undefined || o.delete !== undefined) && !this.#shared.capabilities.dynamoOptions) {
      throw invalid(`${method} options are only supported by the dynamodb backend`)
    }
    return o
  }

  /**
   * Releases the lock if it is still ours: true, or false when it was already gone. DynamoDB:
   * `{ data }` leaves data in the released record; `{ delete }` overrides `deleteOnRelease`.
   */
  release(options, callback) {
    // The common call, release(): nothing to check. Where the store can (memory, file), the
    // lock is released inside this call and the promise returned is already settled.
    if (options === undefined && callback === undefined) {
      try {
        const ok = this.#releaseNow()
        if (ok !== undefined) return Promise.resolve(this.#released(ok))
      } catch (err) {
        return Promise.reject(lift(err))
      }
      return this.#releaseLater(undefined, undefined)
    }
    const input = optionsThenCallback([...arguments])
    return settle(input.callback, async () => {
      const { data, delete: del } = this.#dataOption(input.options, 'release')
      const ok = data === undefined && del === undefined ? this.#releaseNow() : undefined
      return ok === undefined ? this.#releaseLater(data, del) : this.#released(ok)
    })
  }

  // A release through the I/O thread.
  async #releaseLater(data, del) {
    let ok
    this.#releasing = true
    try {
      ok = await ops.submit((op) => this.#shared.native.lockRelease(op, this.#handle, data, del))
    } catch (err) {
      if (err.code === 'ERR_INVALID_ARG') throw err // refused before any I/O: still held
      // Not confirmed: the lock is over for its holder all the same (its key expires by its
      // lease); the binding keeps it so that another release() can try the delete again.
      this.#finish('lost', 'its release was not confirmed by the server; the key expires by its lease', false, true)
      throw err
    } finally {
      this.#releasing = false
    }
    this.#letGo(ok)
    return this.#released(ok)
  }

  // The binding's side of the lock: whether it was lost, as the binding knows (as it was, once
  // the binding let it go).
  #nativeLost() {
    if (this.#flags & LET_GO) return (this.#flags & LET_GO_LOST) !== 0
    return this.#shared.native.lockLost(this.#handle)
  }

  // A release done at once where the store allows it (memory, file): true or false, and the
  // binding let the lock go; undefined where it needs I/O.
  #releaseNow() {
    if (this.#shared.immediate === 0) return undefined
    const ok = immediateRelease(this.#shared.immediate, this.#handle)
    if (ok === null || ok === undefined) return undefined
    this.#letGo(ok)
    return ok
  }

  // A release settled with `ok`: the binding let the lock go already.
  #letGo(ok) {
    this.#flags |= ok ? LET_GO : LET_GO | LET_GO_LOST
  }

  // The lock is over for JS (`lost`: it was lost): the binding lets it go.
  #forget(lost) {
    if (this.#flags & LET_GO) return
    const wasLost = lost || this.#shared.native.lockLost(this.#handle)
    this.#flags |= wasLost ? LET_GO | LET_GO_LOST : LET_GO
    this.#shared.native.lockForget(this.#handle)
  }

  // The release settled with `ok`: the lock ends, released or (already gone) lost.
  #released(ok) {
    if (ok) this.#finish('released')
    else this.#finish('lost', 'the lock was already gone when it was released')
    return ok
  }

  async [asyncDispose]() {
    await this.release()
  }
}

module.exports = { Lock, kClientClosed }
