/**
 * Pure helpers of the Files tab (paths, modes, languages, the folder walk of a drop, upload
 * totals): no DOM, so they are unit-tested without a browser. Paths are the server's own,
 * rooted at `/` (the Agent checks every one again; these only keep the UI from sending nonsense).
 */

/** `dir` + `name`, one slash between. */
export function joinPath(dir: string, name: string): string {
  const d = dir.endsWith('/') ? dir.slice(0, -1) : dir;
  return `${d}/${name.replace(/^\/+/, '')}`;
}

/** The folder holding `p` (`/` for a top-level entry). */
export function parentOf(p: string): string {
  const trimmed = p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
  return trimmed.slice(0, trimmed.lastIndexOf('/')) || '/';
}

/** The last component of `p`. */
export function baseName(p: string): string {
  const parts = p.split('/').filter(Boolean);
  return parts[parts.length - 1] ?? '';
}

/** `/a/b/c` → crumbs `[{name:'a',path:'/a'}, {name:'b',path:'/a/b'}, {name:'c',path:'/a/b/c'}]`. */
export function crumbsOf(p: string): { name: string; path: string }[] {
  const parts = p.split('/').filter(Boolean);
  return parts.map((name, i) => ({ name, path: `/${parts.slice(0, i + 1).join('/')}` }));
}

export type PathResult = { ok: true; path: string } | { ok: false; error: string };

/**
 * What the user typed into a path box (a name, `sub/name`, `../x` or `/abs/x`) resolved against
 * the folder `cwd`: `.` and `..` resolved, never above `/`, no NUL, no empty result.
 */
export function resolvePath(cwd: string, input: string): PathResult {
  const raw = input.trim();
  if (!raw) return { ok: false, error: 'Enter a name or a path.' };
  if (raw.includes('\0')) return { ok: false, error: 'A path cannot contain NUL.' };
  if (raw.length > 4096) return { ok: false, error: 'That path is too long (4096 characters at most).' };
  const out: string[] = raw.startsWith('/') ? [] : cwd.split('/').filter(Boolean);
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length === 0) return { ok: false, error: 'That path goes above the server folder.' };
      out.pop();
      continue;
    }
    if (new TextEncoder().encode(part).length > 255)
      return { ok: false, error: 'A name is 255 bytes at most.' };
    out.push(part);
  }
  if (out.length === 0) return { ok: false, error: 'That is the server folder itself.' };
  return { ok: true, path: `/${out.join('/')}` };
}

/** A new entry's name: one component, no slash, not `.`/`..`, at most 255 bytes. */
export function checkName(name: string): string | null {
  const n = name.trim();
  if (!n) return 'Enter a name.';
  if (n.includes('/')) return 'A name cannot contain "/".';
  if (n.includes('\0')) return 'A name cannot contain NUL.';
  if (n === '.' || n === '..') return 'Not a valid name.';
  if (new TextEncoder().encode(n).length > 255) return 'A name is 255 bytes at most.';
  return null;
}

export type ModeResult = { ok: true; mode: string } | { ok: false; error: string };

/**
 * A permission mode typed as octal digits: `644`, `0755` or `1777` (sticky bit). setuid/setgid
 * (4xxx, 2xxx) are refused, as the Agent refuses them. The result is four digits.
 */
export function parseMode(input: string): ModeResult {
  const s = input.trim();
  if (!/^[0-7]{3,4}$/.test(s))
    return { ok: false, error: 'Three or four octal digits (0-7), e.g. 644 or 0755.' };
  const four = s.padStart(4, '0');
  if (four[0] !== '0' && four[0] !== '1')
    return { ok: false, error: 'setuid and setgid (a leading 4, 2 or 6) are not allowed.' };
  return { ok: true, mode: four };
}

/** `0644` → `rw-r--r--` (with the sticky bit as `t`). */
export function modeString(mode: string): string {
  const n = Number.parseInt(mode, 8);
  if (!Number.isFinite(n)) return mode;
  const bits = ['r', 'w', 'x'];
  let s = '';
  for (let i = 8; i >= 0; i -= 1) s += n & (1 << i) ? (bits[(8 - i) % 3] ?? '-') : '-';
  if (n & 0o1000) s = `${s.slice(0, 8)}${s[8] === 'x' ? 't' : 'T'}`;
  return s;
}

/** The editor's syntax modes (each a CodeMirror language pack, loaded with the editor). */
export type EditorLanguage =
  | 'json'
  | 'yaml'
  | 'xml'
  | 'javascript'
  | 'typescript'
  | 'properties'
  | 'toml'
  | 'shell'
  | 'lua'
  | 'python'
  | 'css'
  | 'text';

