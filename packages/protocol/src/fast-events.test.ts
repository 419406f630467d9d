import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fastEventEnvelope, fastResourceUpdate, fastServerLog, isIsoDateTime } from './fast-events.ts';
import { EventEnvelope, eventData, Timestamp } from './messages.ts';

const log = {
  serverId: 's1',
  logLevel: 'INFO',
  message: 'Done (1.2s)!',
  stream: 'stdout',
  seq: 7,
  epoch: 'e1',
};
const usage = { used: '1.5 GiB', percentage: 37.5, usedBytes: 1610612736, limitBytes: 4294967296 };
const stats = {
  serverId: 's1',
  cpu: 12.5,
  memory: usage,
  network: { rx: 10, tx: 20 },
  disk: usage,
  uptime: 60,
};

/** every payload: the base, then each key set to each hostile value, removed, and extra keys */
function variants(base: Record<string, unknown>): unknown[] {
  const hostile: unknown[] = [
    undefined,
    null,
    0,
    -1,
    0.5,
    1e4,
    1e4 + 1,
    1e5 + 1,
    1e10 + 1,
    2 ** 53,
    2 ** 53 + 2,
    Number.MAX_SAFE_INTEGER,
    Number.MAX_SAFE_INTEGER + 1,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    -0,
    '',
    'x',
    '12',
    'a'.repeat(64),
    'a'.repeat(65),
    'é'.repeat(64),
    'x'.repeat(1 << 20),
    'bad id',
    '-s',
    'INFO',
    'info',
    'daemon',
    'stdin',
    true,
    [],
    ['s1'],
    {},
    { ...usage },
    { rx: 1, tx: 2 },
    { rx: Number.NaN, tx: 2 },
    { ...usage, used: 'x'.repeat(65) },
    { ...usage, percentage: Number.POSITIVE_INFINITY },
    Object.create(null),
  ];
  const out: unknown[] = [base, null, [], 'x', 1, JSON.parse('{"__proto__":{"serverId":"s1"}}')];
  for (const key of Object.keys(base)) {
    const { [key]: _removed, ...rest } = base;
    out.push(rest);
    for (const h of hostile) out.push({ ...base, [key]: h });
  }
  for (const extra of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'unknown']) {
    out.push(JSON.parse(`{${JSON.stringify(extra)}:{"a":1},${JSON.stringify(base).slice(1)}`));
    out.push(JSON.parse(`{${JSON.stringify(extra)}:1,${JSON.stringify(base).slice(1)}`));
  }
  // keys only inherited: zod reads them, the fast path must not accept on their strength
  out.push(Object.assign(Object.create(base), {}));
  const inherited = Object.create({ message: 'from the prototype' });
  Object.assign(inherited, { serverId: 's1' });
  out.push(inherited);
  return out;
}

function check(
  name: string,
  fast: (v: unknown) => Record<string, unknown> | undefined,
  schema: { safeParse(v: unknown): { success: boolean; data?: unknown } },
  base: Record<string, unknown>,
  nested: string[],
) {
  const payloads = variants(base);
  for (const key of nested) {
    for (const sub of variants(base[key] as Record<string, unknown>)) payloads.push({ ...base, [key]: sub });
  }
  let accepted = 0;
  for (const p of payloads) {
    const z = schema.safeParse(p);
    const f = fast(p);
    if (f) {
      accepted++;
      assert.ok(
        z.success,
        `${name}: fast path accepted what zod rejects: ${String(JSON.stringify(p))?.slice(0, 200)}`,
      );
      assert.deepStrictEqual(f, z.data, `${name}: output differs`);
      assert.deepStrictEqual(Object.keys(f), Object.keys(z.data as object), `${name}: key order differs`);
    }
    // what a socket can carry (JSON) and zod accepts must take the fast path, or it saves nothing
    const text = JSON.stringify(p);
    if (text === undefined) continue;
    const q = JSON.parse(text);
    if (schema.safeParse(q).success && !fast(q)) {
      assert.fail(`${name}: fast path rejected what zod accepts: ${text.slice(0, 200)}`);
    }
  }
  return { total: payloads.length, accepted };
}

