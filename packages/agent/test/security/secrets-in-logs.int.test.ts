/**
 * Attack class: secrets in logs. Logs are shipped, pasted into issues and read by people who must
 * not get a node's credentials. Through registration, token refresh, a refused refresh (new
 * registration with the secret), a refused registration, HTTP API calls with right and wrong keys
 * and Panel commands, no log line — at `trace`, with no redaction configured, so that nothing
 * relies on pino's `redact` — may carry the registration secret, the API key, a token or a
 * refresh token.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import pino from 'pino';
import { type RunningAgent, startAgent } from '../../src/agent.ts';
import { loadAgentConfig } from '../../src/config/config.ts';
import { FakePanel } from '../fake-panel.ts';
import { sleep, uid } from '../helpers.ts';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { lines, logger: pino({ level: 'trace' }, stream) };
}

async function until(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) assert.fail(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

test('no secret, key or token ever reaches the log', async (t) => {
  const secret = `secret_${randomBytes(12).toString('hex')}`;
  const apiKey = `key_${randomBytes(12).toString('hex')}`;
  const panel = await new FakePanel({ secret, tokenTtlMs: 1500, pingIntervalMs: 200 }).start();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'cap-agent-'));
  const agents: RunningAgent[] = [];
  t.after(async () => {
    for (const a of agents) await a.stop().catch(() => undefined);
    await panel.stop();
    await rm(dataDir, { recursive: true, force: true });
  });
  const env = {
    PANEL_URL: panel.wsUrl,
    NODE_ID: uid('node-'),
    AGENT_SECRET: secret,
    AGENT_API_KEY: apiKey,
    AGENT_DATA_DIR: dataDir,
    AGENT_HTTP_PORT: '0',
    AGENT_HTTP_HOST: '127.0.0.1',
    AGENT_HEARTBEAT_INTERVAL_MS: '500',
    LOG_LEVEL: 'trace',
  };
  const { lines, logger } = capture();
  const agent = await startAgent(loadAgentConfig(env), { logger });
  agents.push(agent);

  await until('a connection', () => panel.connected);
  await until('a token refresh', () => panel.refreshes.length >= 1 && panel.connections.length >= 1);
  // a refused refresh: the Agent registers again with its secret
  panel.refuseRefresh = true;
  const regs = panel.registrations.length;
  await until('a new registration', () => panel.registrations.length > regs);
  panel.refuseRefresh = false;
  await until('the link back up', () => panel.connected);

  // the HTTP API, with the key, with the current token, with wrong ones
  const url = `http://127.0.0.1:${agent.httpPort}/api/command`;
  const body = JSON.stringify({
    id: 'c1',
    type: 'command',
    timestamp: new Date().toISOString(),
    action: 'list_servers',
    payload: {},
  });
  const token = [...panel.validTokens].at(-1) ?? '';
  const attempts: Record<string, string>[] = [
    { 'x-api-key': apiKey },
    { authorization: `Bearer ${token}` },
    { 'x-api-key': `${apiKey}x` },
    { authorization: `Bearer ${secret}` },
  ];
  for (const headers of attempts) {
    await fetch(url, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body });
  }
  // Panel commands, good and bad
  await panel.command('list_servers', {});
  await panel.command('get_file', { path: '../x' }, { serverId: 'nope' });

  // a second Agent whose secret the Panel refuses
  const wrongSecret = `secret_${randomBytes(12).toString('hex')}`;
  const wrongDir = await mkdtemp(path.join(tmpdir(), 'cap-agent-'));
  t.after(() => rm(wrongDir, { recursive: true, force: true }));
  const before = panel.registrations.length;
  agents.push(
    await startAgent(loadAgentConfig({ ...env, AGENT_SECRET: wrongSecret, AGENT_DATA_DIR: wrongDir }), {
      logger,
    }),
  );
  await until('the refused registration', () => panel.registrations.length > before);
  await sleep(100);

  const text = lines.join('');
  // the paths under test did run and log
  for (const msg of [
    'registered with the panel',
    'token refreshed',
    'refresh refused; registering again',
    'registration failed',
  ]) {
    assert.ok(text.includes(msg), `no "${msg}" in the log: the scenario did not run`);
  }
  assert.ok(text.includes('"url":"/api/command"'), 'the HTTP requests were not logged at all');
  for (const [name, value] of Object.entries({ secret, apiKey, wrongSecret })) {
    assert.equal(text.includes(value), false, `${name} appears in the log`);
  }
  const tokens = text.match(/(tok|ref)_[0-9a-f]{24}/g) ?? [];
  assert.deepEqual(tokens, [], 'a token or refresh token appears in the log');
  assert.ok(panel.validTokens.size > 0 && panel.refreshes.length > 0);
});
