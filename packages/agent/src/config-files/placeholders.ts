/**
 * The values a config-file rewrite can use, and `{{…}}` placeholder filling, as the Panel
 * (EggConfigurationService) and Wings resolve them together.
 */

export interface ConfigContext {
  /** the primary allocation */
  serverPort?: number;
  serverIp?: string;
  memoryMiB?: number;
  /** the server's variables by env name (original case) */
  environment: Readonly<Record<string, string>>;
  /** the host address containers reach the Agent's node by (Wings: the docker network gateway) */
  dockerInterface?: string;
}

const PLACEHOLDER = /\{\{\s*([\w.-]+)\s*\}\}/g;

function envValue(env: Readonly<Record<string, string>>, name: string): string {
  if (Object.hasOwn(env, name)) return env[name] ?? '';
  // Pelican upper-cases env names on import; an egg may still say {{env.discord_token}}.
  const upper = name.toUpperCase();
  for (const [k, v] of Object.entries(env)) if (k.toUpperCase() === upper) return v;
  return '';
}

/** One placeholder key → its value; unknown keys give '' as in the Panel's Arr::get(…, ''). */
export function lookupPlaceholder(key: string, ctx: ConfigContext): string {
  switch (key) {
    case 'server.build.default.port':
    case 'server.allocations.default.port':
      return ctx.serverPort === undefined ? '' : String(ctx.serverPort);
    case 'server.build.default.ip':
    case 'server.allocations.default.ip':
      return ctx.serverIp ?? '0.0.0.0';
    case 'server.build.memory':
    case 'server.build.memory_limit':
      return ctx.memoryMiB === undefined ? '' : String(ctx.memoryMiB);
    case 'config.docker.interface':
      return ctx.dockerInterface ?? '172.18.0.1';
  }
  for (const prefix of ['server.build.env.', 'server.environment.', 'env.']) {
    if (key.startsWith(prefix)) return envValue(ctx.environment, key.slice(prefix.length));
  }
  // A bare {{QUERY_PORT}} is an egg bug; the variable is what its author meant.
  if (!key.includes('.')) return envValue(ctx.environment, key);
  return '';
}

/** Fill every `{{key}}`; `escape` is applied to each inserted value (e.g. `$` → `$$` for a regex replacement). */
export function fillPlaceholders(
  value: string,
  ctx: ConfigContext,
  escapeValue?: (s: string) => string,
): string {
  return value.replace(PLACEHOLDER, (_m, key: string) => {
    const v = lookupPlaceholder(key, ctx);
    return escapeValue ? escapeValue(v) : v;
  });
}

/** A `find` value: a scalar, or an {if_value: replacement} map (`regex:` keys allowed). */
export type FindValue = string | number | boolean | null | Record<string, unknown>;

export type Decision = { set: true; value: string | number | boolean } | { set: false };

/**
 * What to write for a key whose current value is `current` (undefined when absent).
 * A map applies its first matching entry: a literal key must equal the current value; a
 * `regex:` key must match it, and the replacement may use `$1`… back-references.
 */
export function decide(spec: unknown, current: string | undefined, ctx: ConfigContext): Decision {
  if (spec === null || spec === undefined) return { set: true, value: '' };
  if (typeof spec === 'number' || typeof spec === 'boolean') return { set: true, value: spec };
  if (typeof spec === 'string') return { set: true, value: fillPlaceholders(spec, ctx) };
  if (typeof spec !== 'object' || Array.isArray(spec)) return { set: false };
  for (const [ifValue, replacement] of Object.entries(spec as Record<string, unknown>)) {
    if (current === undefined) break;
    const repl = typeof replacement === 'string' ? replacement : String(replacement);
    if (ifValue.startsWith('regex:')) {
      let re: RegExp;
      try {
        re = new RegExp(ifValue.slice('regex:'.length), 'g');
      } catch {
        continue;
      }
      if (!new RegExp(re.source).test(current)) continue;
      return {
        set: true,
        value: current.replace(
          re,
          fillPlaceholders(repl, ctx, (s) => s.replaceAll('$', '$$$$')),
        ),
      };
    }
    if (current === ifValue) {
      return {
        set: true,
        value: typeof replacement === 'string' ? fillPlaceholders(replacement, ctx) : repl,
      };
    }
  }
  return { set: false };
}
