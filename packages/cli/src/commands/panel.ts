/**
 * `ctrl-alt-play panel`: the Panel only (PORT, HOST, DATA_DIR, DATABASE_URL, PANEL_URL,
 * ADMIN_EMAIL/ADMIN_PASSWORD…). SIGTERM/SIGINT close it cleanly.
 */
import { loadPanelConfig, type PanelConfig, startPanel } from '@cap/panel';
import { isCodedError } from '@cap/protocol';

export const summary = 'run the Panel only';

export const PANEL_ENV_HELP = `  PORT            HTTP port (default 8080)
  HOST            listen address (default 0.0.0.0)
  DATA_DIR        data directory: panel.sqlite, local agent credentials (default ./data)
  DATABASE_URL    postgres://… to use PostgreSQL instead of SQLite
  PANEL_URL       the address browsers and Agents use (default http://localhost:PORT)
  PANEL_TLS_CERT, PANEL_TLS_KEY   PEM files: serve HTTPS/WSS (default URL https://localhost:PORT)
  ADMIN_EMAIL, ADMIN_PASSWORD   create this owner on first run (else a one-time setup link is printed)
  LOG_LEVEL       fatal|error|warn|info|debug|trace|silent (default info)
`;

/** Parse the Panel config, printing CONFIG_INVALID with every bad key. */
export function panelConfigOrExit(
  env: Record<string, string | undefined>,
  usage: string,
): PanelConfig | number {
  try {
    return loadPanelConfig(env);
  } catch (e) {
    if (isCodedError(e)) {
      process.stderr.write(`${e.code}: ${e.message}\n\n${usage}`);
      return 2;
    }
    throw e;
  }
}

export function loginHint(config: PanelConfig, setupUrl: string | undefined): string {
  if (setupUrl) return `Create the first owner: open ${setupUrl}  (one-time link)`;
  if (config.adminEmail) return `Log in as ${config.adminEmail} with ADMIN_PASSWORD.`;
  return 'Log in with your account (create one: ctrl-alt-play user create --email E --password P --role owner).';
}

/** `--key value` / `--key=value` pairs. */
export function flags(args: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? '';
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    if (eq > 0) out[a.slice(2, eq)] = a.slice(eq + 1);
    else if (i + 1 < args.length) out[a.slice(2)] = args[++i] ?? '';
  }
  return out;
}

export function waitForSignal(): Promise<string> {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
}

export async function run(args: string[]): Promise<number | undefined> {
  const usage = `usage: ctrl-alt-play panel\n\nConfigured by environment variables:\n${PANEL_ENV_HELP}`;
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(usage);
    return 0;
  }
  const config = panelConfigOrExit(process.env, usage);
  if (typeof config === 'number') return config;
  const panel = await startPanel(config);
  process.stderr.write(
    `\nPanel: ${config.publicUrl}  (listening on ${panel.url})\n${loginHint(config, panel.app.setupUrl)}\n\n`,
  );
  const signal = await waitForSignal();
  process.stderr.write(`panel: ${signal}, shutting down\n`);
  await panel.stop();
  return 0;
}
