/**
 * What a mod says about itself, read from the file with every size capped before it is read:
 * a jar's `plugin.yml` / `paper-plugin.yml` (Bukkit, Paper), `fabric.mod.json` / `quilt.mod.json`,
 * `META-INF/mods.toml` / `META-INF/neoforge.mods.toml` / `mcmod.info` (Forge), and a Windows
 * DLL's version resource (BepInEx plugins, Source addons on Windows builds). A malformed file is
 * a `problem`, never an exception that reaches the caller.
 */
import type { FileHandle } from 'node:fs/promises';
import type { ModKind, ModMeta } from '@cap/protocol';
import { parse as parseToml } from 'smol-toml';
import { parse as parseYaml } from 'yaml';
import yauzl from 'yauzl';

/** A metadata file bigger than this is not read (real ones are a few KiB). */
export const META_FILE_MAX_BYTES = 256 * 1024;
/** Entries of a jar's central directory looked at before giving up. */
const JAR_MAX_ENTRIES = 100_000;
/** A DLL's resource section read at most (version resources are a few KiB). */
const PE_RESOURCE_MAX_BYTES = 8 * 1024 * 1024;

export type MetaResult = { meta: ModMeta | null; problem?: string };

const JAR_FILES: ReadonlyMap<string, (text: string) => ModMeta | null> = new Map([
  ['plugin.yml', (t: string) => bukkit(t, 'plugin.yml')],
  ['paper-plugin.yml', (t: string) => bukkit(t, 'paper-plugin.yml')],
  ['fabric.mod.json', (t: string) => fabric(t, 'fabric.mod.json')],
  ['quilt.mod.json', (t: string) => quilt(t)],
  ['META-INF/mods.toml', (t: string) => forgeToml(t, 'META-INF/mods.toml')],
  ['META-INF/neoforge.mods.toml', (t: string) => forgeToml(t, 'META-INF/neoforge.mods.toml')],
  ['mcmod.info', (t: string) => mcmodInfo(t)],
]);
/** Which jar files to prefer, per kind (a jar can carry several: a Bukkit+Fabric hybrid). */
const JAR_ORDER: Readonly<Record<'bukkit' | 'fabric' | 'forge' | 'other', readonly string[]>> = {
  bukkit: ['paper-plugin.yml', 'plugin.yml'],
  fabric: ['fabric.mod.json', 'quilt.mod.json'],
  forge: ['META-INF/neoforge.mods.toml', 'META-INF/mods.toml', 'mcmod.info'],
  other: [...JAR_FILES.keys()],
};

function str(v: unknown, max: number): string | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) v = String(v);
  if (typeof v !== 'string') return undefined;
  const t = v.replace(/\s+/g, ' ').trim();
  return t === '' ? undefined : t.slice(0, max);
}
function strList(v: unknown): string[] | undefined {
  const items = Array.isArray(v) ? v : v === undefined ? [] : [v];
  const out = items
    .map((a) =>
      typeof a === 'object' && a !== null && Object.hasOwn(a, 'name') ? (a as { name: unknown }).name : a,
    )
    .map((a) => str(a, 64))
    .filter((a): a is string => a !== undefined)
    .slice(0, 8);
  return out.length > 0 ? out : undefined;
}
function own(o: unknown, k: string): unknown {
  return typeof o === 'object' && o !== null && !Array.isArray(o) && Object.hasOwn(o, k)
    ? (o as Record<string, unknown>)[k]
    : undefined;
}
function clean(m: ModMeta): ModMeta {
  return Object.fromEntries(Object.entries(m).filter(([, v]) => v !== undefined)) as ModMeta;
}

