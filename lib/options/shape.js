'use strict'
// The shape of option objects: their keys (unknown ones are refused with a hint) and the types
// of their values. Ranges, and relations between values (refreshInterval < ttl, ...), are
// checked once, in Rust (src/options.rs and the core), with the same option names.

const { InvalidArgumentError } = require('../errors.js')

/** The longest duration in ms: 2^31 - 1 (about 24.8 days), Node's timer limit and the core's. */
const MAX_MS = 2 ** 31 - 1

/** A value as messages show it: strings quoted, bigints with their `n`. */
const show = (v) => {
  if (typeof v === 'string') return JSON.stringify(v)
  if (typeof v === 'bigint') return `${v}n`
  try {
    return String(v)
  } catch {
    // No toString (Object.create(null)) or one that throws: the message must still be made.
    return Object.prototype.toString.call(v)
  }
}

/**
 * Checks a lock name as JS sees it: a string of well-formed Unicode. (Lone surrogates would all
 * become U+FFFD on the way into Rust, so 'a\uD800' and 'a\uDC00' would be one lock.) Its
 * length and emptiness are checked in Rust.
 */
function checkName(name) {
  if (typeof name !== 'string') throw invalid(`name must be a non-empty string (got ${show(name)})`)
  if (!name.isWellFormed()) throw invalid('name must be well-formed Unicode (it holds a lone surrogate)')
}

const invalid = (message) => new InvalidArgumentError(message)

/** An object that is neither null nor an array. */
const isPlainObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v)

// Edit distance between two short strings (insertions, deletions, substitutions).
function distance(a, b) {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    prev = row
  }
  return prev[b.length]
}

// What to say after the unknown key `key`: the allowed key it most likely meant (same letters
// in another case, or one or two typos in a longer word); else, with `list`, the allowed keys.
function hint(key, allowed, list) {
  const lower = key.toLowerCase()
  let near = allowed.find((a) => a.toLowerCase() === lower)
  if (near === undefined && key.length >= 3) {
    let best = Math.min(2, Math.floor(key.length / 3))
    for (const a of allowed) {
      const d = distance(lower, a.toLowerCase())
      if (d <= best) [near, best] = [a, d - 1]
    }
  }
  if (near !== undefined) return ` (did you mean ${show(near)}?)`
  return list ? ` (expected one of ${allowed.join(', ')})` : ''
}

const unknown = (key, allowed, what, list) => invalid(`${what}: unknown option ${show(key)}${hint(key, allowed, list)}`)

/**
 * Throws unless `obj` is an object whose own keys are all in `allowed`; `what` names it. With
 * `list`, a message about an unknown key lists the allowed ones when none is a near miss.
 */
function checkKeys(obj, allowed, what, list = false) {
  if (!isPlainObject(obj)) throw invalid(`${what} must be an object (got ${show(obj)})`)
  for (const key of Object.keys(obj)) if (!allowed.includes(key)) throw unknown(key, allowed, what, list)
}

// The kinds of value an option may hold: a test, and how a message names it.
const KINDS = {
  number: [(v) => typeof v === 'number', 'a number'],
  boolean: [(v) => typeof v === 'boolean', 'a boolean'],
  string: [(v) => typeof v === 'string', 'a string'],
  quarantine: [(v) => v === false || typeof v === 'number', 'false or a number of milliseconds'],
  wait: [(v) => typeof v === 'boolean' || typeof v === 'number', 'a boolean or a number of milliseconds'],
  data: [(v) => typeof v === 'string' || Buffer.isBuffer(v), 'a string or a Buffer'],
  object: [isPlainObject, 'an object'],
  signal: [(v) => v instanceof AbortSignal, 'an AbortSignal'],
  any: [() => true, ''],
}

/**
 * A checker of option objects: `spec` maps each allowed key to the kind of its value (a key of
 * KINDS). The checker throws unless its argument is an object with only those keys, each
 * undefined or of its kind; `what` names the object in messages. `each(key, value)`, when
 * given, is called for every own key whose value is not undefined, once it passed (so a caller
 * reads each option once, in the same pass). `read(obj, key)`, when given, reads a value
 * (where a checker runs on every call, a reader with a load site per key is faster than one
 * `obj[key]` site that sees every key of every kind of options object).
 */
function shape(spec, read) {
  const kinds = new Map(Object.entries(spec).map(([key, kind]) => [key, KINDS[kind]]))
  const allowed = [...kinds.keys()]
  return (obj, what, each) => {
    if (!isPlainObject(obj)) throw invalid(`${what} must be an object (got ${show(obj)})`)
    for (const key of Object.keys(obj)) {
      const kind = kinds.get(key)
      if (kind === undefined) throw unknown(key, allowed, what)
      const value = read === undefined ? obj[key] : read(obj, key)
      if (value === undefined) continue
      if (!kind[0](value)) throw invalid(`${what}.${key} must be ${kind[1]} (got ${show(value)})`)
      if (each !== undefined) each(key, value)
    }
  }
}

module.exports = {
  checkName,
  MAX_MS,
  show,
  invalid,
  isPlainObject,
  checkKeys,
  shape,
}
