/**
 * The path rules every archive entry must pass, on the way in (extract, verify) and on the way
 * out (create skips what extract would refuse, so our own backups always restore).
 */
import { CodedError } from '@cap/protocol';

/** NAME_MAX and PATH_MAX of Linux: longer names could never be created anyway. */
const NAME_MAX = 255;
const PATH_MAX = 4096;
const DEPTH_MAX = 256;

function unsafe(message: string): CodedError {
  return new CodedError('ARCHIVE_UNSAFE', message);
}

/**
 * The components of an entry's path, relative to the root: refused (ARCHIVE_UNSAFE) when absolute,
 * with a drive letter, with `..`, with a NUL byte, or past Linux's name and path limits. `.` and
 * empty components are dropped, so `./a//b/` is `['a', 'b']` and `./` is `[]` (the root itself).
 */
export function entryParts(p: string): string[] {
  // the message's text only when there is one (this runs once per entry)
  const shown = () => JSON.stringify(p.slice(0, 200));
  if (p.includes('\0')) throw unsafe(`entry ${shown()} has a NUL byte`);
  if (p.startsWith('/') || /^[A-Za-z]:[\\/]/.test(p)) throw unsafe(`entry ${shown()} has an absolute path`);
  // a UTF-16 unit is at most 3 bytes of UTF-8: short strings need no count
  if (p.length * 3 > PATH_MAX && Buffer.byteLength(p) > PATH_MAX)
    throw unsafe(`entry ${shown()}… is longer than ${PATH_MAX} bytes`);
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  for (const s of parts) {
    if (s === '..') throw unsafe(`entry ${shown()} climbs out with ..`);
    if (s.length * 3 > NAME_MAX && Buffer.byteLength(s) > NAME_MAX)
      throw unsafe(`entry ${shown()} has a name over ${NAME_MAX} bytes`);
  }
  if (parts.length > DEPTH_MAX) throw unsafe(`entry ${shown()} is nested deeper than ${DEPTH_MAX}`);
  return parts;
}

/**
 * Whether a symbolic link at `parts` (its components under the root) with this target stays
 * inside the root whatever the links it goes through point to: not absolute, `..` only as
 * leading components and no more of them than the link's own depth (its parent directories are
 * real ones: extraction never goes through a link), and none after. Checking the text with
 * `path.normalize` is not enough: with `self -> .`, `self/../x` is `x` as text but climbs out.
 */
export function linkStaysInside(parts: readonly string[], target: string): boolean {
  if (target === '' || target.includes('\0') || target.startsWith('/')) return false;
  if (Buffer.byteLength(target) > PATH_MAX) return false;
  const t = target.split('/').filter((s) => s !== '' && s !== '.');
  let up = 0;
  while (up < t.length && t[up] === '..') up++;
  if (t.slice(up).includes('..')) return false;
  return up <= parts.length - 1;
}
