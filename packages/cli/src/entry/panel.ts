/**
 * The Panel on its own: the entry of dist/panel.mjs (`node dist/panel.mjs [--version|--help]`,
 * configured by the environment like `ctrl-alt-play panel`). The web UI, the built-in templates
 * and the API docs' assets sit beside the bundle (scripts/build-dist.ts puts them there).
 */
import { fileURLToPath } from 'node:url';
import { PANEL_VERSION } from '@cap/panel';
import { PROTOCOL_VERSION } from '@cap/protocol';
import { run } from '../commands/panel.ts';
import { versionLine } from './build-info.ts';

const beside = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const args = process.argv.slice(2).filter((a) => a !== 'panel');
if (args.includes('--version') || args.includes('-v')) {
  process.stdout.write(versionLine('ctrl-alt-play-panel', PANEL_VERSION, PROTOCOL_VERSION));
} else {
  process.env['PANEL_WEB_DIST'] ||= beside('./web');
  process.env['PANEL_BUILTIN_TEMPLATES_DIR'] ||= beside('./templates/builtin');
  process.exitCode = (await run(args)) ?? 0;
}
