// A default timeout for every test and hook, so that one hung test fails by its own name within
// 60 s and the rest of its file still runs. scripts/test.mjs preloads this module into each test
// file's process (`node --import <this file> --test ...`: node passes --import on to the process
// of each file). Node's own --test-timeout does not do it: with a process per file, it bounds the
// file as a whole, on Node 20 and 22 alike.
//
//   test() / it():                          60 s × FERROLOCK_TEST_SLACK, unless the test gives its
//                                           own `timeout` (the install tests do)
//   before / after / beforeEach / afterEach: 120 s × FERROLOCK_TEST_SLACK (they start servers)
//   describe() / suite():                   none (their tests and hooks are bounded one by one)
//
// node:test has no setting for a default timeout, so this replaces the exported functions with
// wrappers that add `{ timeout }` and re-exports them (module.syncBuiltinESMExports). node:test
// records where a test was declared (file, line, column: shown with a failure, and the `file` that
// scripts/test-reporter.mjs reports) as the location of whoever called test(). A plain wrapper
// would be that caller, so each wrapper calls node:test through a one-line function compiled with
// the declaring call's own file name, line and column (vm.compileFunction), which node then sees
// as the caller.
import { createRequire, syncBuiltinESMExports } from 'node:module'
import { compileFunction } from 'node:vm'
import { SLACK } from './bounded.mjs'

export const TEST_TIMEOUT_MS = 60_000 * SLACK
export const HOOK_TIMEOUT_MS = 120_000 * SLACK

const require = createRequire(import.meta.url)
const nodeTest = require('node:test')

// The call site of whoever called `fn`: [file name as V8 knows it (a file: URL for ESM), line, column].
function callerOf(fn) {
  const prepare = Error.prepareStackTrace
  try {
    Error.prepareStackTrace = (_, sites) => sites
    const holder = {}
    Error.captureStackTrace(holder, fn)
    const site = holder.stack[0]
    return site && site.getFileName() ? [site.getFileName(), site.getLineNumber(), site.getColumnNumber()] : null
  } finally {
    Error.prepareStackTrace = prepare
  }
}

// One trampoline per call site: `call(f, args)` runs f(...args) from a frame placed at that site
// (the call `f(` on the second line of its body, indented to the site's column).
const trampolines = new Map()
function trampoline(site) {
  if (!site) return (f, a) => f(...a)
  const key = site.join(':')
  let call = trampolines.get(key)
  if (!call) {
    const [filename, line, column] = site
    const body = `return (\n${' '.repeat(Math.max(0, column - 1))}f(...a))`
    call = compileFunction(body, ['f', 'a'], { filename, lineOffset: line - 2 })
    trampolines.set(key, call)
  }
  return call
}

// test(name?, options?, fn?) with `timeout` added to the options unless given.
function withTestTimeout(original) {
  const wrapped = function (...args) {
    const i = typeof args[0] === 'function' || (typeof args[0] === 'object' && args[0] !== null) ? 0 : 1
    if (typeof args[i] === 'object' && args[i] !== null) {
      if (args[i].timeout === undefined) args[i] = { ...args[i], timeout: TEST_TIMEOUT_MS }
    } else args.splice(i, 0, { timeout: TEST_TIMEOUT_MS })
    return trampoline(callerOf(wrapped))(original, args)
  }
  // test.skip, test.todo, test.only: as they are (a skipped test does not run).
  for (const variant of ['skip', 'todo', 'only']) wrapped[variant] = original[variant]
  return wrapped
}

// before(fn, options?) and the other hooks, likewise.
function withHookTimeout(original) {
  const wrapped = function (fn, options) {
    const opts = options?.timeout === undefined ? { ...options, timeout: HOOK_TIMEOUT_MS } : options
    return trampoline(callerOf(wrapped))(original, [fn, opts])
  }
  return wrapped
}

for (const name of ['test', 'it']) nodeTest[name] = withTestTimeout(nodeTest[name])
for (const name of ['before', 'after', 'beforeEach', 'afterEach']) nodeTest[name] = withHookTimeout(nodeTest[name])
syncBuiltinESMExports()
