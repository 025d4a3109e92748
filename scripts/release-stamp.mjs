// Digests of what a release pack is made from: `js`, the files of the main package (as `npm pack`
// lists them, package.json included), and `rust`, the sources of the addon. dist/ is current when
// its manifest carries the digests of the tree as it is now; when only `js` differs, the addons
// already built can be packed again without a new build.
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'

const RUST_SOURCES = ['Cargo.toml', 'Cargo.lock', 'build.rs', 'src', 'crates/core/Cargo.toml', 'crates/core/src']

// The files `npm pack` puts in the main package, relative to root.
export function packedFiles(root) {
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: root,
    encoding: 'utf8',
    shell: process.platform === 'win32', // npm.cmd
  })
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

function digest(root, files) {
  const hash = createHash('sha256')
  for (const f of files)
    hash
      .update(`${f}\0`)
      .update(readFileSync(join(root, f)))
      .update('\0')
  return hash.digest('hex')
}

export function sourceStamps(root) {
  const rust = []
  for (const s of RUST_SOURCES) walk(root, s, rust)
  return { js: digest(root, [...packedFiles(root)].sort()), rust: digest(root, rust) }
}
