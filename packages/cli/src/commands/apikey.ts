/** `ctrl-alt-play apikey create --email E --name N`: an API key for that user, shown once. */
import { openPanelAdmin } from '@cap/panel';
import { isCodedError } from '@cap/protocol';
import { flags, panelConfigOrExit } from './panel.ts';

export const summary = 'API keys: `apikey create --email E --name N`';
const USAGE = 'usage: ctrl-alt-play apikey create --email E --name N\n';

export async function run(args: string[]): Promise<number | undefined> {
  const [sub, ...rest] = args;
  const f = flags(rest);
  if (sub !== 'create' || !f.email || !f.name) {
    process.stderr.write(USAGE);
    return 2;
  }
  const config = panelConfigOrExit(process.env, USAGE);
  if (typeof config === 'number') return config;
  const admin = await openPanelAdmin(config);
  try {
    const k = await admin.createApiKey(f.email, f.name);
    process.stdout.write(`${k.key}\n`);
    process.stderr.write('(shown once; send it as Authorization: Bearer <key>)\n');
    return 0;
  } catch (e) {
    if (!isCodedError(e)) throw e;
    process.stderr.write(`${e.code}: ${e.message}\n`);
    return 1;
  } finally {
    await admin.close();
  }
}
