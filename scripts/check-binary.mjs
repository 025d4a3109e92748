// Checks that a built addon is what its target promises before it is packed: the object format
// and machine, and on Linux the C library it links (glibc <= 2.17 for gnu, musl for musl).
// `node scripts/check-binary.mjs <file.node> <rust target triple>` prints what it read.
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'

export const MAX_GLIBC = [2, 17]

const ELF_MACHINE = { 62: 'x86_64', 183: 'aarch64' }
const MACHO_CPU = { 0x01000007: 'x86_64', 0x0100000c: 'aarch64' }
const PE_MACHINE = { 0x8664: 'x86_64', 0xaa64: 'aarch64' }

// The glibc objects a Rust cdylib may link; musl's loader answers every one of these names.
const GLIBC_LIBS = new Set([
  'libc.so.6',
  'libm.so.6',
  'libpthread.so.0',
  'libdl.so.2',
  'librt.so.1',
  'libgcc_s.so.1',
  'ld-linux-x86-64.so.2',
  'ld-linux-aarch64.so.1',
])
const MUSL_LIBS = /^(libc\.so|libc\.musl-(x86_64|aarch64)\.so\.1|ld-musl-(x86_64|aarch64)\.so\.1)$/

// Reads a 64-bit little-endian ELF shared object: type, machine, interpreter, DT_NEEDED and the
// symbol versions it needs from each library (.gnu.version_r).
export function readElf(buf) {
  if (buf.readUInt32BE(0) !== 0x7f454c46) throw new Error('not an ELF file')
  if (buf[4] !== 2 || buf[5] !== 1) throw new Error('not a 64-bit little-endian ELF file')
  const u16 = (o) => buf.readUInt16LE(o)
  const u32 = (o) => buf.readUInt32LE(o)
  const u64 = (o) => Number(buf.readBigUInt64LE(o))
  const cstr = (o) => buf.toString('latin1', o, buf.indexOf(0, o))
  const info = { type: u16(16), machine: ELF_MACHINE[u16(18)] ?? `e_machine ${u16(18)}`, interp: null, needed: [] }
  info.versions = {}

  const [phoff, phentsize, phnum] = [u64(32), u16(54), u16(56)]
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize
    if (u32(ph) === 3) info.interp = cstr(u64(ph + 8)) // PT_INTERP
  }

  const [shoff, shentsize, shnum] = [u64(40), u16(58), u16(60)]
  const sections = []
  for (let i = 0; i < shnum; i++) {
    const sh = shoff + i * shentsize
    sections.push({
      type: u32(sh + 4),
      offset: u64(sh + 24),
      size: u64(sh + 32),
      link: u32(sh + 40),
      info: u32(sh + 44),
    })
  }
  const strAt = (section, off) => cstr(sections[section.link].offset + off)
  for (const s of sections) {
    if (s.type === 6) {
      // SHT_DYNAMIC: (d_tag, d_val) pairs, DT_NEEDED = 1, DT_NULL = 0 ends them.
      for (let o = s.offset; o < s.offset + s.size; o += 16) {
        const tag = u64(o)
        if (tag === 0) break
        if (tag === 1) info.needed.push(strAt(s, u64(o + 8)))
      }
    } else if (s.type === 0x6ffffffe) {
      // SHT_GNU_verneed: one Verneed per library, each with a chain of Vernaux names.
      let vn = s.offset
      for (let i = 0; i < s.info; i++) {
        const names = (info.versions[strAt(s, u32(vn + 4))] = [])
        let aux = vn + u32(vn + 8)
        for (let j = 0; j < u16(vn + 2); j++) {
          names.push(strAt(s, u32(aux + 8)))
          aux += u32(aux + 12)
        }
        vn += u32(vn + 12)
      }
    }
  }
  return info
}

const glibcVersion = (name) => /^GLIBC_(\d+)\.(\d+)(?:\.(\d+))?$/.exec(name)?.slice(1).filter(Boolean).map(Number)
const newer = (a, b) => a[0] - b[0] || a[1] - b[1] || (a[2] ?? 0) - (b[2] ?? 0)

