/**
 * The ustar header of create, written straight into the block for the common entry: the same
 * bytes node-tar's Header.encode writes (tar-header.test.ts compares the two), without its
 * per-field string building (`new Array(n).join('0')`, `str + NULLS`, a Buffer.write per field,
 * splitPrefix's path.parse): node-tar's encode was 178 ms of main-thread CPU for the 20k headers
 * of bench/backup.ts, a sixth of the whole tar.zst create. Anything else (a path of 100 bytes or
 * more, which node-tar splits into prefix and name; a character past ASCII, which node-tar
 * always puts in a pax header; a number too large for its octal field) returns false, and the
 * caller encodes it with node-tar's Header and Pax as before.
 */

/** type flags of the entries create writes */
export const TYPE_FILE = 0x30;
export const TYPE_HARDLINK = 0x31;
export const TYPE_SYMLINK = 0x32;
export const TYPE_DIRECTORY = 0x35;

const MAX8 = 0o7777777;
const MAX12 = 0o77777777777;
const USTAR = Buffer.from('ustar\u000000', 'latin1');

/**
 * node-tar's encNumber for a number that fits: octal digits zero-padded to `size - 2`, then a
 * space and a NUL (or `size - 1` digits and a NUL). `n` is a non-negative integer ≤ the field's max.
 */
function octal(b: Buffer, off: number, size: number, n: number): void {
  let i = off + size - 1;
  b[i] = 0;
  // digits from the right
  let digits = 0;
  let v = n;
  do {
    digits++;
    v = Math.floor(v / 8);
  } while (v > 0);
  let end: number;
  if (digits === size - 1) end = i;
  else {
    b[--i] = 0x20;
    end = i;
  }
  v = n;
  for (let p = end - 1; p >= off; p--) {
    b[p] = 0x30 + (v % 8);
    v = Math.floor(v / 8);
  }
}

/** true when every character is ASCII (node-tar puts any other string in a pax header) */
function ascii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/**
 * Writes the header of an entry into `b[0, 512)` (which must be all zeros) when it fits plain
 * ustar as node-tar would write it; false (and `b` left in any state) when it does not.
 * `mtimeMs` as Stats gives it: the seconds written are those of `new Date(mtimeMs)`, as node-tar's.
 */
export function encodeUstar(
  b: Buffer,
  path: string,
  type: number,
  mode: number,
  uid: number,
  gid: number,
  size: number,
  mtimeMs: number,
  linkpath: string | undefined,
): boolean {
  // node-tar: a path of 100 bytes or more goes through splitPrefix (prefix + name)
  if (path.length >= 100 || !ascii(path)) return false;
  if (linkpath !== undefined && (linkpath.length > 100 || !ascii(linkpath))) return false;
  const mtime = Math.floor(mtimeMs / 1000);
  if (
    !(mode >= 0 && mode <= MAX8) ||
    !(uid >= 0 && uid <= MAX8) ||
    !(gid >= 0 && gid <= MAX8) ||
    !(size >= 0 && size <= MAX12) ||
    // node-tar compares the fractional seconds with the field's max
    !(mtimeMs >= 0 && mtimeMs / 1000 <= MAX12) ||
    !Number.isInteger(mode) ||
    !Number.isInteger(uid) ||
    !Number.isInteger(gid) ||
    !Number.isInteger(size)
  )
    return false;
  b.write(path, 0, 100, 'latin1');
  octal(b, 100, 8, mode);
  octal(b, 108, 8, uid);
  octal(b, 116, 8, gid);
  octal(b, 124, 12, size);
  octal(b, 136, 12, mtime);
  b[156] = type;
  if (linkpath !== undefined) b.write(linkpath, 157, 100, 'latin1');
  USTAR.copy(b, 257);
  // uname, gname: empty (NULs); devmajor, devminor: 0; prefix, atime, ctime: empty
  octal(b, 329, 8, 0);
  octal(b, 337, 8, 0);
  let sum = 8 * 0x20;
  for (let i = 0; i < 148; i++) sum += b[i] as number;
  for (let i = 156; i < 512; i++) sum += b[i] as number;
  octal(b, 148, 8, sum);
  return true;
}