function bukkit(text: string, source: string): ModMeta {
  const y = parseYaml(text, { maxAliasCount: 16 }) as unknown;
  const authors = strList(own(y, 'authors')) ?? strList(own(y, 'author'));
  return clean({
    source,
    id: str(own(y, 'name'), 128),
    name: str(own(y, 'name'), 128),
    version: str(own(y, 'version'), 64),
    description: str(own(y, 'description'), 512),
    authors,
    requires: str(own(y, 'api-version'), 128),
  });
}
function fabric(text: string, source: string): ModMeta {
  const j = JSON.parse(text) as unknown;
  const mc = own(own(j, 'depends'), 'minecraft');
  return clean({
    source,
    id: str(own(j, 'id'), 128),
    name: str(own(j, 'name'), 128) ?? str(own(j, 'id'), 128),
    version: str(own(j, 'version'), 64),
    description: str(own(j, 'description'), 512),
    authors: strList(own(j, 'authors')),
    requires: typeof mc === 'string' ? str(`minecraft ${mc}`, 128) : undefined,
  });
}
function quilt(text: string): ModMeta {
  const loader = own(JSON.parse(text) as unknown, 'quilt_loader');
  const meta = own(loader, 'metadata');
  const contributors = own(meta, 'contributors');
  return clean({
    source: 'quilt.mod.json',
    id: str(own(loader, 'id'), 128),
    name: str(own(meta, 'name'), 128) ?? str(own(loader, 'id'), 128),
    version: str(own(loader, 'version'), 64),
    description: str(own(meta, 'description'), 512),
    authors:
      typeof contributors === 'object' && contributors !== null
        ? strList(Object.keys(contributors))
        : undefined,
  });
}
function forgeToml(text: string, source: string): ModMeta | null {
  const t = parseToml(text) as unknown;
  const mods = own(t, 'mods');
  const first = Array.isArray(mods) ? mods[0] : undefined;
  if (first === undefined) return null;
  const id = str(own(first, 'modId'), 128);
  // `${file.jarVersion}` is filled from the jar's manifest by Forge (jarMeta reads it then)
  const version = str(own(first, 'version'), 64);
  const deps = id ? own(own(t, 'dependencies'), id) : undefined;
  const mc = Array.isArray(deps) ? deps.find((d) => own(d, 'modId') === 'minecraft') : undefined;
  return clean({
    source,
    id,
    name: str(own(first, 'displayName'), 128) ?? id,
    version: version?.startsWith('$' + '{') ? undefined : version,
    description: str(own(first, 'description'), 512),
    authors: strList(own(first, 'authors') ?? own(t, 'authors')),
    requires: mc ? str(`minecraft ${String(own(mc, 'versionRange') ?? '')}`, 128) : undefined,
  });
}
function mcmodInfo(text: string): ModMeta | null {
  const j = JSON.parse(text) as unknown;
  const list = Array.isArray(j) ? j : own(j, 'modList');
  const first = Array.isArray(list) ? list[0] : undefined;
  if (first === undefined) return null;
  return clean({
    source: 'mcmod.info',
    id: str(own(first, 'modid'), 128),
    name: str(own(first, 'name'), 128),
    version: str(own(first, 'version'), 64),
    description: str(own(first, 'description'), 512),
    authors: strList(own(first, 'authorList')),
    requires: str(own(first, 'mcversion'), 128),
  });
}

