/**
 * Where a process's resident memory is, for bench/agent-pages.ts: its executable's resident pages
 * (/proc/<pid>/pagemap, root) mapped to the ELF sections and symbols they hold, and its anonymous
 * memory by mapping kind (/proc/<pid>/smaps: glibc's main heap and thread arenas, thread stacks,
 * the executable's written data, the rest: V8's heap pages and large mallocs).
 */
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, readSync } from 'node:fs';

const PAGE = 4096;

interface Section {
  name: string;
  type: number;
  flags: number;
  addr: bigint;
  offset: number;
  size: number;
}
interface Sym {
  name: string;
  /** file offset of its first byte */
  off: number;
  size: number;
}
export interface Elf {
  sections: Section[];
  /** sized symbols of allocated PROGBITS sections, by file offset, aliases dropped */
  syms: Sym[];
  /** the file's bytes */
  bytes: Buffer;
  /** stretches of .rodata over 1 MiB without a symbol that are not text: Node's startup snapshot */
  blobs: [number, number][];
}

/** Sections and sized symbols of a little-endian ELF64 file (the one Node is built as). */
export function readElf(file: string): Elf {
  const b = readFileSync(file);
  if (b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2 || b[5] !== 1)
    throw new Error(`${file}: not a little-endian ELF64`);
  const shoff = Number(b.readBigUInt64LE(0x28));
  const shentsize = b.readUInt16LE(0x3a);
  const shnum = b.readUInt16LE(0x3c);
  const shstrndx = b.readUInt16LE(0x3e);
  const raw = Array.from({ length: shnum }, (_, i) => {
    const o = shoff + i * shentsize;
    return {
      nameOff: b.readUInt32LE(o),
      type: b.readUInt32LE(o + 4),
      flags: Number(b.readBigUInt64LE(o + 8)),
      addr: b.readBigUInt64LE(o + 16),
      offset: Number(b.readBigUInt64LE(o + 24)),
      size: Number(b.readBigUInt64LE(o + 32)),
      link: b.readUInt32LE(o + 40),
      entsize: Number(b.readBigUInt64LE(o + 56)),
    };
  });
  const cstr = (at: number) => b.toString('latin1', at, b.indexOf(0, at));
  const shstr = raw[shstrndx]?.offset ?? 0;
  const sections: Section[] = raw.map((s) => ({
    name: cstr(shstr + s.nameOff),
    type: s.type,
    flags: s.flags,
    addr: s.addr,
    offset: s.offset,
    size: s.size,
  }));
  const syms: Sym[] = [];
  const symtab = raw.find((s) => s.type === 2 /* SHT_SYMTAB */);
  if (symtab) {
    const strtab = raw[symtab.link]?.offset ?? 0;
    for (let o = symtab.offset; o < symtab.offset + symtab.size; o += symtab.entsize) {
      const size = Number(b.readBigUInt64LE(o + 16));
      const shndx = b.readUInt16LE(o + 6);
      const sec = sections[shndx];
      // sized data/function symbols in a section with file contents (PROGBITS)
      if (!size || !sec || shndx >= 0xff00 || sec.type !== 1 || !(sec.flags & 2)) continue;
      const value = b.readBigUInt64LE(o + 8);
      syms.push({ name: cstr(strtab + b.readUInt32LE(o)), off: sec.offset + Number(value - sec.addr), size });
    }
  }
  syms.sort((x, y) => x.off - y.off || y.size - x.size);
  const dedup = syms.filter((s, i) => i === 0 || s.off !== syms[i - 1]?.off);
  const blobs: [number, number][] = [];
  const ro = sections.find((s) => s.name === '.rodata');
  if (ro) {
    let cur = ro.offset;
    for (const s of dedup) {
      if (s.off < ro.offset || s.off >= ro.offset + ro.size) continue;
      if (s.off - cur > 1 << 20 && !isText(b, cur, s.off - cur)) blobs.push([cur, s.off]);
      cur = Math.max(cur, s.off + s.size);
    }
  }
  return { sections, syms: dedup, bytes: b, blobs };
}

