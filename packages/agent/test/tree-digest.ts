/** Every entry of a tree as `path type mode size sha256|target`, sorted: two trees are byte-identical when these are equal. */
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';

export async function treeDigest(
  root: string,
  opts: { skip?: (rel: string) => boolean } = {},
): Promise<string[]> {
  const out: string[] = [];
  const visit = async (rel: string) => {
    for (const name of (await readdir(path.join(root, rel))).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (opts.skip?.(r)) continue;
      const p = path.join(root, r);
      const st = await lstat(p);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out.push(`${r} link -> ${await readlink(p)}`);
      else if (st.isDirectory()) {
        out.push(`${r} dir ${mode}`);
        await visit(r);
      } else if (st.isFile())
        out.push(
          `${r} file ${mode} ${st.size} ${createHash('sha256')
            .update(await readFile(p))
            .digest('hex')}`,
        );
      else out.push(`${r} other`);
    }
  };
  await visit('');
  return out;
}
