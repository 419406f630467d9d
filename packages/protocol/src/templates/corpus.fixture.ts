/** The egg corpus in shared/ (beside the repository) and what is known about it: test data only. */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CORPUS =
  process.env['EGG_CORPUS'] ?? fileURLToPath(new URL('../../../../../shared/eggs', import.meta.url));

export function eggFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name !== 'LICENSES') out.push(...eggFiles(p));
    } else if (/\.(json|ya?ml)$/.test(name) && name !== 'HISTORY_MANIFEST.json') out.push(p);
  }
  return out.sort();
}

/** The malformed files of the corpus and where each is broken (checked by eye). */
export const MALFORMED: Record<string, string> = {
  // `\w` inside a JSON string (the backslash)
  '_history/unparseable/pterodactyl__panel/2fef9efdae49/database/Seeders/eggs/rust/egg-rust.json':
    'line 124, column 41',
  // missing comma after "PTDL_v2"
  '_history/unparseable/pelican-eggs__minecraft/e895c6a1d97a/proxy/java/alwaysauth/egg-pterodactyl-always-auth.json':
    'line 4, column 9',
  // trailing comma before a stray `}`
  '_history/unparseable/pelican-eggs__generic/8ef57df40cb5/python/egg-python-generic.json':
    'line 169, column 9',
  // U+200B inside an empty list
  '_history/unparseable/pelican-eggs__games-steamcmd/3adb02c801b1/longvinter/egg-longvinter.json':
    'line 18, column 1',
  // a raw newline inside a string
  '_history/unparseable/pelican-eggs__games-steamcmd/5869dc1b4670/game_eggs/minecraft/java/forge/curseforge-generic/egg-curseforge-generic.json':
    'line 32, column 758',
};
