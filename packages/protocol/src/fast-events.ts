/**
 * Hand-written checks for the two events every Agent sends each second for each server
 * (`server_log`, `resource_update`): the zod schemas in messages.ts stay the definition; these
 * accept a subset of what they accept and build the same output (known keys only, unknown keys
 * stripped as zod's z.object does). A payload they do not accept goes to zod, which gives the
 * verdict and its message, so a rejection here is never wrong, only slower.
 * fast-events.test.ts feeds both many valid and hostile payloads and asserts that.
 */

const SERVER_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const hasOwn = Object.hasOwn;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function num(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max;
}
function str(v: unknown, max: number): v is string {
  return typeof v === 'string' && v.length <= max;
}
/** a key zod reads: absent, or (own) present; inherited keys send the payload to zod */
function field(o: Record<string, unknown>, key: string): unknown {
  if (hasOwn(o, key)) return o[key];
  return key in o ? INHERITED : undefined;
}
const INHERITED = Symbol('inherited');
const BYTES_MAX = 2 ** 53;

/** server_log's data, or undefined (then ask zod). */
export function fastServerLog(v: unknown): Record<string, unknown> | undefined {
  if (!isRecord(v)) return undefined;
  const serverId = field(v, 'serverId');
  const message = field(v, 'message');
  if (typeof serverId !== 'string' || !SERVER_ID.test(serverId) || typeof message !== 'string') return;
  const out: Record<string, unknown> = { serverId };
  const logLevel = field(v, 'logLevel');
  if (logLevel === INHERITED) return;
  if (logLevel !== undefined) {
    if (logLevel !== 'DEBUG' && logLevel !== 'INFO' && logLevel !== 'WARN' && logLevel !== 'ERROR') return;
    out.logLevel = logLevel;
  } else if (hasOwn(v, 'logLevel')) out.logLevel = undefined;
  out.message = message;
  const stream = field(v, 'stream');
  if (stream === INHERITED) return;
  if (stream !== undefined) {
    if (stream !== 'stdout' && stream !== 'stderr' && stream !== 'daemon') return;
    out.stream = stream;
  } else if (hasOwn(v, 'stream')) out.stream = undefined;
  const seq = field(v, 'seq');
  if (seq === INHERITED) return;
  if (seq !== undefined) {
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq <= 0) return;
    out.seq = seq;
  } else if (hasOwn(v, 'seq')) out.seq = undefined;
  const epoch = field(v, 'epoch');
  if (epoch === INHERITED) return;
  if (epoch !== undefined) {
    if (typeof epoch !== 'string' || epoch.length < 1 || epoch.length > 64) return;
    out.epoch = epoch;
  } else if (hasOwn(v, 'epoch')) out.epoch = undefined;
  return out;
}

function usage(v: unknown): Record<string, unknown> | undefined {
  if (!isRecord(v)) return;
  const used = field(v, 'used');
  const percentage = field(v, 'percentage');
  const usedBytes = field(v, 'usedBytes');
  const limitBytes = field(v, 'limitBytes');
  if (!str(used, 64) || !num(percentage, 0, 1e4)) return;
  if (!num(usedBytes, 0, BYTES_MAX) || !num(limitBytes, 0, BYTES_MAX)) return;
  return { used, percentage, usedBytes, limitBytes };
}

/** resource_update's data, or undefined (then ask zod). */
export function fastResourceUpdate(v: unknown): Record<string, unknown> | undefined {
  if (!isRecord(v)) return undefined;
  const serverId = field(v, 'serverId');
  const cpu = field(v, 'cpu');
  if (typeof serverId !== 'string' || !SERVER_ID.test(serverId) || !num(cpu, 0, 1e5)) return;
  const memory = usage(field(v, 'memory'));
  if (!memory) return;
  const network = field(v, 'network');
  if (!isRecord(network)) return;
  const rx = field(network, 'rx');
  const tx = field(network, 'tx');
  if (!num(rx, 0, BYTES_MAX) || !num(tx, 0, BYTES_MAX)) return;
  const disk = usage(field(v, 'disk'));
  if (!disk) return;
  const uptime = field(v, 'uptime');
  if (!num(uptime, 0, 1e10)) return;
  return { serverId, cpu, memory, network: { rx, tx }, disk, uptime };
}

/** the fast check for an event name, if it has one */
export function fastEventData(
  name: string,
): ((v: unknown) => Record<string, unknown> | undefined) | undefined {
  if (name === 'server_log') return fastServerLog;
  if (name === 'resource_update') return fastResourceUpdate;
  return undefined;
}