async function readCapped(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of stream as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > META_FILE_MAX_BYTES) throw new Error('metadata file too big');
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A jar's (zip's) metadata, through an open descriptor (already proven inside the root). */
export async function jarMeta(fd: number, kind: ModKind): Promise<MetaResult> {
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.fromFdPromise(fd, { autoClose: false, decodeStrings: true, validateEntrySizes: true });
  } catch {
    return { meta: null, problem: 'not a jar (zip) archive' };
  }
  try {
    const order = JAR_ORDER[kind === 'bukkit' || kind === 'fabric' || kind === 'forge' ? kind : 'other'];
    const found = new Map<string, yauzl.Entry>();
    let seen = 0;
    let manifest: yauzl.Entry | undefined;
    for await (const e of zip.eachEntry()) {
      if (++seen > JAR_MAX_ENTRIES) break;
      if (JAR_FILES.has(e.fileName) && !found.has(e.fileName)) found.set(e.fileName, e);
      if (e.fileName === 'META-INF/MANIFEST.MF') manifest = e;
      if (manifest && order.every((n) => found.has(n))) break;
    }
    for (const name of order) {
      const e = found.get(name);
      const parse = JAR_FILES.get(name);
      if (!e || !parse) continue;
      if (e.uncompressedSize > META_FILE_MAX_BYTES) return { meta: null, problem: `${name} is too big` };
      try {
        const meta = parse(await readCapped(await zip.openReadStreamPromise(e)));
        if (
          meta &&
          meta.version === undefined &&
          manifest &&
          manifest.uncompressedSize <= META_FILE_MAX_BYTES
        ) {
          const mf = await readCapped(await zip.openReadStreamPromise(manifest));
          const v = str(/^Implementation-Version:\s*(.+)$/m.exec(mf)?.[1], 64);
          if (v) meta.version = v;
        }
        if (meta) return { meta };
      } catch (err) {
        return { meta: null, problem: `${name} is malformed: ${(err as Error).message}`.slice(0, 256) };
      }
    }
    return { meta: null, problem: 'no metadata file in the jar' };
  } catch (err) {
    return { meta: null, problem: `not a readable jar: ${(err as Error).message}`.slice(0, 256) };
  }
  // no zip.close(): over a descriptor it would close it, and the caller's FileHandle owns that
}

// ---------------------------------------------------------------------------------------------
// PE version resources (VS_VERSIONINFO), read at file offsets, every offset bounds-checked

class Bounds extends Error {}
function u16(b: Buffer, o: number): number {
  if (o < 0 || o + 2 > b.length) throw new Bounds('out of bounds');
  return b.readUInt16LE(o);
}
function u32(b: Buffer, o: number): number {
  if (o < 0 || o + 4 > b.length) throw new Bounds('out of bounds');
  return b.readUInt32LE(o);
}
async function readAt(fh: FileHandle, pos: number, len: number): Promise<Buffer> {
  const buf = Buffer.alloc(len);
  const { bytesRead } = await fh.read(buf, 0, len, pos);
  return buf.subarray(0, bytesRead);
}
/** A NUL-terminated UTF-16LE string at `o`, and where it ends (the NUL's end). */
function wstr(b: Buffer, o: number, end: number): { s: string; next: number } {
  let i = o;
  while (i + 1 < end && u16(b, i) !== 0) i += 2;
  return { s: b.toString('utf16le', o, i), next: i + 2 };
}
const align4 = (n: number) => (n + 3) & ~3;

/** Parses a VS_VERSIONINFO block: the fixed file version and the StringFileInfo strings. */
export function parseVersionInfo(b: Buffer): { fileVersion?: string; strings: Map<string, string> } {
  const strings = new Map<string, string>();
  const total = Math.min(u16(b, 0), b.length);
  const valueLength = u16(b, 2);
  const key = wstr(b, 6, total);
  if (key.s !== 'VS_VERSION_INFO') throw new Error('not a version resource');
  let o = align4(key.next);
  let fileVersion: string | undefined;
  if (valueLength >= 52 && u32(b, o) === 0xfeef04bd) {
    const ms = u32(b, o + 8);
    const ls = u32(b, o + 12);
    fileVersion = `${ms >>> 16}.${ms & 0xffff}.${ls >>> 16}.${ls & 0xffff}`;
  }
  o = align4(o + valueLength);
  // children: StringFileInfo { StringTable { String* } }, VarFileInfo
  let guard = 0;
  while (o + 6 < total && guard++ < 64) {
    const len = u16(b, o);
    if (len === 0) break;
    const end = Math.min(o + len, total);
    const k = wstr(b, o + 6, end);
    if (k.s === 'StringFileInfo') {
      let t = align4(k.next);
      while (t + 6 < end && guard++ < 64) {
        const tlen = u16(b, t);
        if (tlen === 0) break;
        const tend = Math.min(t + tlen, end);
        let s = align4(wstr(b, t + 6, tend).next);
        while (s + 6 < tend && strings.size < 32) {
          const slen = u16(b, s);
          if (slen === 0) break;
          const send = Math.min(s + slen, tend);
          const sk = wstr(b, s + 6, send);
          const vo = align4(sk.next);
          if (vo < send) strings.set(sk.s, wstr(b, vo, send).s);
          s = align4(s + slen);
        }
        t = align4(t + tlen);
      }
    }
    o = align4(o + len);
  }
  return { fileVersion, strings };
}

