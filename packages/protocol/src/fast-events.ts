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

const DIGIT0 = 48;
/** the two digits at i as a number, or -1 */
function two(s: string, i: number): number {
  const a = s.charCodeAt(i) - DIGIT0;
  const b = s.charCodeAt(i + 1) - DIGIT0;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
}
const MONTH_DAYS = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * What zod's `z.iso.datetime({ offset: true })` accepts, without its regex:
 * YYYY-MM-DDTHH:MM:SS[.d+](Z|±HH:MM), a real calendar day (29 February in Gregorian leap years
 * only), hours 00–23, minutes and seconds 00–59 (no leap second), offset hours 00–23.
 */
export function isIsoDateTime(s: string): boolean {
  const n = s.length;
  if (n < 20) return false;
  const c1 = two(s, 0);
  const c2 = two(s, 2);
  if (c1 < 0 || c2 < 0 || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45 || s.charCodeAt(10) !== 84)
    return false;
  const month = two(s, 5);
  const day = two(s, 8);
  if (month < 1 || month > 12 || day < 1 || day > (MONTH_DAYS[month] as number)) return false;
  if (month === 2 && day === 29 && !(c2 === 0 ? c1 % 4 === 0 : c2 % 4 === 0)) return false;
  const hh = two(s, 11);
  const mm = two(s, 14);
  const ss = two(s, 17);
  if (s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58) return false;
  if (hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 59) return false;
  let i = 19;
  if (s.charCodeAt(i) === 46) {
    i++;
    const from = i;
    while (i < n && s.charCodeAt(i) >= DIGIT0 && s.charCodeAt(i) <= DIGIT0 + 9) i++;
    if (i === from) return false;
  }
  if (i === n - 1) return s.charCodeAt(i) === 90;
  if (i !== n - 6) return false;
  const sign = s.charCodeAt(i);
  if (sign !== 43 && sign !== 45) return false;
  const oh = two(s, i + 1);
  const om = two(s, i + 4);
  return s.charCodeAt(i + 3) === 58 && oh >= 0 && oh <= 23 && om >= 0 && om <= 59;
}

/**
 * An event's envelope (messages.ts EventEnvelope), or undefined (then ask zod): the same output
 * (known keys in the schema's order, unknown keys stripped). Accepts a subset: an optional key
 * present with the value undefined, an inherited key or an absent `data` goes to zod.
 */
export function fastEventEnvelope(v: unknown): Record<string, unknown> | undefined {
  if (!isRecord(v)) return undefined;
  // the required keys own, the optional ones own or not there at all (not inherited)
  if (!hasOwn(v, 'type') || !hasOwn(v, 'timestamp') || !hasOwn(v, 'event') || !hasOwn(v, 'data')) return;
  const hasId = hasOwn(v, 'id');
  const hasAgent = hasOwn(v, 'agentId');
  const hasServer = hasOwn(v, 'serverId');
  if ((!hasId && 'id' in v) || (!hasAgent && 'agentId' in v) || (!hasServer && 'serverId' in v)) return;
  const { id, timestamp, agentId, serverId, type, event } = v;
  if (type !== 'event' || typeof event !== 'string' || event.length < 1 || event.length > 64) return;
  if (typeof timestamp !== 'string' || !isIsoDateTime(timestamp)) return;
  if (v.data === undefined) return;
  const out: Record<string, unknown> = {};
  if (hasId) {
    if (typeof id !== 'string' || id.length < 1 || id.length > 128) return;
    out.id = id;
  }
  out.timestamp = timestamp;
  if (hasAgent) {
    if (!str(agentId, 128)) return;
    out.agentId = agentId;
  }
  if (hasServer) {
    if (typeof serverId !== 'string' || !SERVER_ID.test(serverId)) return;
    out.serverId = serverId;
  }
  out.type = type;
  out.event = event;
  out.data = v.data;
  return out;
}
