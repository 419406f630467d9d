/**
 * Client-side checks for the server forms. They mirror the protocol's zod rules so the user sees
 * the problem beside the field; the Panel validates again and its error code is shown as well.
 */

export interface EnvRow {
  key: string;
  value: string;
}
export interface PortRow {
  container: string;
  host: string;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const SIZE = /^\s*\d+(\.\d+)?\s*([kmgt]i?b?|b)?\s*$/i;
const CPU = /^\d+(\.\d+)?$/;
const PORT_KEY = /^\d{1,5}(\/(tcp|udp))?$/;

/** One message per row index that has a problem. */
export function validateEnvRows(rows: readonly EnvRow[]): Map<number, string> {
  const errors = new Map<number, string>();
  const seen = new Map<string, number>();
  rows.forEach((r, i) => {
    const key = r.key.trim();
    if (!key && !r.value) return; // blank rows are ignored
    if (!key) errors.set(i, 'Name is required');
    else if (!ENV_NAME.test(key)) errors.set(i, 'Use letters, digits and _; must not start with a digit');
    else if (seen.has(key)) errors.set(i, `Duplicate of row ${(seen.get(key) ?? 0) + 1}`);
    else if (r.value.length > 32 * 1024) errors.set(i, 'Value is longer than 32 KiB');
    if (key) seen.set(key, seen.get(key) ?? i);
  });
  return errors;
}

export function envRowsToRecord(rows: readonly EnvRow[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const r of rows) if (r.key.trim()) out[r.key.trim()] = r.value;
  return out;
}

export function recordToEnvRows(env: Record<string, string> | null | undefined): EnvRow[] {
  return Object.entries(env ?? {}).map(([key, value]) => ({ key, value }));
}

export function validatePortRows(rows: readonly PortRow[]): Map<number, string> {
  const errors = new Map<number, string>();
  const seen = new Set<string>();
  rows.forEach((r, i) => {
    const c = r.container.trim();
    const h = r.host.trim();
    if (!c && !h) return;
    if (!PORT_KEY.test(c) || Number(c.split('/')[0]) < 1 || Number(c.split('/')[0]) > 65535)
      errors.set(i, 'Container port like 25565, 25565/tcp or 27960/udp');
    else if (!/^\d{1,5}$/.test(h) || Number(h) < 1 || Number(h) > 65535)
      errors.set(i, 'Host port must be 1–65535');
    else if (seen.has(c)) errors.set(i, 'Duplicate container port');
    seen.add(c);
  });
  return errors;
}

export function portRowsToRecord(rows: readonly PortRow[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rows) if (r.container.trim()) out[r.container.trim()] = Number(r.host.trim());
  return out;
}

export interface LimitsInput {
  memory: string;
  cpu: string;
  disk: string;
}

export function validateLimits(l: LimitsInput): Partial<Record<keyof LimitsInput, string>> {
  const e: Partial<Record<keyof LimitsInput, string>> = {};
  if (l.memory.trim() && !SIZE.test(l.memory)) e.memory = 'A size like 512m, 2g or a number of MiB';
  if (l.disk.trim() && !SIZE.test(l.disk)) e.disk = 'A size like 512m, 2g or a number of MiB';
  if (l.cpu.trim() && !CPU.test(l.cpu.trim())) e.cpu = 'CPU cores, e.g. 1 or 1.5';
  return e;
}

/** Only the limits the user filled in; empty means "leave unlimited". */
export function limitsToBody(l: LimitsInput): Record<string, string> {
  const out: Record<string, string> = {};
  if (l.memory.trim()) out['memory'] = l.memory.trim();
  if (l.cpu.trim()) out['cpu'] = l.cpu.trim();
  if (l.disk.trim()) out['disk'] = l.disk.trim();
  return out;
}

export function limitsToInput(
  l: { memory?: unknown; cpu?: unknown; disk?: unknown } | null | undefined,
): LimitsInput {
  const s = (v: unknown) => (v === undefined || v === null || v === 0 ? '' : String(v));
  return { memory: s(l?.memory), cpu: s(l?.cpu), disk: s(l?.disk) };
}

const SERVER_NAME = /^.{1,191}$/s;
export function validateServerName(name: string): string | null {
  if (!name.trim()) return 'Name is required';
  if (!SERVER_NAME.test(name.trim())) return 'At most 191 characters';
  return null;
}
