import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isCodedError } from '@cap/protocol';
import { loadAgentConfig } from './config.ts';

const good = { PANEL_URL: 'ws://127.0.0.1:8080', NODE_ID: 'node-1', AGENT_SECRET: 'secret-secret' };

test('defaults apply and PANEL_URL may be ws:// or http://', () => {
  const c = loadAgentConfig(good);
  assert.equal(c.httpPort, 8081);
  assert.equal(c.dataDir, './data/agent');
  assert.equal(c.crashTimeoutMs, 60_000);
  assert.equal(c.logThrottleLines, 2000);
  assert.equal(c.logThrottleIntervalMs, 100);
  assert.equal(c.statsIntervalMs, 2000);
  assert.equal(
    loadAgentConfig({ ...good, PANEL_URL: 'https://panel.example/' }).panelUrl,
    'https://panel.example',
  );
  assert.deepEqual(loadAgentConfig({ ...good, AGENT_CORS_ORIGINS: 'http://a, http://b' }).corsOrigins, [
    'http://a',
    'http://b',
  ]);
  assert.equal(loadAgentConfig({ ...good, AGENT_HTTP_PORT: '0' }).httpPort, 0);
  // /transfers CORS: by default the Panel's pages' origin (ws:// is the same host as http://)
  assert.deepEqual(c.corsOrigins, ['http://127.0.0.1:8080']);
  assert.deepEqual(loadAgentConfig({ ...good, PANEL_URL: 'wss://panel.example/x/' }).corsOrigins, [
    'https://panel.example',
  ]);
});

test('a bad config lists every bad key', () => {
  try {
    loadAgentConfig({
      PANEL_URL: 'ftp://x',
      AGENT_SECRET: 'short',
      AGENT_HTTP_PORT: '70000',
      AGENT_CRASH_TIMEOUT: 'soon',
      AGENT_BIND_IP: 'not-an-ip',
      DOCKER_HOST: 'nonsense',
      LOG_LEVEL: 'loud',
    });
    assert.fail('expected CONFIG_INVALID');
  } catch (e) {
    assert.ok(isCodedError(e));
    assert.equal(e.code, 'CONFIG_INVALID');
    const keys = (e.details as { keys: string[] }).keys.sort();
    assert.deepEqual(keys, [
      'AGENT_BIND_IP',
      'AGENT_CRASH_TIMEOUT',
      'AGENT_HTTP_PORT',
      'AGENT_SECRET',
      'DOCKER_HOST',
      'LOG_LEVEL',
      'NODE_ID',
      'PANEL_URL',
    ]);
  }
});

test('the secret never appears in the error', () => {
  assert.throws(
    () => loadAgentConfig({ ...good, NODE_ID: 'bad id!', AGENT_SECRET: 'hunter2hunter2' }),
    (e: unknown) => isCodedError(e) && !e.message.includes('hunter2'),
  );
});