// Returns a one-line summary of what was read; throws listing every way the binary is wrong.
export function checkBinary(path, triple) {
  const buf = readFileSync(path)
  const arch = triple.split('-')[0]
  const problems = []
  let summary
  if (triple.includes('-linux-')) {
    const elf = readElf(buf)
    const musl = triple.endsWith('-musl')
    if (elf.type !== 3) problems.push(`ELF type ${elf.type}, not a shared object (3)`)
    if (elf.machine !== arch) problems.push(`machine ${elf.machine}, expected ${arch}`)
    if (elf.interp) problems.push(`it has a program interpreter (${elf.interp}); a Node addon has none`)
    const libc = elf.needed.filter((n) => (musl ? MUSL_LIBS.test(n) : n === 'libc.so.6'))
    if (libc.length === 0)
      problems.push(`it does not link ${musl ? 'musl' : 'glibc'} (needs: ${elf.needed.join(', ')})`)
    const foreign = elf.needed.filter((n) => !(musl ? MUSL_LIBS.test(n) : GLIBC_LIBS.has(n)))
    if (foreign.length) problems.push(`it needs ${foreign.join(', ')}, not part of ${musl ? 'musl' : 'glibc'}`)
    const glibc = Object.values(elf.versions).flat().map(glibcVersion).filter(Boolean).sort(newer).pop()
    if (musl && glibc) problems.push(`it needs glibc symbol versions (up to GLIBC_${glibc.join('.')})`)
    if (!musl && glibc && newer(glibc, MAX_GLIBC) > 0) {
      problems.push(`it needs GLIBC_${glibc.join('.')}, more than GLIBC_${MAX_GLIBC.join('.')}`)
    }
    const libcText = musl ? 'musl' : `glibc >= ${glibc ? glibc.join('.') : '(none)'}`
    summary = `ELF ${elf.machine}, ${libcText}, needs ${elf.needed.join(' ')}`
  } else if (triple.includes('-apple-darwin')) {
    const magic = buf.readUInt32LE(0)
    const cpu = MACHO_CPU[buf.readUInt32LE(4)] ?? `cputype 0x${buf.readUInt32LE(4).toString(16)}`
    const filetype = buf.readUInt32LE(12)
    if (magic !== 0xfeedfacf) problems.push('not a 64-bit Mach-O file')
    if (cpu !== arch) problems.push(`cpu ${cpu}, expected ${arch}`)
    if (filetype !== 6 && filetype !== 8) problems.push(`Mach-O file type ${filetype}, not a dylib or bundle`)
    summary = `Mach-O ${cpu}`
  } else if (triple.includes('-windows-')) {
    const pe = buf.toString('latin1', 0, 2) === 'MZ' ? buf.readUInt32LE(0x3c) : -1
    if (pe < 0 || buf.readUInt32BE(pe) !== 0x50450000) throw new Error(`${path}: not a PE file`)
    const machine = PE_MACHINE[buf.readUInt16LE(pe + 4)] ?? `machine 0x${buf.readUInt16LE(pe + 4).toString(16)}`
    if (machine !== arch) problems.push(`machine ${machine}, expected ${arch}`)
    if (!(buf.readUInt16LE(pe + 22) & 0x2000)) problems.push('not a DLL')
    summary = `PE ${machine} DLL`
  } else {
    problems.push('no check is known for this target')
  }
  if (problems.length) throw new Error(`${path} is not a valid ${triple} addon: ${problems.join('; ')}`)
  return summary
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [file, triple] = process.argv.slice(2)
  if (!file || !triple) {
    console.error('usage: node scripts/check-binary.mjs <file.node> <rust target triple>')
    process.exit(2)
  }
  try {
    console.log(`${file}: ${checkBinary(file, triple)}`)
  } catch (e) {
    console.error(e.message)
    process.exit(1)
  }
}