/** A DLL's version resource: FileVersion, ProductName/FileDescription, CompanyName. */
export async function peMeta(fh: FileHandle, size: number): Promise<MetaResult> {
  try {
    const dos = await readAt(fh, 0, 64);
    if (dos.length < 64 || dos.toString('latin1', 0, 2) !== 'MZ')
      return { meta: null, problem: 'not a PE file' };
    const peAt = u32(dos, 0x3c);
    if (peAt > size - 24) return { meta: null, problem: 'not a PE file' };
    const head = await readAt(fh, peAt, 24 + 240);
    if (head.toString('latin1', 0, 4) !== 'PE\0\0') return { meta: null, problem: 'not a PE file' };
    const sections = u16(head, 6);
    const optSize = u16(head, 20);
    const opt = 24;
    const magic = u16(head, opt);
    const dirs = opt + (magic === 0x20b ? 112 : 96);
    const resRva = u32(head, dirs + 2 * 8);
    if (resRva === 0) return { meta: null, problem: 'no version resource' };
    if (sections > 96) return { meta: null, problem: 'malformed PE section table' };
    const table = await readAt(fh, peAt + 24 + optSize, sections * 40);
    let sec: { va: number; vsize: number; raw: number; rawSize: number } | null = null;
    for (let i = 0; i < sections; i++) {
      const va = u32(table, i * 40 + 12);
      const vsize = Math.max(u32(table, i * 40 + 8), u32(table, i * 40 + 16));
      if (resRva >= va && resRva < va + vsize)
        sec = { va, vsize, raw: u32(table, i * 40 + 20), rawSize: u32(table, i * 40 + 16) };
    }
    if (!sec) return { meta: null, problem: 'no resource section' };
    const rs = await readAt(fh, sec.raw, Math.min(sec.rawSize, PE_RESOURCE_MAX_BYTES));
    const base = resRva - sec.va;
    // resource directory: type RT_VERSION (16) → first name → first language → data entry
    const entryOf = (dir: number, id: number | null): number | null => {
      const named = u16(rs, dir + 12);
      const ids = u16(rs, dir + 14);
      for (let i = 0; i < Math.min(named + ids, 256); i++) {
        const e = dir + 16 + i * 8;
        if (id === null || u32(rs, e) === id) return u32(rs, e + 4);
      }
      return null;
    };
    let off = entryOf(base, 16);
    for (let level = 0; level < 2 && off !== null; level++) {
      if ((off & 0x80000000) === 0) break;
      off = entryOf(base + (off & 0x7fffffff) - 0, null);
    }
    if (off === null || (off & 0x80000000) !== 0) return { meta: null, problem: 'no version resource' };
    const dataRva = u32(rs, base + off);
    const dataSize = u32(rs, base + off + 4);
    const start = dataRva - sec.va;
    if (start < 0 || dataSize > 64 * 1024 || start + dataSize > rs.length)
      return { meta: null, problem: 'malformed version resource' };
    const { fileVersion, strings } = parseVersionInfo(rs.subarray(start, start + dataSize));
    const name = strings.get('ProductName') || strings.get('FileDescription') || strings.get('InternalName');
    const version = strings.get('FileVersion') || strings.get('ProductVersion') || fileVersion;
    return {
      meta: clean({
        source: 'version resource',
        id: str(strings.get('InternalName') ?? strings.get('OriginalFilename'), 128),
        name: str(name, 128),
        version: str(version, 64),
        description: str(strings.get('FileDescription') ?? strings.get('Comments'), 512),
        authors: strList(strings.get('CompanyName')),
      }),
    };
  } catch (err) {
    if (err instanceof Bounds) return { meta: null, problem: 'malformed PE file' };
    return { meta: null, problem: `unreadable: ${(err as Error).message}`.slice(0, 256) };
  }
}
