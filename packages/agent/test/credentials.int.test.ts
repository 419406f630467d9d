/**
 * A stored credentials file that cannot be used (corrupt, wrong shape, another Panel's or node's)
 * is replaced by a new registration, and the Agent's log says what was wrong with it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import pino from 'pino';
import { startAgent } from '../src/agent.ts';
import { loadAgentConfig } from '../src/config/config.ts';
import { FakePanel } from './fake-panel.ts';
import { uid } from './helpers.ts';

async function bootWith(stored: (panelUrl: string, nodeId: string) => string | null) {
  const secret = `secret_${randomBytes(8).toString('hex')}`;
  const panel = await new FakePanel({ secret, pingIntervalMs: 200 }).start();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'cap-agent-creds-'));
  const nodeId = uid('node-');
  const text = stored(panel.wsUrl, nodeId);
  if (text !== null) await writeFile(path.join(dataDir, 'credentials.json'), text, { mode: 0o600 });
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
      done();
    },
  });
  const config = loadAgentConfig({
    PANEL_URL: panel.wsUrl,
    NODE_ID: nodeId,
    AGENT_SECRET: secret,
    AGENT_DATA_DIR: dataDir,
    AGENT_HTTP_PORT: '0',
    AGENT_HTTP_HOST: '127.0.0.1',
    AGENT_HEARTBEAT_INTERVAL_MS: '500',
    LOG_LEVEL: 'info',
  });
  const agent = await startAgent(config, { logger: pino({ level: 'info' }, sink) });
  await panel.waitConnected();
  await agent.stop();
  await panel.stop();
  await rm(dataDir, { recursive: true, force: true });
  const warnings = lines.filter((l) => l.level === 40 && /credentials unusable/.test(String(l.msg)));
  return { panel, warnings, lines };
}

const valid = (panelUrl: string, nodeId: string) => ({
  panelUrl,
  nodeId,
  agent: {
    id: 'agent_x',
    token: 'tok_secretvalue123',
    refreshToken: 'ref_x',
    websocketUrl: '/ws/agents',
  },
});

test('a credentials file that is not JSON: registers again and warns "not JSON", quoting nothing of it', async () => {
  const { panel, warnings, lines } = await bootWith(() => '{"agent": {"token": "tok_secretvalue123"');
  assert.equal(panel.registrations.length, 1);
  assert.equal(warnings.length, 1, JSON.stringify(lines));
  assert.match(String(warnings[0]!.problem), /^not JSON/);
  assert.ok(!JSON.stringify(lines).includes('tok_secretvalue123'), 'the stored token reached the log');
});

test('a credentials file with a wrong field: the warning names the field', async () => {
  const { panel, warnings } = await bootWith((url, node) => {
    const s = valid(url, node) as unknown as { agent: Record<string, unknown> };
    s.agent.token = 42;
    return JSON.stringify(s);
  });
  assert.equal(panel.registrations.length, 1);
  assert.equal(warnings.length, 1);
  assert.match(String(warnings[0]!.problem), /invalid field: agent\.token/);
});

test("another panel's or node's credentials: the warning says so", async () => {
  const other = await bootWith((_url, node) => JSON.stringify(valid('ws://elsewhere:1', node)));
  assert.equal(other.panel.registrations.length, 1);
  assert.match(String(other.warnings[0]?.problem), /different panel \(ws:\/\/elsewhere:1/);
  const node = await bootWith((url) => JSON.stringify(valid(url, 'node-other')));
  assert.match(String(node.warnings[0]?.problem), /different node \(node-other/);
});

test('no credentials file (the first start): registers without a warning', async () => {
  const { panel, warnings } = await bootWith(() => null);
  assert.equal(panel.registrations.length, 1);
  assert.deepEqual(warnings, []);
});
