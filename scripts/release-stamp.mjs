// A digest of everything a release pack is made from: the files of the main package (as
// `npm pack` lists them, package.json included) and the Rust sources of the addon. dist/ is
// current when its manifest carries the digest of the tree as it is now.
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'

const RUST_SOURCES = ['Cargo.toml', 'Cargo.lock', 'build.rs', 'src', 'crates/core/Cargo.toml', 'crates/core/src']

// The files `npm pack` puts in the main package, relative to root.
export function packedFiles(root) {
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`npm pack --dry-run failed: ${r.stderr}`)
  return JSON.parse(r.stdout)[0].files.map((f) => f.path)
}

function walk(root, rel, out) {
  const path = join(root, rel)
  if (!existsSync(path)) return
  if (statSync(path).isDirectory()) {
    for (const f of readdirSync(path).sort()) walk(root, `${rel}/${f}`, out)
  } else out.push(rel)
}

export function sourceStamp(root) {
  const files = [...packedFiles(root)].sort()
  for (const s of RUST_SOURCES) walk(root, s, files)
  const hash = createHash('sha256')
  for (const f of files)
    hash
      .update(`${f}\0`)
      .update(readFileSync(join(root, f)))
      .update('\0')
  return hash.digest('hex')
}
