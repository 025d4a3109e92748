'use strict'
// Promises and Node-style callbacks: every async function of the API returns a promise, or,
// given a callback as its last argument, calls that back once instead and returns undefined.

const { show, isPlainObject } = require('./options/shape.js')

/** Throws at once (a TypeError with code ERR_INVALID_ARG) unless `callback` is a function. */
function checkCallback(callback) {
  if (typeof callback !== 'function') {
    const err = new TypeError(`callback must be a function (got ${show(callback)})`)
    err.code = 'ERR_INVALID_ARG'
    throw err
  }
}

/**
 * Calls `callback(err, value)` once `promise` settles, on a later tick and outside the promise
 * chain, so an exception the callback throws is uncaught rather than lost. `mapError` turns a
 * rejection into what the callback gets.
 */
function deliver(promise, callback, mapError) {
  promise.then(
    (value) => process.nextTick(callback, null, value),
    (err) => process.nextTick(callback, mapError ? mapError(err) : err),
  )
}

/**
 * Runs `task` (an async function): without a callback, returns its promise; with one, delivers
 * the outcome to it and returns undefined. A callback that is not a function throws.
 */
function settle(callback, task) {
  if (callback === undefined) return task()
  checkCallback(callback)
  deliver(task(), callback)
}

/** Splits (a, [b], [callback]) style arguments: a trailing function is the callback. */
function splitCallback(args, arity) {
  if (args.length > arity) return { args: args.slice(0, arity), callback: args[arity] }
  if (args.length > 0 && typeof args[args.length - 1] === 'function') {
    return { args: args.slice(0, -1), callback: args[args.length - 1] }
  }
  return { args, callback: undefined }
}

/**
 * Splits ([options], [callback]): a lone argument that is not an options object is the
 * callback (so a callback that is not a function still throws at once).
 */
function optionsThenCallback(input) {
  if (input.length === 1 && input[0] !== undefined && !isPlainObject(input[0])) {
    return { options: undefined, callback: input[0] }
  }
  return { options: input[0], callback: input[1] }
}

module.exports = { checkCallback, deliver, settle, splitCallback, optionsThenCallback }