/** The part of Node a symbol belongs to, from its (mangled) name and section. */
export function category(section: string, sym: string | undefined): string {
  if (section === '.text') {
    if (!sym) return 'text: no symbol';
    if (sym.startsWith('Builtins_')) return "text: V8's builtins (embedded blob)";
    if (/^_Z\w*?N?K?\d*(2v8|12v8_inspector)/.test(sym)) {
      if (/8compiler|10turboshaft/.test(sym)) return 'text: V8 TurboFan/Turboshaft';
      if (/6maglev/.test(sym)) return 'text: V8 Maglev';
      if (/4wasm/.test(sym)) return 'text: V8 WebAssembly';
      return 'text: V8 (other)';
    }
    if (/^_Z\w*?4node/.test(sym)) return 'text: Node (C++)';
    if (/icu_\d+|_\d{2}$/.test(sym)) return 'text: ICU';
    if (/^uv_|^uv__/.test(sym)) return 'text: libuv';
    if (/^_ZN?K?S|^_ZNSt|^_ZSt|^_ZNKSt/.test(sym)) return 'text: C++ std';
    if (
      /^(ossl_|OPENSSL_|EVP_|SSL_|X509|ASN1_|BN_|bn_|EC_|ec_|RSA|DH_|DSA|PEM_|CRYPTO_|ERR_|OBJ_|BIO_|tls_|ssl|aes|sha|ecp_|x25519|ChaCha|Poly|gcm|OSSL_)/.test(
        sym,
      )
    )
      return 'text: OpenSSL';
    return 'text: other (C libraries, simdutf, ada, …)';
  }
  if (section === '.rodata') {
    if (!sym) return 'rodata: no symbol';
    if (/^icudt\d+_dat$/.test(sym)) return "rodata: ICU's data (icudt*_dat)";
    if (sym === '_ZN2v88internalL9blob_dataE') return "rodata: V8's startup snapshot (blob_data)";
    if (/^_Z\w*?N?K?\d*(2v8|12v8_inspector)/.test(sym)) return 'rodata: V8 (other)';
    if (/^_Z\w*?4node/.test(sym)) return 'rodata: Node (C++)';
    if (/icu_\d+|_\d{2}$|^_ZL\d+props/.test(sym)) return 'rodata: ICU';
    return 'rodata: other';
  }
  if (/^\.(gnu\.hash|dynsym|dynstr|gnu\.version.*|rela\..*|interp|hash)$/.test(section))
    return 'dynamic linking (.dynsym, .dynstr, .rela, …)';
  if (/^\.eh_frame|\.gcc_except/.test(section)) return 'unwind tables (.eh_frame)';
  if (/^\.(data|bss|got|tdata|init_array|fini_array|data\.rel\.ro|dynamic)/.test(section))
    return 'writable data (.data, .got, …)';
  return section;
}

export interface Attribution {
  /** KiB of file pages by category */
  file: Map<string, number>;
  /** KiB of anonymous (written, copy-on-write) pages of the executable's mappings by category */
  anon: Map<string, number>;
  /** KiB by symbol (file pages), for the largest */
  bySym: Map<string, number>;
  /** KiB of rodata without a symbol, by 64 KiB block (file offset), to see what is there */
  gaps: Map<number, number>;
}

/**
 * The resident pages of `pid`'s mappings of its executable, each page's 4 KiB shared among the
 * symbols it holds (the rest of it to its section), from pagemap (bit 63 present, bit 61 a file
 * page; needs no privilege for those bits).
 */
