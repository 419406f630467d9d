import { lstat, mkdir, realpath } from 'node:fs/promises';
import { isAbsolute, join, normalize, relative, sep } from 'node:path';
import { CodedError } from '@cap/protocol';

/**
 * A config file's name (eggs write `server.properties`, `./cfg/x.ini` or
 * `/.local/share/…/server_config.sii`) → a path inside the server root. `..` that leaves the root
 * and any symbolic link on the way are refused with PATH_OUTSIDE_ROOT: the root is written by the
 * game server, which must not be able to point the Agent's writes elsewhere.
 */
export async function resolveConfigPath(root: string, name: string): Promise<string> {
  if (name.includes('\0'))
    throw new CodedError('PATH_OUTSIDE_ROOT', 'a path cannot contain NUL', { location: name });
  const rootReal = await realpath(root);
  const rel = normalize(name.replace(/\\/g, '/').replace(/^(\.?\/)+/, ''));
  const target = join(rootReal, rel);
  const back = relative(rootReal, target);
  if (back === '' || back === '.' || back.startsWith(`..${sep}`) || back === '..' || isAbsolute(back)) {
    throw new CodedError('PATH_OUTSIDE_ROOT', `${name} is outside the server root`, { location: name });
  }
  let cur = rootReal;
  const parts = back.split(sep);
  for (let i = 0; i < parts.length; i++) {
    cur = join(cur, parts[i]!);
    let st: Awaited<ReturnType<typeof lstat>>;
    try {
      st = await lstat(cur);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') break;
      throw e;
    }
    if (st.isSymbolicLink())
      throw new CodedError('PATH_OUTSIDE_ROOT', `${name} goes through a symbolic link`, { location: name });
    const last = i === parts.length - 1;
    if (!last && !st.isDirectory())
      throw new CodedError(
        'CONFIG_INVALID',
        `${name}: ${parts.slice(0, i + 1).join('/')} is not a directory`,
        {
          location: name,
        },
      );
    if (last && !st.isFile())
      throw new CodedError('CONFIG_INVALID', `${name} is not a regular file`, { location: name });
  }
  return target;
}

/** Create the parent directories of a resolved path, then check again that nothing escaped. */
export async function ensureParent(root: string, target: string): Promise<void> {
  const rootReal = await realpath(root);
  const parent = join(target, '..');
  await mkdir(parent, { recursive: true });
  const parentReal = await realpath(parent);
  if (parentReal !== rootReal && !parentReal.startsWith(rootReal + sep))
    throw new CodedError('PATH_OUTSIDE_ROOT', `${target} is outside the server root`);
}
