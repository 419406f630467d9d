/**
 * The mod manager's listing: what is in a template's mod folders, one page at a time, with the
 * metadata each format carries. Names are read for every folder (no stat), only the page's
 * entries are stat'ed and opened; every open goes through the file API's root confinement
 * (`resolveInside` + `openInside`: no symlink leads out). Disabling is a rename to
 * `<name>.disabled`, done by `rename_file`, so this module only reads.
 */
import { constants } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import {
  CodedError,
  type ListModsData,
  type ListModsPayload,
  MOD_DISABLED_SUFFIX,
  type ModEntry,
  type ModFolder,
  type ModKind,
} from '@cap/protocol';
import { openInside, resolveInside } from '../filesystem/filesystem.ts';
import { jarMeta, type MetaResult, peMeta } from './metadata.ts';

/** Entries of one folder considered at most (a folder of 100k files is not a mod folder). */
const FOLDER_MAX_ENTRIES = 20_000;
/** A file bigger than this is listed without opening it (a jar of 2 GB is not read). */
const OPEN_MAX_BYTES = 512 * 1024 * 1024;

interface Candidate {
  folder: ModFolder;
  /** the name on disk */
  file: string;
  dir: boolean;
}

/** Which entries of a folder a game of this kind loads (or would, once enabled). */
export function countsAsMod(kind: ModKind, name: string, dir: boolean): boolean {
  const base = name.endsWith(MOD_DISABLED_SUFFIX) ? name.slice(0, -MOD_DISABLED_SUFFIX.length) : name;
  if (base === '' || base.startsWith('.')) return false;
  const ext = path.extname(base).toLowerCase();
  switch (kind) {
    case 'bukkit':
    case 'fabric':
    case 'forge':
      return !dir && ext === '.jar';
    case 'bepinex':
      // a plugin is a DLL, or a folder holding one (Thunderstore packages unpack that way)
      return dir || ext === '.dll';
    case 'source':
      // metamod/sourcemod are folders; a `.vdf` loads a plugin
      return dir || ext === '.vdf';
    default:
      return true;
  }
}

async function folderEntries(root: string, folder: ModFolder): Promise<Candidate[] | null> {
  let real: string;
  try {
    real = await resolveInside(root, folder.path);
  } catch (e) {
    if (e instanceof CodedError && e.code === 'FILE_NOT_FOUND') return null;
    throw e;
  }
  const fh = await openInside(root, real, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    const names = await readdir(`/proc/self/fd/${fh.fd}`, { withFileTypes: true });
    return names
      .slice(0, FOLDER_MAX_ENTRIES)
      .filter((d) => (d.isFile() || d.isDirectory()) && countsAsMod(folder.kind, d.name, d.isDirectory()))
      .map((d) => ({ folder, file: d.name, dir: d.isDirectory() }))
      .sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  } finally {
    await fh.close();
  }
}

/** The first DLL inside a BepInEx plugin folder (one level), for its version resource. */
async function firstDll(root: string, rel: string): Promise<string | null> {
  const real = await resolveInside(root, rel);
  const fh = await openInside(root, real, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    const names = await readdir(`/proc/self/fd/${fh.fd}`, { withFileTypes: true });
    const dll = names.find((d) => d.isFile() && d.name.toLowerCase().endsWith('.dll'));
    return dll ? `${rel}/${dll.name}` : null;
  } finally {
    await fh.close();
  }
}

async function metaOf(root: string, c: Candidate, rel: string, size: number): Promise<MetaResult> {
  const kind = c.folder.kind;
  let target = rel;
  if (c.dir) {
    if (kind !== 'bepinex') return { meta: null };
    const dll = await firstDll(root, rel).catch(() => null);
    if (!dll) return { meta: null, problem: 'no DLL in the folder' };
    target = dll;
  }
  const base = target.endsWith(MOD_DISABLED_SUFFIX) ? target.slice(0, -MOD_DISABLED_SUFFIX.length) : target;
  const ext = path.extname(base).toLowerCase();
  if (ext !== '.jar' && ext !== '.dll') return { meta: null };
  let real: string;
  try {
    real = await resolveInside(root, target);
  } catch (e) {
    return { meta: null, problem: (e as Error).message };
  }
  const fh = await openInside(root, real, constants.O_RDONLY).catch((e: Error) => e);
  if (fh instanceof Error) return { meta: null, problem: fh.message };
  try {
    const st = await fh.stat();
    if (!st.isFile()) return { meta: null, problem: 'not a regular file' };
    if (Math.max(st.size, size) > OPEN_MAX_BYTES) return { meta: null, problem: 'too big to inspect' };
    return ext === '.jar' ? await jarMeta(fh.fd, kind) : await peMeta(fh, st.size);
  } finally {
    await fh.close();
  }
}

/** One page of the mods in `folders`, sorted by folder (in the template's order) then name. */
export async function listMods(root: string, p: ListModsPayload): Promise<ListModsData> {
  const all: Candidate[] = [];
  const missing: string[] = [];
  for (const folder of p.folders) {
    const entries = await folderEntries(root, folder);
    if (entries === null) missing.push(folder.path);
    else all.push(...entries);
  }
  const page = all.slice(p.offset, p.offset + p.limit);
  const mods: ModEntry[] = [];
  for (const c of page) {
    const rel = `${c.folder.path}/${c.file}`;
    const st = await lstat(await resolveInside(root, rel)).catch(() => null);
    if (!st) continue; // vanished meanwhile
    const { meta, problem } = await metaOf(root, c, rel, st.size);
    mods.push({
      folder: c.folder.path,
      kind: c.folder.kind,
      file: c.file,
      path: rel,
      enabled: !c.file.endsWith(MOD_DISABLED_SUFFIX),
      type: c.dir ? 'directory' : 'file',
      size: c.dir ? 0 : st.size,
      modifiedAt: st.mtime.toISOString(),
      meta,
      ...(problem ? { problem: problem.slice(0, 256) } : {}),
    });
  }
  return { mods, total: all.length, offset: p.offset, limit: p.limit, missing };
}