describe('fast event checks agree with the zod schemas', () => {
  it('server_log: same verdict and output on valid and hostile payloads', () => {
    const r = check('server_log', fastServerLog, eventData.server_log, log, []);
    assert.ok(r.total > 250 && r.accepted > 20, JSON.stringify(r));
    assert.ok(fastServerLog({ serverId: 's1', message: '' }), 'the minimal line');
  });
  it('resource_update: same verdict and output on valid and hostile payloads', () => {
    const r = check('resource_update', fastResourceUpdate, eventData.resource_update, stats, [
      'memory',
      'disk',
      'network',
    ]);
    assert.ok(r.total > 700 && r.accepted > 100, JSON.stringify(r));
  });
});

/** timestamps: every day of years around leap rules, each character position mutated, the odd forms */
function timestamps(): string[] {
  const out: string[] = [];
  for (const year of ['1900', '2000', '2024', '2026', '2100', '2400', '0000', '1996', '1800', '9999'])
    for (let m = 0; m <= 13; m++)
      for (let d = 0; d <= 32; d++)
        out.push(`${year}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}T12:00:00Z`);
  const bases = [
    '2026-12-02T20:30:43.123Z',
    '2026-12-02T20:30:43Z',
    '2026-12-02T20:30:43.1+02:00',
    '2026-12-02T20:30:43-23:59',
    '2026-12-02T23:59:59.123456789Z',
  ];
  const chars = [
    '0',
    '1',
    '2',
    '3',
    '5',
    '6',
    '9',
    'a',
    'Z',
    'z',
    'T',
    't',
    ':',
    '-',
    '+',
    '.',
    ' ',
    'é',
    '٣',
  ];
  for (const b of bases) {
    out.push(b, `${b} `, ` ${b}`, `${b}Z`, b.slice(0, -1), `${b}\n`);
    for (let i = 0; i < b.length; i++) {
      out.push(b.slice(0, i) + b.slice(i + 1));
      for (const c of chars) out.push(b.slice(0, i) + c + b.slice(i + 1), b.slice(0, i) + c + b.slice(i));
    }
  }
  for (const t of ['24:00:00', '23:60:00', '23:59:60', '00:00:00', '19:09:09'])
    for (const z of ['Z', '+24:00', '+23:60', '+00:00', '-12:30', '+1:00', '+0100', '+01:00:00', 'z', ''])
      out.push(`2024-02-29T${t}${z}`, `2024-02-29T${t}.${z}`, `2024-02-29T${t}.5${z}`);
  return out;
}

describe('the fast event envelope agrees with EventEnvelope', () => {
  it('isIsoDateTime: the same verdict as z.iso.datetime({ offset: true })', () => {
    const all = timestamps();
    let accepted = 0;
    for (const t of all) {
      const want = Timestamp.safeParse(t).success;
      assert.equal(isIsoDateTime(t), want, `${JSON.stringify(t)}: zod says ${want}`);
      if (want) accepted++;
    }
    assert.ok(all.length > 5000 && accepted > 3000, `${all.length} / ${accepted}`);
  });
  it('fastEventEnvelope: same verdict and output on valid and hostile envelopes', () => {
    const base = {
      id: 'evt_1',
      type: 'event',
      timestamp: '2026-12-02T20:30:43.123Z',
      agentId: 'a1',
      serverId: 's1',
      event: 'server_log',
      data: { serverId: 's1', message: 'x' },
    };
    const r = check('envelope', fastEventEnvelope, EventEnvelope, base, []);
    assert.ok(r.total > 250 && r.accepted > 20, JSON.stringify(r));
    const hot = { type: 'event', timestamp: '2026-12-02T20:30:43.123Z', event: 'resource_update', data: {} };
    assert.deepStrictEqual(fastEventEnvelope(hot), EventEnvelope.parse(hot), 'what the Agent sends');
  });
});
