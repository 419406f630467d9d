/** `ctrl-alt-play node create --name N`: prints the node's AGENT_SECRET once and the Agent command. */
import { openPanelAdmin } from '@cap/panel';
import { isCodedError } from '@cap/protocol';
import { flags, panelConfigOrExit } from './panel.ts';

export const summary = 'node admin: `node create --name N` (prints the AGENT_SECRET once)';
const USAGE = 'usage: ctrl-alt-play node create --name N\n';

export async function run(args: string[]): Promise<number | undefined> {
  const [sub, ...rest] = args;
  const f = flags(rest);
  if (sub !== 'create' || !f.name) {
    process.stderr.write(USAGE);
    return 2;
  }
  const config = panelConfigOrExit(process.env, USAGE);
  if (typeof config === 'number') return config;
  const admin = await openPanelAdmin(config);
  try {
    const n = await admin.createNode(f.name);
    process.stdout.write(
      `NODE_ID=${n.nodeId}\nAGENT_SECRET=${n.agentSecret}\n\nOn the node, run:\n  ${n.command}\n(the secret is shown once)\n`,
    );
    return 0;
  } catch (e) {
    if (!isCodedError(e)) throw e;
    process.stderr.write(`${e.code}: ${e.message}\n`);
    return 1;
  } finally {
    await admin.close();
  }
}
