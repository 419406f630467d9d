/** Startup templating and the container environment, as Wings builds them. */
import { type EggConfig, sizeToBytes } from '@cap/protocol';

const PLACEHOLDER = /\{\{\s*(?:server\.build\.env\.|env\.)?([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;

/**
 * The startup as Wings passes it in `STARTUP`: placeholders left for the image's entrypoint, which
 * turns `{{VAR}}` into `${VAR}` (the yolks' sed knows only that spelling, so the aliases
 * `{{env.VAR}}` and `{{server.build.env.VAR}}` are normalised to it).
 */
export function startupForEntrypoint(startup: string): string {
  return startup.replace(PLACEHOLDER, (_m, name: string) => `{{${name}}}`);
}

/**
 * The startup for `/bin/sh -c` in an image without an entrypoint: `{{VAR}}` → `${VAR}`. The shell
 * parses the line first and substitutes the values from the environment afterwards, so a value is
 * never parsed as shell code (no `;`, `$(…)` or backticks from a variable ever run).
 */
export function startupForShell(startup: string): string {
  // Inside '…' the shell expands nothing, yet eggs write `--requirepass '{{PASSWORD}}'` meaning the
  // value: there the placeholder becomes '"${VAR}"' (close the quote, expand quoted, reopen).
  let out = '';
  let quote: '' | "'" | '"' = '';
  for (let i = 0; i < startup.length; ) {
    const ch = startup[i] as string;
    if (ch === '{' && startup[i + 1] === '{') {
      PLACEHOLDER.lastIndex = i;
      const m = PLACEHOLDER.exec(startup);
      if (m && m.index === i) {
        out += quote === "'" ? `'"\${${m[1]}}"'` : `\${${m[1]}}`;
        i += m[0].length;
        continue;
      }
    }
    if (ch === '\\' && quote !== "'") {
      out += startup.slice(i, i + 2); // an escaped character never opens or closes a quote
      i += 2;
      continue;
    }
    if (ch === "'" && quote !== '"') quote = quote === "'" ? '' : "'";
    else if (ch === '"' && quote !== "'") quote = quote === '"' ? '' : '"';
    out += ch;
    i++;
  }
  return out;
}

/**
 * The variables every server gets besides its own (Wings: TZ, STARTUP, SERVER_MEMORY, SERVER_IP,
 * SERVER_PORT). The system values the Agent can derive (memory limit, primary port and its IP) win
 * over stale copies in the egg's environment, as Wings sets them from the allocation.
 */
export function serverEnvironment(
  egg: EggConfig,
  opts: { bindIp: string; timezone: string },
): Record<string, string> {
  const firstKey = Object.keys(egg.ports)[0];
  const firstPort = firstKey ? firstKey.split('/')[0] : undefined;
  const first = firstKey ? egg.ports[firstKey] : undefined;
  const hostIp = typeof first === 'object' ? first.hostIp : undefined;
  const memoryMiB = egg.limits.memory ? Math.round(sizeToBytes(egg.limits.memory) / 1024 ** 2) : 0;
  const own = egg.environment;
  const env: Record<string, string> = { TZ: opts.timezone, ...own };
  env.SERVER_MEMORY = memoryMiB > 0 ? String(memoryMiB) : own.SERVER_MEMORY || '0';
  env.SERVER_IP = hostIp ?? egg.bindIp ?? (own.SERVER_IP || opts.bindIp);
  if (firstPort) env.SERVER_PORT = firstPort;
  else if (!own.SERVER_PORT) delete env.SERVER_PORT;
  env.STARTUP = startupForEntrypoint(egg.startup || own.STARTUP || '');
  return env;
}

export function envList(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}
