/**
 * A PATCH that gives a hidden variable a new value on a running server (issue 15 note): the real
 * Agent recreates the busybox container with it, and its startup echoes it before the update
 * ends (before the Panel stores anything). A spectator watching the console never gets it in
 * clear, live or in the history of a page opened after; the owner does. A PATCH the Agent fails
 * leaves the stored value and keeps the attempted one redacted.
 * Image: ctrl-alt-play/busybox (bash scripts/images/build.sh busybox); fails, never skips.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type ClientSocket,
  type Json,
  type Session,
  type TestPanel,
  until,
} from '../packages/panel/test/helpers.ts';
import { IMAGE, type Stack, startStack } from './harness.ts';

const OLD = 'Patch-Hidden-Old-7731';
const NEW = 'Patch-Hidden-New-8842';
const EGG = {
  meta: { version: 'PTDL_v2' },
  name: `Hidden echo ${Date.now().toString(36)}`,
  author: 'test@example.test',
  docker_images: { Main: IMAGE },
  // the game prints its admin password as it boots (as many do)
  startup: 'echo "booting: {{ADMIN_PASSWORD}}"; echo ready; while read l; do echo "got:$l"; done',
  config: { files: '{}', startup: JSON.stringify({ done: 'ready' }), logs: '{}', stop: '^C' },
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

const lines = (msgs: Json[]): string[] =>
  msgs.filter((m) => m.type === 'console').flatMap((m) => m.lines as string[]);

describe('a new hidden value during its PATCH, real Agent and Docker', () => {
  let stack: Stack | undefined;
  let panel: TestPanel;
  let owner: Session;
  let serverId: string;

  before(async () => {
    stack = await startStack('hidden-patch');
    ({ panel, owner } = stack);
    const imp = await panel.api(owner, 'POST', '/api/templates/import', {
      content: JSON.stringify(EGG),
      filename: 'egg.json',
    });
    assert.equal(imp.status, 201, JSON.stringify(imp.body));
    const created = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'hidden-patch',
      nodeId: stack.nodeId,
      templateId: imp.body.template.id,
      environment: { ADMIN_PASSWORD: OLD },
      limits: { memory: '64m', cpu: '0.5' },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    serverId = created.body.id as string;
    const started = await panel.api(owner, 'POST', `/api/servers/${serverId}/power`, { action: 'start' });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    await until(
      async () => (await panel.api(owner, 'GET', `/api/servers/${serverId}`)).body.status === 'running',
      30_000,
    );
  });

  after(async () => {
    await stack?.stop();
  });

  async function watch(session: Session): Promise<ClientSocket> {
    const ws = await panel.clientSocket(session);
    ws.send({ type: 'subscribe', serverId });
    await ws.next((m) => m.type === 'subscribed');
    return ws;
  }

  it('the spectator gets the new value redacted, live and in the history; the owner in clear', {
    timeout: 120_000,
  }, async () => {
    const spectator = await panel.userWithRole('spectator');
    const spec = await watch(spectator);
    const own = await watch(owner);
    const patched = await panel.api(owner, 'PATCH', `/api/servers/${serverId}?wait=true`, {
      environment: { ADMIN_PASSWORD: NEW },
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    // the new container's echo: the owner sees it as printed
    await until(() => lines(own.messages).includes(`booting: ${NEW}`), 30_000);
    await until(() => lines(spec.messages).some((l) => l.startsWith('booting:')), 10_000);
    const seen = JSON.stringify(spec.messages);
    assert.ok(!seen.includes(NEW), seen);
    assert.ok(lines(spec.messages).includes('booting: [hidden]'), seen);

    const late = await panel.clientSocket(spectator);
    late.send({ type: 'subscribe', serverId });
    const sub = await late.next((m) => m.type === 'subscribed');
    const history = JSON.stringify(sub.history);
    assert.ok(!history.includes(NEW), history);
    assert.ok((sub.history as string[]).includes('booting: [hidden]'), history);
    spec.close();
    own.close();
    late.close();
  });

  it('a PATCH the Agent fails keeps the stored value; the attempted one stays redacted', {
    timeout: 120_000,
  }, async () => {
    const ATTEMPT = 'Patch-Hidden-Attempt-9953';
    const spectator = await panel.userWithRole('spectator');
    const spec = await watch(spectator);
    // the new container prints the value and exits before it is ready: the update fails, the
    // Agent puts the old container back
    const failed = await panel.api(owner, 'PATCH', `/api/servers/${serverId}?wait=true`, {
      environment: { ADMIN_PASSWORD: ATTEMPT },
      startup: 'echo "booting: {{ADMIN_PASSWORD}}"; sleep 1; exit 3',
    });
    assert.ok(failed.status >= 400, JSON.stringify(failed.body));
    const stored = await panel.api(owner, 'GET', `/api/servers/${serverId}`);
    assert.equal(stored.body.environment.ADMIN_PASSWORD, NEW, JSON.stringify(stored.body.environment));
    const secrets = panel.app.panel.live.secrets(serverId);
    assert.ok(secrets.includes(NEW), 'the stored value is redacted');
    assert.ok(secrets.includes(ATTEMPT), 'the attempted value stays redacted');
    const late = await panel.clientSocket(spectator);
    late.send({ type: 'subscribe', serverId });
    const sub = await late.next((m) => m.type === 'subscribed');
    const all = JSON.stringify([...spec.messages, sub.history]);
    assert.ok((sub.history as string[]).includes('booting: [hidden]'), all);
    // OLD, replaced by the first test's update, stays redacted in the history too
    assert.ok(secrets.includes(OLD), 'the replaced value stays redacted');
    for (const v of [ATTEMPT, NEW, OLD]) assert.ok(!all.includes(v), all);
    spec.close();
    late.close();
  });
});