export function attributeExe(pid: number, elf: Elf, exe = readlinkSync(`/proc/${pid}/exe`)): Attribution {
  const out: Attribution = { file: new Map(), anon: new Map(), bySym: new Map(), gaps: new Map() };
  const add = (m: Map<string | number, number>, k: string | number, kib: number) =>
    m.set(k, (m.get(k) ?? 0) + kib);
  const secs = elf.sections
    .filter((s) => s.type !== 8 /* NOBITS */ && s.size > 0 && s.offset > 0)
    .sort((a, b) => a.offset - b.offset);
  const sectionAt = (off: number) => {
    let hit: Section | undefined;
    for (const s of secs) if (off >= s.offset && off < s.offset + s.size) hit = s;
    return hit;
  };
  // symbol index: the first symbol ending after `off`
  const syms = elf.syms;
  const firstEndingAfter = (off: number) => {
    let lo = 0;
    let hi = syms.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const s = syms[mid] as Sym;
      if (s.off + s.size <= off) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const maps = readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n');
  const fd = openSync(`/proc/${pid}/pagemap`, 'r');
  try {
    for (const line of maps) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ ([0-9a-f]+) \S+ \d+\s+(.*)$/.exec(line);
      if (!m || m[4] !== exe) continue;
      const start = Number.parseInt(m[1] as string, 16);
      const end = Number.parseInt(m[2] as string, 16);
      const mapOff = Number.parseInt(m[3] as string, 16);
      const n = (end - start) / PAGE;
      const buf = Buffer.alloc(n * 8);
      readSync(fd, buf, 0, buf.length, (start / PAGE) * 8);
      for (let i = 0; i < n; i++) {
        const e = buf.readBigUInt64LE(i * 8);
        if (!(e >> 63n)) continue;
        const isFile = Boolean((e >> 61n) & 1n);
        const off = mapOff + i * PAGE;
        const sec = sectionAt(off);
        const target = isFile ? out.file : out.anon;
        if (!sec) {
          add(target, '(headers, notes, padding)', 4);
          continue;
        }
        if (sec.name === '' && sec.type === 7) {
          add(target, 'SEA blob (NODE_SEA_BLOB note)', 4);
          continue;
        }
        if (sec.name !== '.text' && sec.name !== '.rodata') {
          add(target, category(sec.name, undefined), 4);
          continue;
        }
        // share the page among the symbols it holds
        const pageEnd = off + PAGE;
        let covered = 0;
        let cursor = off;
        for (let j = firstEndingAfter(off); j < syms.length; j++) {
          const s = syms[j] as Sym;
          if (s.off >= pageEnd) break;
          // nested symbols: each byte once
          const bytes = Math.min(pageEnd, s.off + s.size) - Math.max(cursor, s.off);
          if (bytes <= 0) continue;
          cursor = Math.min(pageEnd, s.off + s.size);
          const kib = bytes / 1024;
          covered += bytes;
          add(target, category(sec.name, s.name), kib);
          if (isFile) add(out.bySym, s.name, kib);
        }
        const rest = Math.max(0, PAGE - covered) / 1024;
        if (rest > 0) {
          const label =
            sec.name !== '.rodata'
              ? category(sec.name, undefined)
              : isText(elf.bytes, off)
                ? "rodata: Node's built-in JS sources, root certificates (text, no symbol)"
                : elf.blobs.some(([a, z]) => off >= a && off < z)
                  ? "rodata: Node's startup snapshot, built-ins' code cache (no symbol)"
                  : category(sec.name, undefined);
          add(target, label, rest);
          if (isFile && sec.name === '.rodata') add(out.gaps, Math.floor(off / 65536) * 65536, rest);
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

/**
 * Whether bytes of the file are (nearly all) printable ASCII, as Latin-1 or UTF-16 (every other
 * byte 0): source text, PEM.
 */
function isText(b: Buffer, off: number, len = PAGE): boolean {
  let printable = 0;
  let zero = 0;
  for (let i = off; i < off + len && i < b.length; i++) {
    const c = b[i] as number;
    if ((c >= 32 && c < 127) || c === 9 || c === 10 || c === 13) printable++;
    else if (c === 0) zero++;
  }
  return printable >= len * 0.95 || (printable >= len * 0.45 && printable + zero >= len * 0.97);
}

export interface AnonKinds {
  kib: Map<string, number>;
  threads: Map<string, number>;
}

/** A process's anonymous resident memory (smaps `Anonymous:`) by the kind of mapping holding it. */
export function anonByKind(pid: number, exe = readlinkSync(`/proc/${pid}/exe`)): AnonKinds {
  const kib = new Map<string, number>();
  const add = (k: string, v: number) => kib.set(k, (kib.get(k) ?? 0) + v);
  const text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const maps: { start: number; end: number; perms: string; path: string; anon: number }[] = [];
  for (const block of text.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    const h = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \d+[ \t]*([^\n]*)$/m.exec(block);
    if (!h) continue;
    maps.push({
      start: Number.parseInt(h[1] as string, 16),
      end: Number.parseInt(h[2] as string, 16),
      perms: h[3] as string,
      path: (h[4] as string).trim(),
      anon: Number(/^Anonymous:\s+(\d+) kB/m.exec(block)?.[1] ?? 0),
    });
  }
  const ARENA = 64 * 1024 * 1024;
  maps.forEach((m, i) => {
    if (!m.anon) return;
    const prev = maps[i - 1];
    const next = maps[i + 1];
    if (m.path === exe) add("executable's written data (.data, .bss, relocations)", m.anon);
    else if (m.path === '[heap]') add("glibc's main heap ([heap], brk)", m.anon);
    else if (m.path === '[stack]') add("main thread's stack", m.anon);
    else if (m.path.startsWith('/')) add(`other file mappings (${m.path.split('/').pop()})`, m.anon);
    else if (m.path) add(m.path, m.anon);
    else if (m.start % ARENA === 0 && next?.perms.startsWith('---') && next.end - m.start <= ARENA)
      add("glibc's thread arenas (64 MiB reservations)", m.anon);
    else if (prev?.perms.startsWith('---') && prev.end === m.start && prev.end - prev.start <= 64 * 1024)
      add('thread stacks (after a guard page)', m.anon);
    else if (m.perms.includes('x')) add("V8's code space (executable anonymous)", m.anon);
    else add("other anonymous mappings (V8's heap pages, large mallocs)", m.anon);
  });
  const threads = new Map<string, number>();
  for (const t of readdirTasks(pid)) threads.set(t, (threads.get(t) ?? 0) + 1);
  return { kib, threads };
}

function readdirTasks(pid: number): string[] {
  return readdirSync(`/proc/${pid}/task`).map((t) =>
    readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim().replace(/\d+$/, 'N'),
  );
}
