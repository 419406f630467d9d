/**
 * Egg features end to end, with the real Panel, a real Agent and the real Docker Engine: a server
 * made from a template with `features: [eula]` prints Minecraft's EULA line and exits; the Panel
 * tells the server's admins (`feature` on /ws/client, and in the telemetry for a page opened
 * later), not its spectators; on the user's yes (POST /features/eula) `eula.txt` says `eula=true`
 * in the server's folder and the server starts and runs (the restart is a `restart` operation).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Session, TestPanel } from '../packages/panel/test/helpers.ts';
import { type Stack, startStack } from './harness.ts';

/** A PTDL_v2 egg shaped like Paper's (features eula, done ")! For help"), on busybox; the browser test uses it too. */
const EGG = readFileSync(
  new URL('../packages/web/e2e/fixtures/egg-busybox-eula.json', import.meta.url),
  'utf8',
);
function eulaEgg(name?: string): string {
  if (!name) return EGG;
  return JSON.stringify({ ...JSON.parse(EGG), name });
}

describe('egg features with a real Agent and Docker', () => {
  let stack: Stack | undefined;
  let panel: TestPanel;
  let agentDir: string;
  let owner: Session;
  let nodeId: string;
  let serverId: string | undefined;

  before(async () => {
    stack = await startStack('eula');
    ({ panel, agentDir, owner, nodeId } = stack);
  });

  after(async () => {
    await stack?.stop();
  });

  it('asks about the EULA, writes eula=true on yes, and the server starts', async () => {
    const imported = await panel.api(owner, 'POST', '/api/templates/import', {
      content: eulaEgg(),
      filename: 'egg-eula.json',
    });
    assert.equal(imported.status, 201, JSON.stringify(imported.body));
    const templateId = imported.body.template.id as string;
    // wait for the node, then create the server from the template
    const deadline = Date.now() + 20_000;
    while (!(await panel.api(owner, 'GET', `/api/nodes/${nodeId}`)).body?.online) {
      assert.ok(Date.now() < deadline, 'node never came online');
      await new Promise((r) => setTimeout(r, 150));
    }
    const created = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'eula server',
      nodeId,
      templateId,
      port: 25565 + Math.floor(Math.random() * 1000),
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    serverId = created.body.id as string;

    // the yes is refused for a template without the feature, and for spectators
    const spectator = await panel.userWithRole('spectator');
    const refused = await panel.api(spectator, 'POST', `/api/servers/${serverId}/features/eula`, {
      accept: true,
    });
    assert.equal(refused.status, 403);

    const ws = await panel.clientSocket(owner);
    const wsSpectator = await panel.clientSocket(spectator);
    for (const s of [ws, wsSpectator]) {
      s.send({ type: 'subscribe', serverId });
      await s.next((m) => m.type === 'subscribed' && m.serverId === serverId);
    }
    const start = await panel.api(owner, 'POST', `/api/servers/${serverId}/power`, { action: 'start' });
    assert.equal(start.status, 202);

    const feature = await ws.next((m) => m.type === 'feature', 20_000);
    assert.equal(feature.serverId, serverId);
    assert.equal(feature.feature, 'eula');
    assert.ok(feature.line.includes('You need to agree to the EULA'), feature.line);
    // a page opened now still learns of it; a spectator neither sees the message nor the pending one
    const telemetry = await panel.api(owner, 'GET', `/api/servers/${serverId}/telemetry`);
    assert.equal(telemetry.body.feature?.feature, 'eula');
    const spectatorView = await panel.api(spectator, 'GET', `/api/servers/${serverId}/telemetry`);
    assert.equal(spectatorView.body.feature, null);
    // the Agent restarts it once after the crash; the second crash so soon is left alone
    await ws.next((m) => m.type === 'crashed' && m.restarting === false, 30_000);
    // nothing was changed without the yes
    await assert.rejects(readFile(path.join(agentDir, 'servers', serverId, 'eula.txt')), { code: 'ENOENT' });

    const accept = await panel.api(owner, 'POST', `/api/servers/${serverId}/features/eula`, { accept: true });
    assert.equal(accept.status, 202, JSON.stringify(accept.body));
    // the restart is an operation: acknowledged with its id, its end reported as an `operation` message
    assert.equal(accept.body.accepted, true);
    assert.equal(typeof accept.body.operationId, 'string', JSON.stringify(accept.body));
    assert.equal(
      (await panel.api(owner, 'GET', `/api/operations/${accept.body.operationId}`)).body.kind,
      'restart',
    );
    assert.equal(await readFile(path.join(agentDir, 'servers', serverId, 'eula.txt'), 'utf8'), 'eula=true\n');
    await ws.next((m) => m.type === 'status' && m.status === 'running', 30_000);
    await ws.next(
      (m) => m.type === 'console' && m.lines.some((l: string) => l.includes('Done (0.1s)!')),
      10_000,
    );
    const end = await ws.next(
      (m) => m.type === 'operation' && m.operationId === accept.body.operationId && m.success !== undefined,
      30_000,
    );
    assert.equal(end.success, true, JSON.stringify(end));
    const after = await panel.api(owner, 'GET', `/api/servers/${serverId}/telemetry`);
    assert.equal(after.body.status, 'running');
    assert.equal(after.body.feature, null);
    assert.ok(!wsSpectator.messages.some((m) => m.type === 'feature'), 'a spectator got a feature message');
    ws.close();
    wsSpectator.close();

    const stop = await panel.api(owner, 'POST', `/api/servers/${serverId}/power`, { action: 'kill' });
    assert.equal(stop.status, 202);
  });

  it('refuses the EULA answer for a server whose template has no eula feature', async () => {
    const egg = JSON.parse(eulaEgg('No features')) as Record<string, unknown>;
    egg['features'] = null;
    const imported = await panel.api(owner, 'POST', '/api/templates/import', {
      content: JSON.stringify(egg),
      filename: 'egg-plain.json',
    });
    assert.equal(imported.status, 201, JSON.stringify(imported.body));
    const created = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'plain server',
      nodeId,
      templateId: imported.body.template.id,
      port: 26565 + Math.floor(Math.random() * 1000),
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as string;
    try {
      const r = await panel.api(owner, 'POST', `/api/servers/${id}/features/eula`, { accept: true });
      assert.equal(r.status, 400);
      assert.equal(r.body.code, 'VALIDATION_FAILED');
      const bad = await panel.api(owner, 'POST', `/api/servers/${id}/features/eula`, { accept: false });
      assert.equal(bad.status, 400);
      await assert.rejects(readFile(path.join(agentDir, 'servers', id, 'eula.txt')), { code: 'ENOENT' });
    } finally {
      await panel.api(owner, 'DELETE', `/api/servers/${id}?force=true`);
    }
  });
});
