/**
 * Hidden template variables across replicas (issue 15 item 1, the live state's redaction): two
 * Panels (one NATS, one PostgreSQL), a fake Agent on A. A server with a hidden value is made
 * through A after B started (B's start loaded no such server) and its value changed through A
 * later: a spectator watching it through B gets the value redacted, live and in the history.
 * And with the Agent on B, changed through A: a PATCH (stored by A after the end event B re-read
 * the old row on; A's `server.changed` makes B read it again) and a PUT /config (stored before
 * the Agent is asked: the game's echo during the update is redacted on B). And a PATCH whose game
 * echoes the new value while the update runs (before anything is stored): B redacts it already
 * (the hold of secrets-sync.ts), its owner sees it; a PATCH the Agent fails keeps the attempted
 * value redacted on B afterwards (live and in the history).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { FakeAgent } from './fake-agent.ts';
import {
  freePort,
  type Json,
  type Session,
  scratchDatabase,
  startTestPanel,
  type TestPanel,
  until,
} from './helpers.ts';

const NATS = '/usr/sbin/nats-server';
const SECRET = 'Live-Replica-Secret-1';
const SECRET2 = 'Live-Replica-Secret-2';
const SECRET3 = 'Live-Replica-Secret-3';
const SECRET4 = 'Live-Replica-Secret-4';
const SECRET5 = 'Live-Replica-Secret-5';
const SECRET6 = 'Live-Replica-Secret-6';
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
  let agentB: FakeAgent | undefined;
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
    await agentB?.close();
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

  /**
   * A server of the hidden-variable egg made through A (its own template, named `name`), with
   * SECRET; B heard the create and knows the value (nobody read it through B); a spectator's
   * socket on B watches it.
   */
  async function watchedThroughB(owner: Session, spectator: Session, nodeId: string, name: string) {
    const imp = await a.api(owner, 'POST', '/api/templates/import', {
      content: JSON.stringify({ ...EGG, name }),
      filename: 'egg.json',
    });
    assert.equal(imp.status, 201, JSON.stringify(imp.body));
    const created = await a.api(owner, 'POST', '/api/servers?wait=true', {
      name,
      nodeId,
      templateId: imp.body.template.id,
      environment: { ADMIN_PASSWORD: SECRET },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const serverId = created.body.id as string;
    await until(() => b.app.panel.live.secrets(serverId).includes(SECRET), 5000);
    const ws = await b.clientSocket(spectator);
    ws.send({ type: 'subscribe', serverId });
    await ws.next((m) => m.type === 'subscribed');
    return { serverId, ws };
  }

  it('made and edited through A, watched through B by a spectator: redacted', async () => {
    const owner = await a.login();
    const spectator = await a.userWithRole('spectator');
    const node = await a.createNode(owner, 'secrets-node');
    agent = await FakeAgent.start({ panelUrl: a.url, agentSecret: node.agentSecret });
    await until(() => a.app.panel.hub.isOnline(node.id));
    await until(() => b.app.panel.gateway.isOnline(node.id), 5000);
    const { serverId, ws } = await watchedThroughB(owner, spectator, node.id, 'hidden on replicas');
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
  it('changed through A while the Agent is on B: B redacts the new value once A stored it', async () => {
    const owner = await a.login();
    const spectator = await a.userWithRole('spectator');
    const node = await a.createNode(owner, 'secrets-node-b');
    // the game echoes its admin password as it boots, a while after the update recreated it
    // (before the Agent reports the end, as a real game's startup lines come before ready)
    let echoInFlight = false;
    let failUpdate = false;
    const UPDATE_MS = 1500;
    agentB = await FakeAgent.start({
      panelUrl: b.url,
      agentSecret: node.agentSecret,
      operationMs: (cmd) => (cmd.action === 'update_server' ? UPDATE_MS : 40),
      operationError: (cmd) =>
        cmd.action === 'update_server' && failUpdate
          ? { code: 'INTERNAL_ERROR', message: 'the new container did not start; rolled back' }
          : undefined,
      handlers: {
        update_server: (cmd) => {
          const serverId = cmd.serverId ?? '';
          const s = agentB?.servers.get(serverId);
          const env = (cmd.payload as { environment?: Record<string, string> }).environment;
          if (s && env) s.environment = env;
          if (echoInFlight)
            setTimeout(
              () => agentB?.emit('server_log', { serverId, message: `booting: ${env?.ADMIN_PASSWORD}` }),
              500,
            );
          return { serverId, status: s?.status ?? 'offline' };
        },
      },
    });
    await until(() => b.app.panel.hub.isOnline(node.id));
    await until(() => a.app.panel.gateway.isOnline(node.id), 5000);
    const { serverId, ws } = await watchedThroughB(owner, spectator, node.id, 'hidden, Agent on B');
    const seen: string[] = [];
    const line = async (start: string) => {
      const m = await ws.next(
        (m: Json) => m.type === 'console' && m.lines.some((l: string) => l.startsWith(start)),
        8000,
      );
      seen.push(...m.lines);
      return (m.lines as string[]).join('\n');
    };

    // PATCH through A: A stores the row once the Agent's success reached it, after the end event
    // B published (and re-read the old row on); A then tells the others it stored it
    const patched = await a.api(owner, 'PATCH', `/api/servers/${serverId}?wait=true`, {
      environment: { ADMIN_PASSWORD: SECRET3 },
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    await until(() => b.app.panel.live.secrets(serverId).includes(SECRET3), 5000).catch(() => {
      throw new Error(`B still redacts ${JSON.stringify(b.app.panel.live.secrets(serverId))}`);
    });
    agentB.emit('server_log', { serverId, message: `patched: ${SECRET3}` });
    const afterPatch = await line('patched');
    assert.ok(!afterPatch.includes(SECRET3), afterPatch);
    assert.match(afterPatch, /patched: \[hidden\]/);

    // PUT /config through A: stored (and announced) before the Agent is asked, so the game's
    // echo while the update is still running is redacted on B, not only after the end
    echoInFlight = true;
    const edit = await a.api(owner, 'PUT', `/api/servers/${serverId}/config?wait=true`, {
      environment: { ADMIN_PASSWORD: SECRET4 },
    });
    assert.ok(edit.status === 200 || edit.status === 202, JSON.stringify(edit.body));
    const booting = await line('booting');
    assert.ok(!booting.includes(SECRET4), booting);
    assert.match(booting, /booting: \[hidden\]/);

    // PATCH through A with the echo in flight: nothing is stored until the Agent's success, yet
    // the new container's echo reaches B's spectator redacted (and B's owner in clear)
    const ownerWs = await b.clientSocket(owner);
    ownerWs.send({ type: 'subscribe', serverId });
    await ownerWs.next((m) => m.type === 'subscribed');
    const booted = (v: string) => (m: Json) =>
      m.type === 'console' && m.lines.some((l: string) => l === `booting: ${v}`);
    const patch5 = await a.api(owner, 'PATCH', `/api/servers/${serverId}?wait=true`, {
      environment: { ADMIN_PASSWORD: SECRET5 },
    });
    assert.equal(patch5.status, 200, JSON.stringify(patch5.body));
    await ownerWs.next(booted(SECRET5), 8000);
    const booting5 = await line('booting');
    assert.ok(!booting5.includes(SECRET5), booting5);
    assert.match(booting5, /booting: \[hidden\]/);

    // a PATCH the Agent fails (rolled back): nothing stored, the attempted value stays redacted
    failUpdate = true;
    const patch6 = await a.api(owner, 'PATCH', `/api/servers/${serverId}?wait=true`, {
      environment: { ADMIN_PASSWORD: SECRET6 },
    });
    assert.ok(patch6.status >= 400, JSON.stringify(patch6.body));
    await ownerWs.next(booted(SECRET6), 8000);
    const booting6 = await line('booting');
    assert.ok(!booting6.includes(SECRET6), booting6);
    // stored: still SECRET5; B keeps redacting SECRET6 after the failure, and a page opened later
    // on B gets its line redacted in the history
    await until(() => b.app.panel.live.secrets(serverId).includes(SECRET5), 5000);
    assert.ok(b.app.panel.live.secrets(serverId).includes(SECRET6));
    const late = await b.clientSocket(spectator);
    late.send({ type: 'subscribe', serverId });
    const sub = await late.next((m) => m.type === 'subscribed');
    assert.ok(sub.history.includes('booting: [hidden]'), JSON.stringify(sub.history));
    // (values an update replaced since are not redacted in it any more: SECRET3, SECRET4)
    const history = JSON.stringify(sub.history);
    for (const v of [SECRET5, SECRET6]) assert.ok(!history.includes(v), history);
    const rest = JSON.stringify([...seen, ...ws.messages, ...late.messages]);
    for (const v of [SECRET, SECRET3, SECRET4, SECRET5, SECRET6]) assert.ok(!rest.includes(v), rest);
    late.close();
    ownerWs.close();
    ws.close();
  });
});
