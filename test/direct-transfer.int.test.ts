/**
 * Direct transfer URLs (issue 10 item 2) with the real Panel, a real Agent (API key on, so its
 * HTTP API serves /transfers) and the real Docker Engine: with the node's `transferUrl` set to the
 * Agent's loopback HTTP address, a file upload and its download go straight to the Agent
 * (byte-identical, the Panel's relay untouched), a backup download too (with x-checksum-sha256);
 * the Agent answers the CORS preflight for the Panel's origin and refuses another; with
 * `transferUrl` null the relay still carries them, and a direct URL that cannot be reached falls
 * back to `relayUrl` with the same ticket.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Session, TestPanel } from '../packages/panel/test/helpers.ts';
import { freePort } from '../packages/panel/test/helpers.ts';
import { IMAGE, type Stack, startStack } from './harness.ts';

const API_KEY = 'direct-transfer-api-key-0123456789';
const sha256 = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('Panel + Agent: transfers straight to the Agent (node transferUrl)', () => {
  let stack: Stack | undefined;
  let panel: TestPanel;
  let owner: Session;
  let serverId = '';
  let dir = '';
  let agentBase = '';
  let origin = '';
  const bytes = randomBytes(3 * 1024 * 1024 + 17);

  before(async () => {
    stack = await startStack('direct', { agentEnv: { AGENT_API_KEY: API_KEY } });
    ({ panel, owner } = stack);
    agentBase = `http://127.0.0.1:${stack.agent.httpPort}`;
    origin = new URL(panel.url).origin;
    const r = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'direct',
      nodeId: stack.nodeId,
      image: IMAGE,
      startup: 'sleep 3600',
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    serverId = r.body.id as string;
    dir = path.join(stack.agentDir, 'servers', serverId);
  });
  after(async () => {
    await stack?.stop();
  });

  const setTransferUrl = async (transferUrl: string | null) => {
    const r = await panel.api(owner, 'PATCH', `/api/nodes/${stack?.nodeId}`, { transferUrl });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.transferUrl, transferUrl);
  };
  const grant = (body: Record<string, unknown>) =>
    panel.api(owner, 'POST', `/api/servers/${serverId}/files/transfers`, body);
  const abs = (u: string) => (u.startsWith('/') ? `${panel.url}${u}` : u);

  it('upload and download go to the Agent directly, byte-identical (CORS headers for the Panel origin)', async () => {
    await setTransferUrl(agentBase);
    const up = await grant({ direction: 'upload', path: 'direct/up.bin', size: bytes.length });
    assert.equal(up.status, 201, JSON.stringify(up.body));
    assert.equal(up.body.url, `${agentBase}/transfers/${up.body.ticket}`);
    assert.equal(up.body.relayUrl, `/api/transfers/${up.body.ticket}`);
    const put = await fetch(up.body.url, {
      method: 'PUT',
      headers: { origin, 'content-type': 'application/octet-stream' },
      body: bytes,
    });
    assert.equal(put.status, 200, await put.clone().text());
    assert.equal(put.headers.get('access-control-allow-origin'), origin);
    assert.deepEqual(await put.json(), { path: '/direct/up.bin', size: bytes.length });
    assert.equal(sha256(await readFile(path.join(dir, 'direct', 'up.bin'))), sha256(bytes));
    // the ticket is used up on the Agent: its relay twin cannot be replayed either
    const replay = await fetch(abs(up.body.relayUrl), { method: 'PUT', body: bytes });
    assert.equal(replay.status, 404);

    const down = await grant({ direction: 'download', path: 'direct/up.bin' });
    assert.equal(down.status, 201, JSON.stringify(down.body));
    assert.equal(down.body.url, `${agentBase}/transfers/${down.body.ticket}`);
    const res = await fetch(down.body.url, { headers: { origin } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('access-control-allow-origin'), origin);
    assert.match(res.headers.get('access-control-expose-headers') ?? '', /content-disposition/);
    assert.match(res.headers.get('content-disposition') ?? '', /up\.bin/);
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), sha256(bytes));
  });

  it('a backup downloads directly with x-checksum-sha256, the same bytes as on the node', async () => {
    await setTransferUrl(agentBase);
    const b = await panel.api(owner, 'POST', `/api/servers/${serverId}/backups?wait=true`, {
      format: 'tar.gz',
    });
    assert.equal(b.status, 200, JSON.stringify(b.body));
    const link = await panel.api(
      owner,
      'POST',
      `/api/servers/${serverId}/backups/${b.body.backupId}/download`,
    );
    assert.equal(link.status, 201, JSON.stringify(link.body));
    assert.ok((link.body.url as string).startsWith(`${agentBase}/transfers/`), link.body.url);
    assert.match(link.body.relayUrl, /^\/api\/transfers\//);
    const res = await fetch(link.body.url, { headers: { origin } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-checksum-sha256'), b.body.sha256);
    assert.equal(res.headers.get('access-control-allow-origin'), origin);
    assert.match(res.headers.get('access-control-expose-headers') ?? '', /x-checksum-sha256/);
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(body.length, b.body.size);
    assert.equal(sha256(body), b.body.sha256);
  });

  it('the Agent answers the preflight for the Panel origin and refuses another; no CORS on its API', async () => {
    const ticket = 'A'.repeat(43);
    const pre = (o: string) =>
      fetch(`${agentBase}/transfers/${ticket}`, {
        method: 'OPTIONS',
        headers: {
          origin: o,
          'access-control-request-method': 'PUT',
          'access-control-request-headers': 'content-type',
        },
      });
    const ok = await pre(origin);
    assert.equal(ok.status, 204);
    assert.equal(ok.headers.get('access-control-allow-origin'), origin);
    assert.match(ok.headers.get('access-control-allow-methods') ?? '', /PUT/);
    assert.match(ok.headers.get('access-control-allow-headers') ?? '', /content-type/);
    assert.equal(ok.headers.get('access-control-allow-credentials'), null);
    const refused = await pre('https://evil.example');
    assert.equal(refused.status, 403);
    assert.equal(((await refused.json()) as { code: string }).code, 'FORBIDDEN');
    assert.equal(refused.headers.get('access-control-allow-origin'), null);
    const api = await fetch(`${agentBase}/api/command`, {
      method: 'POST',
      headers: { origin, 'x-api-key': API_KEY, 'content-type': 'application/json' },
      body: JSON.stringify({
        id: 'c1',
        type: 'command',
        timestamp: new Date().toISOString(),
        action: 'list_servers',
        payload: {},
      }),
    });
    assert.equal(api.status, 200);
    assert.equal(api.headers.get('access-control-allow-origin'), null);
  });

  it('with transferUrl null the relay carries upload and download (url = relayUrl)', async () => {
    await setTransferUrl(null);
    const up = await grant({ direction: 'upload', path: 'relay/up.bin', size: bytes.length });
    assert.equal(up.status, 201, JSON.stringify(up.body));
    assert.equal(up.body.url, `/api/transfers/${up.body.ticket}`);
    assert.equal(up.body.relayUrl, up.body.url);
    const put = await fetch(abs(up.body.url), {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: bytes,
    });
    assert.equal(put.status, 200, await put.clone().text());
    assert.equal(sha256(await readFile(path.join(dir, 'relay', 'up.bin'))), sha256(bytes));
    const down = await grant({ direction: 'download', path: 'relay/up.bin' });
    assert.equal(down.body.url, `/api/transfers/${down.body.ticket}`);
    const res = await fetch(abs(down.body.url));
    assert.equal(res.status, 200);
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), sha256(bytes));
  });

  it('a direct URL that cannot be reached: the same ticket through relayUrl still works', async () => {
    // a port nothing listens on: the direct request fails at the network level, never reaching the Agent
    await setTransferUrl(`http://127.0.0.1:${await freePort()}`);
    const down = await grant({ direction: 'download', path: 'direct/up.bin' });
    assert.equal(down.status, 201, JSON.stringify(down.body));
    assert.notEqual(down.body.url, down.body.relayUrl);
    await assert.rejects(fetch(down.body.url), TypeError);
    const res = await fetch(abs(down.body.relayUrl));
    assert.equal(res.status, 200);
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), sha256(bytes));
    await setTransferUrl(null);
  });
});
