/**
 * Hidden template variables across replicas (issue 15 item 1, the live state's redaction): two
 * Panels (one NATS, one PostgreSQL), a fake Agent on A. A server with a hidden value is made
 * through A after B started (B's start loaded no such server) and its value changed through A
 * later: a spectator watching it through B gets the value redacted, live and in the history.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { FakeAgent } from './fake-agent.ts';
import { freePort, type Json, scratchDatabase, startTestPanel, type TestPanel, until } from './helpers.ts';

const NATS = '/usr/sbin/nats-server';
const SECRET = 'Live-Replica-Secret-1';
const SECRET2 = 'Live-Replica-Secret-2';
const EGG = {
  meta: { version: 'PTDL_v2' },
  name: 'Hidden game (replicas)',
  author: 'test@example.test',
  docker_images: { Main: 'ctrl-alt-play/busybox:latest' },
  startup: './game --admin {{ADMIN_PASSWORD}}',
  config: { files: '{}', startup: JSON.stringify({ done: 'ready' }), logs: '{}', stop: 'quit' },
  variables: [
    {
      name: 'Admin password',
      description: '',
      env_variable: 'ADMIN_PASSWORD',
      default_value: '',
      user_viewable: false,
      user_editable: false,
      rules: 'nullable|string',
      field_type: 'text',
    },
  ],
};

describe('hidden values are redacted on every replica', () => {
  let broker: ChildProcess | undefined;
  let db: Awaited<ReturnType<typeof scratchDatabase>>;
  let a: TestPanel;
  let b: TestPanel;
  let agent: FakeAgent;
  const shared = mkdtempSync(path.join(tmpdir(), 'cap-live-secrets-'));

  before(async () => {
    assert.ok(existsSync(NATS), `${NATS} is missing: apt-get install nats-server`);
    const port = await freePort();
    broker = spawn(NATS, ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    await until(async () => {
      try {
        await (await connect({ servers: `127.0.0.1:${port}` })).close();
        return true;
      } catch {
        return false;
      }
    }, 10_000);
    db = await scratchDatabase('postgres', 'cap_live_secrets');
    const env = {
      ...db.env,
      DATA_DIR: shared,
      PANEL_NATS_URL: `nats://127.0.0.1:${port}`,
      PANEL_NATS_PREFIX: `caplivesec${process.pid}`,
      PANEL_REPLICA_HEARTBEAT_MS: '200',
    };
    a = await startTestPanel(env);
    b = await startTestPanel(env);
  });

  after(async () => {
    await agent?.close();
    await b?.stop();
    await a?.stop();
    if (broker && broker.exitCode === null) {
      const exited = new Promise((r) => broker?.once('exit', r));
      broker.kill('SIGTERM');
      await exited;
    }
    await db?.drop();
    rmSync(shared, { recursive: true, force: true });
  });

  it('made and edited through A, watched through B by a spectator: redacted', async () => {
    const owner = await a.login();
    const spectator = await a.userWithRole('spectator');
    const node = await a.createNode(owner, 'secrets-node');
    agent = await FakeAgent.start({ panelUrl: a.url, agentSecret: node.agentSecret });
    await until(() => a.app.panel.hub.isOnline(node.id));
    await until(() => b.app.panel.gateway.isOnline(node.id), 5000);
    const imp = await a.api(owner, 'POST', '/api/templates/import', {
      content: JSON.stringify(EGG),
      filename: 'egg.json',
    });
    assert.equal(imp.status, 201, JSON.stringify(imp.body));
    const created = await a.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'hidden on replicas',
      nodeId: node.id,
      templateId: imp.body.template.id,
      environment: { ADMIN_PASSWORD: SECRET },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const serverId = created.body.id as string;
    // B heard the create: it knows the hidden value (nobody read the server through B)
    await until(() => b.app.panel.live.secrets(serverId).includes(SECRET), 5000);

    const ws = await b.clientSocket(spectator);
    ws.send({ type: 'subscribe', serverId });
    await ws.next((m) => m.type === 'subscribed');
    const line = (start: string) => (m: Json) =>
      m.type === 'console' && m.lines.some((l: string) => l.startsWith(start));
    agent.emit('server_log', { serverId, message: `first: ${SECRET}` });
    const first = (await ws.next(line('first'))).lines.join('\n');
    assert.ok(!first.includes(SECRET), first);
    assert.match(first, /first: \[hidden\]/);

    // the value changed through A: B redacts the new one
    const edit = await a.api(owner, 'PUT', `/api/servers/${serverId}/config?wait=true`, {
      environment: { ADMIN_PASSWORD: SECRET2 },
    });
    assert.ok(edit.status === 200 || edit.status === 202, JSON.stringify(edit.body));
    await until(() => b.app.panel.live.secrets(serverId).includes(SECRET2), 5000);
    agent.emit('server_log', { serverId, message: `second: ${SECRET2}` });
    const second = (await ws.next(line('second'))).lines.join('\n');
    assert.ok(!second.includes(SECRET2), second);

    // a page opened later on B: its history is redacted with the values now hidden (as on one
    // Panel, a line printed with a value since replaced is not redacted any more)
    const late = await b.clientSocket(spectator);
    late.send({ type: 'subscribe', serverId });
    const sub = await late.next((m) => m.type === 'subscribed');
    assert.ok(sub.history.includes('second: [hidden]'), JSON.stringify(sub.history));
    assert.ok(!JSON.stringify(sub.history).includes(SECRET2), JSON.stringify(sub.history));
    ws.close();
    late.close();
  });
});
