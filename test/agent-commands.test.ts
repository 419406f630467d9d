/**
 * The Add-node dialog's commands come from the Panel, built from its configured public URL
 * (PANEL_URL), one per deployment form (executable, Docker as seed 001 runs it, systemd, npx),
 * and each is a configuration the Agent accepts as it is (an http:// Panel off loopback gets
 * AGENT_ALLOW_INSECURE=1 and a flag, since the Agent refuses it otherwise). The node page gets
 * the same from GET /api/nodes/:id/agent-commands, never from the browser's origin.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadAgentConfig } from '@cap/agent';
import { build, loadPanelConfig } from '@cap/panel';
import { pino } from 'pino';

async function panelWith(env: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), 'cap-agent-cmds-'));
  const app = await build(
    loadPanelConfig({ DATA_DIR: dir, ADMIN_EMAIL: 'o@x.test', ADMIN_PASSWORD: 'owner-pass-1', ...env }),
    { logger: pino({ level: 'silent' }) },
  );
  const login = await app.inject({
    method: 'POST',
    url: '/api/auth/login',
    payload: { email: 'o@x.test', password: 'owner-pass-1' },
  });
  const headers = {
    cookie: `cap_session=${login.cookies.find((c) => c.name === 'cap_session')?.value}`,
    'x-csrf-token': login.json().csrfToken as string,
  };
  return {
    app,
    headers,
    close: async () => {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The VAR=value pairs a command sets (as `VAR=v` words or `-e VAR=v`), unquoted. */
function envOf(command: string): Record<string, string> {
  return Object.fromEntries(
    [...command.matchAll(/(?:^|[\s'])([A-Z][A-Z0-9_]*)=([^\s']+)/g)].map((m) => [
      m[1] as string,
      m[2] as string,
    ]),
  );
}

test('every form carries PANEL_URL as configured, the node and the secret, and the Agent accepts it', async (t) => {
  const p = await panelWith({ PANEL_URL: 'https://panel.example:8443' });
  t.after(p.close);
  const r = await p.app.inject({
    method: 'POST',
    url: '/api/nodes',
    headers: p.headers,
    payload: { name: 'n1' },
  });
  assert.equal(r.statusCode, 201);
  const { node, agentSecret, command, commands } = r.json();
  assert.equal(commands.panelUrl, 'https://panel.example:8443');
  assert.equal(commands.panelUrlConfigured, true);
  assert.equal(commands.insecure, false);
  assert.equal(command, commands.npx);
  for (const form of ['binary', 'docker', 'systemd', 'npx'] as const) {
    const env = envOf(commands[form]);
    assert.equal(env['PANEL_URL'], 'https://panel.example:8443', form);
    assert.equal(env['NODE_ID'], node.id, form);
    assert.equal(env['AGENT_SECRET'], agentSecret, form);
    assert.equal(env['AGENT_ALLOW_INSECURE'], undefined, form);
    assert.doesNotThrow(() => loadAgentConfig(env), form);
  }
  // seed 001's form: the socket mounted, -e for each setting, the image by its name
  assert.match(
    commands.docker,
    /^docker run -d --name ctrl-alt-play-agent .*-v \/var\/run\/docker\.sock:\/var\/run\/docker\.sock .*-e PANEL_URL=\S+ -e NODE_ID=\S+ -e AGENT_SECRET=\S+ ctrl-alt-play-agent$/,
  );
  assert.match(
    commands.docker,
    / -v (\/var\/lib\/ctrl-alt-play\/agent):\1 /,
    'the data dir at the same path',
  );
  assert.match(
    commands.binary,
    /AGENT_DATA_DIR=\/var\/lib\/ctrl-alt-play\/agent \.\/ctrl-alt-play-agent-linux-x64$/,
  );
  assert.match(
    commands.systemd,
    /> \/etc\/ctrl-alt-play\/agent\.env && chmod 600 .* systemctl enable --now ctrl-alt-play-agent$/,
  );

  // the node page: the same URL and node, the secret as a placeholder
  const again = await p.app.inject({
    method: 'GET',
    url: `/api/nodes/${node.id}/agent-commands`,
    headers: p.headers,
  });
  assert.equal(again.statusCode, 200);
  const env = envOf(again.json().binary);
  assert.equal(env['PANEL_URL'], 'https://panel.example:8443');
  assert.equal(env['NODE_ID'], node.id);
  assert.ok(!again.body.includes(agentSecret), 'the secret is not shown again');
  const missing = await p.app.inject({
    method: 'GET',
    url: '/api/nodes/nope/agent-commands',
    headers: p.headers,
  });
  assert.equal(missing.statusCode, 404);
  const anonymous = await p.app.inject({ method: 'GET', url: `/api/nodes/${node.id}/agent-commands` });
  assert.equal(anonymous.statusCode, 401);
});

test('a plain http:// Panel off loopback: AGENT_ALLOW_INSECURE=1 in every form, flagged; unset PANEL_URL flagged', async (t) => {
  const p = await panelWith({ PANEL_URL: 'http://panel.lan:8080' });
  t.after(p.close);
  const r = await p.app.inject({
    method: 'POST',
    url: '/api/nodes',
    headers: p.headers,
    payload: { name: 'n2' },
  });
  const { commands } = r.json();
  assert.equal(commands.insecure, true);
  for (const form of ['binary', 'docker', 'systemd', 'npx'] as const) {
    const env = envOf(commands[form]);
    assert.equal(env['AGENT_ALLOW_INSECURE'], '1', form);
    assert.doesNotThrow(() => loadAgentConfig(env), form);
  }
  const q = await panelWith({});
  t.after(q.close);
  const r2 = await q.app.inject({
    method: 'POST',
    url: '/api/nodes',
    headers: q.headers,
    payload: { name: 'n3' },
  });
  assert.equal(r2.json().commands.panelUrlConfigured, false);
  assert.equal(r2.json().commands.panelUrl, 'http://localhost:8080');
  assert.equal(r2.json().commands.insecure, false);
});