const BY_EXTENSION = new Map<string, EditorLanguage>([
  ['json', 'json'],
  ['json5', 'json'],
  ['mcmeta', 'json'],
  ['yml', 'yaml'],
  ['yaml', 'yaml'],
  ['xml', 'xml'],
  ['html', 'xml'],
  ['htm', 'xml'],
  ['svg', 'xml'],
  ['js', 'javascript'],
  ['mjs', 'javascript'],
  ['cjs', 'javascript'],
  ['ts', 'typescript'],
  ['properties', 'properties'],
  ['ini', 'properties'],
  ['cfg', 'properties'],
  ['conf', 'properties'],
  ['env', 'properties'],
  ['lang', 'properties'],
  ['toml', 'toml'],
  ['sh', 'shell'],
  ['bash', 'shell'],
  ['lua', 'lua'],
  ['py', 'python'],
  ['css', 'css'],
]);
const BY_NAME = new Map<string, EditorLanguage>([
  ['.env', 'properties'],
  ['dockerfile', 'shell'],
  ['.bashrc', 'shell'],
  ['.profile', 'shell'],
]);

/** The syntax mode for a file name: by its whole name first, then by its extension. */
export function languageOf(fileName: string): EditorLanguage {
  const name = baseName(fileName).toLowerCase();
  const whole = BY_NAME.get(name);
  if (whole) return whole;
  const dot = name.lastIndexOf('.');
  if (dot < 0) return 'text';
  return BY_EXTENSION.get(name.slice(dot + 1)) ?? 'text';
}

/** Archives `decompress` takes (the Agent decides by magic bytes; this only offers the button). */
export function isArchiveName(fileName: string): boolean {
  return /\.(tar\.gz|tgz|tar\.zst|tzst|tar|zip)$/i.test(fileName);
}

/**
 * The part of the DOM's FileSystemEntry a folder walk needs (a dropped folder through
 * `DataTransferItem.webkitGetAsEntry()`); written here so the walk is tested with plain objects.
 */
export interface WalkEntry<F> {
  isFile: boolean;
  isDirectory: boolean;
  name: string;
  file?(ok: (f: F) => void, fail: (e: unknown) => void): void;
  createReader?(): { readEntries(ok: (entries: WalkEntry<F>[]) => void, fail: (e: unknown) => void): void };
}

export interface Walked<F> {
  /** folders to create (relative, parents before children), empty ones included */
  dirs: string[];
  /** files with their path relative to the drop */
  files: { rel: string; file: F }[];
}

/** Walk dropped entries: every file and folder under them (readEntries is paged: read to the end). */
export async function walkEntries<F>(
  roots: readonly WalkEntry<F>[],
  maxEntries = 100_000,
): Promise<Walked<F>> {
  const out: Walked<F> = { dirs: [], files: [] };
  const stack: { entry: WalkEntry<F>; rel: string }[] = roots.map((entry) => ({ entry, rel: entry.name }));
  let seen = 0;
  while (stack.length > 0) {
    const next = stack.shift();
    if (!next) break;
    seen += 1;
    if (seen > maxEntries) throw new Error(`more than ${maxEntries} entries dropped`);
    const { entry, rel } = next;
    if (entry.isFile && entry.file) {
      const read = entry.file.bind(entry);
      const file = await new Promise<F>((ok, fail) => read(ok, fail));
      out.files.push({ rel, file });
    } else if (entry.isDirectory && entry.createReader) {
      out.dirs.push(rel);
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise<WalkEntry<F>[]>((ok, fail) => reader.readEntries(ok, fail));
        if (batch.length === 0) break;
        for (const child of batch) stack.push({ entry: child, rel: `${rel}/${child.name}` });
      }
    }
  }
  return out;
}

/** The folders a list of relative file paths needs (from `<input webkitdirectory>`), parents first. */
export function dirsOf(relPaths: readonly string[]): string[] {
  const set = new Set<string>();
  for (const rel of relPaths) {
    const parts = rel.split('/').filter(Boolean);
    for (let i = 1; i < parts.length; i += 1) set.add(parts.slice(0, i).join('/'));
  }
  return [...set].sort((a, b) => a.split('/').length - b.split('/').length || a.localeCompare(b));
}

export interface UploadProgress {
  size: number;
  loaded: number;
  state: 'queued' | 'uploading' | 'done' | 'failed' | 'cancelled';
}

/** Bytes done of the whole batch (a finished file counts whole, a failed or cancelled one not at all). */
export function totalProgress(items: readonly UploadProgress[]): {
  loaded: number;
  size: number;
  percent: number;
} {
  let size = 0;
  let loaded = 0;
  for (const i of items) {
    if (i.state === 'failed' || i.state === 'cancelled') continue;
    size += i.size;
    loaded += i.state === 'done' ? i.size : Math.min(i.loaded, i.size);
  }
  return { loaded, size, percent: size === 0 ? 100 : Math.floor((loaded / size) * 100) };
}
