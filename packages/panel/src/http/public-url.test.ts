/** PORT=0 without PANEL_URL: Agents and node commands get the real listening port, never :0. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { registerAgent } from '../../test/fake-agent.ts';
import { startPanel } from '../app.ts';
import { loadPanelConfig } from '../config/index.ts';

test('with PORT=0 the public URL is computed after listening', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cap-port0-'));
  const running = await startPanel(
    loadPanelConfig({
      DATA_DIR: dir,
      PORT: '0',
      HOST: '127.0.0.1',
      ADMIN_EMAIL: 'o@x.test',
      ADMIN_PASSWORD: 'owner-pass-1',
    }),
    { logger: pino({ level: 'silent' }) },
  );
  try {
    const port = new URL(running.url).port;
    assert.notEqual(port, '0');
    const login = await running.app.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { email: 'o@x.test', password: 'owner-pass-1' },
    });
    const headers = {
      cookie: `cap_session=${login.cookies.find((c) => c.name === 'cap_session')?.value}`,
      'x-csrf-token': login.json().csrfToken as string,
    };
    const node = await running.app.inject({
      method: 'POST',
      url: '/api/nodes',
      headers,
      payload: { name: 'n' },
    });
    assert.equal(node.statusCode, 201);
    assert.ok(node.json().command.includes(`PANEL_URL=http://127.0.0.1:${port} `), node.json().command);
    const reg = await registerAgent(running.url, node.json().agentSecret);
    assert.equal(reg.status, 200);
    assert.equal(reg.body.agent.websocketUrl, `ws://127.0.0.1:${port}/ws/agents`);
  } finally {
    await running.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
