'use strict'
// File backend options: `file: '<dir>'` or `file: { dir, mode, fsync }`. Ranges are Rust's.

const path = require('node:path')
const { show, invalid, isPlainObject, shape } = require('./shape.js')

const checkFile = shape({ dir: 'string', mode: 'number', fsync: 'boolean' })

/** The native options of `options.file`: the directory made absolute (the process may chdir). */
function fileOptions(file) {
  const o = typeof file === 'string' ? { dir: file } : file
  if (!isPlainObject(o)) {
    throw invalid(`options.file must be a directory path or an object { dir, mode, fsync } (got ${show(file)})`)
  }
  checkFile(o, 'options.file')
  if (typeof o.dir !== 'string' || o.dir === '') {
    throw invalid(`options.file.dir must be a non-empty directory path (got ${show(o.dir)})`)
  }
  return { dir: path.resolve(o.dir), mode: o.mode, fsync: o.fsync }
}

module.exports = { fileOptions }
