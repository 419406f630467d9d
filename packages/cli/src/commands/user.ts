/** `ctrl-alt-play user create --email E --password P --role owner|admin|spectator` (on the database). */
import { openPanelAdmin } from '@cap/panel';
import { isCodedError } from '@cap/protocol';
import { flags, panelConfigOrExit } from './panel.ts';

export const summary = 'user admin: `user create --email E --password P --role owner|admin|spectator`';
const USAGE = 'usage: ctrl-alt-play user create --email E --password P --role owner|admin|spectator\n';

export async function run(args: string[]): Promise<number | undefined> {
  const [sub, ...rest] = args;
  const f = flags(rest);
  if (sub !== 'create' || !f.email || !f.password || !f.role) {
    process.stderr.write(USAGE);
    return 2;
  }
  const config = panelConfigOrExit(process.env, USAGE);
  if (typeof config === 'number') return config;
  const admin = await openPanelAdmin(config);
  try {
    const u = await admin.createUser({ email: f.email, password: f.password, role: f.role });
    process.stdout.write(`created ${u.role} ${u.email} (${u.id})\n`);
    return 0;
  } catch (e) {
    if (!isCodedError(e)) throw e;
    process.stderr.write(`${e.code}: ${e.message}\n`);
    return 1;
  } finally {
    await admin.close();
  }
}
