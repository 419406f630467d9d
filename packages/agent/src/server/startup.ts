/** Startup templating and the container environment, as Wings builds them. */
import { type EggConfig, sizeToBytes } from '@cap/protocol';

const PLACEHOLDER = /\{\{\s*(?:server\.build\.env\.|env\.)?([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;

/**
 * Fills `{{NAME}}` (also `{{env.NAME}}`, `{{server.build.env.NAME}}`) from env; unknown → ''.
 * The result only ever travels as one argv element or one env value, never through a host shell.
 */
export function fillStartup(startup: string, env: Record<string, string>): string {
  return startup.replace(PLACEHOLDER, (_m, name: string) => env[name] ?? '');
}

/** The variables every server gets besides its own (Wings: TZ, STARTUP, SERVER_MEMORY, SERVER_IP, SERVER_PORT). */
export function serverEnvironment(
  egg: EggConfig,
  opts: { bindIp: string; timezone: string },
): Record<string, string> {
  const firstKey = Object.keys(egg.ports)[0];
  const firstPort = firstKey ? firstKey.split('/')[0] : undefined;
  const first = firstKey ? egg.ports[firstKey] : undefined;
  const ip = (typeof first === 'object' ? first.hostIp : undefined) ?? egg.bindIp ?? opts.bindIp;
  const memoryMiB = egg.limits.memory ? Math.round(sizeToBytes(egg.limits.memory) / 1024 ** 2) : 0;
  const base: Record<string, string> = {
    TZ: opts.timezone,
    SERVER_MEMORY: String(memoryMiB),
    SERVER_IP: ip,
    ...(firstPort ? { SERVER_PORT: firstPort } : {}),
  };
  const merged = { ...base, ...egg.environment };
  return { ...merged, STARTUP: fillStartup(egg.startup, merged) };
}

export function envList(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}
