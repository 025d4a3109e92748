'use strict'
// Loads the native addon through the generated loader (binding.js). When that fails, the error
// is one line that names the detected platform, the platform package it needs and what to do,
// instead of the loader's generic advice and its chain of nested causes.

const { existsSync } = require('node:fs')
const { join } = require('node:path')

const ROOT = join(__dirname, '..')
const ARCH = { x86_64: 'x64', aarch64: 'arm64', i686: 'ia32', armv7: 'arm' }

// The C library of this Linux process: glibc (with its version) or musl.
function linuxLibc() {
  const report = process.report && typeof process.report.getReport === 'function' ? process.report.getReport() : null
  const glibc = report && report.header && report.header.glibcVersionRuntime
  if (glibc) return { abi: 'gnu', text: `glibc ${glibc}` }
  return { abi: 'musl', text: 'musl' }
}

// napi-rs's name of a platform, as in the package names: linux-x64-gnu, darwin-arm64, win32-x64-msvc.
function detectPlatform() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const libc = linuxLibc()
    return { name: `linux-${arch}-${libc.abi}`, detail: libc.text }
  }
  if (platform === 'win32') return { name: `win32-${arch}-msvc`, detail: null }
  return { name: `${platform}-${arch}`, detail: null }
}

// The platforms a release ships binaries for, from package.json napi.targets (Rust triples).
function supportedPlatforms(pkg) {
  return ((pkg.napi && pkg.napi.targets) || []).map((triple) => {
    const [cpu, , os, env] = triple.split('-')
    const arch = ARCH[cpu] || cpu
    if (os === 'darwin') return `darwin-${arch}`
    if (os === 'windows') return `win32-${arch}-${env}`
    return `${os}-${arch}-${env}`
  })
}

const firstLine = (e) => String((e && e.message) || e).split('\n')[0]

function tryRequire(id) {
  try {
    require(id)
    return null
  } catch (e) {
    return e
  }
}

function isInstalled(name) {
  try {
    require.resolve(`${name}/package.json`, { paths: [ROOT] })
    return true
  } catch {
    return false
  }
}

// What to tell a person about a binary that exists but does not load.
function advice(reason, platform) {
  const glibc = /GLIBC_([\d.]+)' not found/.exec(reason)
  if (glibc) return `it needs glibc ${glibc[1]} or newer; update the system or use a newer base image`
  if (/ELF|wrong|invalid|architecture|not a valid Win32/i.test(reason)) {
    return `it was built for another platform: reinstall ferrolock on this machine (${platform})`
  }
  return 'reinstall ferrolock on this machine (delete node_modules, then npm install)'
}

function explain(loaderError) {
  const pkg = require('../package.json')
  const { name: platform, detail } = detectPlatform()
  const detected = `detected platform ${platform}${detail ? `, ${detail}` : ''}`
  const supported = supportedPlatforms(pkg)
  const packageName = `${pkg.name}-${platform}`

  if (!supported.includes(platform)) {
    return (
      `ferrolock has no native binary for this system (${detected}); binaries are published for ` +
      `${supported.join(', ')}. On another platform, build it from a clone with the Rust toolchain`
    )
  }
  const local = join(ROOT, `${pkg.napi.binaryName}.${platform}.node`)
  const localError = existsSync(local) ? tryRequire(local) : null
  if (localError) {
    const reason = firstLine(localError)
    return `ferrolock could not load ${local} (${detected}): ${reason}; ${advice(reason, platform)}`
  }
  if (!isInstalled(packageName)) {
    const others = supported.filter((p) => p !== platform && isInstalled(`${pkg.name}-${p}`))
    const elsewhere = others.length
      ? ` (node_modules has ${others.map((p) => `${pkg.name}-${p}`).join(', ')}: it was installed for another platform)`
      : ''
    return (
      `ferrolock needs the package ${packageName} for the ${detected}, and it is not installed${elsewhere}. ` +
      `It is an optional dependency: install without --omit=optional or --no-optional, ` +
      `or add it with: npm install ${packageName}@${pkg.version}`
    )
  }
  const packageError = tryRequire(require.resolve(packageName, { paths: [ROOT] }))
  const reason = firstLine(packageError || loaderError)
  return `ferrolock could not load ${packageName} (${detected}): ${reason}; ${advice(reason, platform)}`
}

let binding
try {
  binding = require('../binding.js')
} catch (loaderError) {
  const message = explain(loaderError)
  // The message is the whole story: no stack frames under it, no chain of causes.
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  const err = new Error(message)
  Error.stackTraceLimit = limit
  err.code = 'ERR_NATIVE_BINDING'
  throw err
}

module.exports = binding
