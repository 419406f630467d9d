/**
 * SSRF (a Wings advisory class): URLs the Panel fetches because a user or an outside service
 * named them (a mod catalog and its download links) never reach loopback, private, link-local
 * or other non-public addresses unless PANEL_OUTBOUND_ALLOW_PRIVATE allows it; the check is on
 * the address really connected to (a name resolving to loopback is refused too), redirects are
 * not followed, and a body is cut at its cap while it streams.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { checkOutboundUrl, isPublicAddress, outboundGet, outboundJson } from '../../src/net/outbound.ts';
import { createServer, fakeAgentNode, startTestPanel, type TestPanel } from '../helpers.ts';

const rejectsWith = (code: string) => (e: unknown) => (e as { code?: string }).code === code;

describe('outbound URLs: only public addresses', () => {
  let server: http.Server;
  let port = 0;
  let hits = 0;
  before(async () => {
    server = http.createServer((req, res) => {
      hits++;
      if (req.url === '/redirect') {
        res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' });
        return res.end();
      }
      if (req.url === '/big') {
        res.writeHead(200, { 'content-type': 'application/json' }); // chunked: no length to refuse early
        res.write('['.padEnd(600, ' '));
        return res.end(']');
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  test('address classes', () => {
    for (const a of [
      '127.0.0.1',
      '10.1.2.3',
      '172.16.0.1',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '255.255.255.255',
      '224.0.0.1',
      '::1',
      '::',
      'fe80::1',
      'fc00::1',
      '::ffff:127.0.0.1',
      '::ffff:10.0.0.1',
      'not-an-ip',
    ])
      assert.equal(isPublicAddress(a), false, a);
    for (const a of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8'])
      assert.equal(isPublicAddress(a), true, a);
  });

  test('URL forms: only http(s), no credentials, no literal private host', () => {
    for (const u of [
      'file:///etc/passwd',
      'gopher://example.com/',
      'http://user:pw@example.com/',
      'http://127.0.0.1/',
      'http://[::1]/',
      'http://2130706433/', // 127.0.0.1 as one number: URL normalises it
      'http://0x7f.1/',
      'not a url',
    ])
      assert.throws(() => checkOutboundUrl(u, false), rejectsWith('URL_NOT_ALLOWED'), u);
    assert.equal(checkOutboundUrl('http://127.0.0.1/', true).hostname, '127.0.0.1');
  });

  test('a name that resolves to loopback is refused before any request; allowed when told', async () => {
    const before = hits;
    await assert.rejects(
      outboundJson(`http://localhost:${port}/`, { allowPrivate: false, maxBytes: 1024 }),
      rejectsWith('URL_NOT_ALLOWED'),
    );
    await assert.rejects(
      outboundJson(`http://127.0.0.1:${port}/`, { allowPrivate: false, maxBytes: 1024 }),
      rejectsWith('URL_NOT_ALLOWED'),
    );
    assert.equal(hits, before, 'the server saw nothing');
    assert.deepEqual(
      await outboundJson(`http://localhost:${port}/`, { allowPrivate: true, maxBytes: 1024 }),
      { ok: true },
    );
  });

  test('redirects are not followed; bodies are cut at their cap', async () => {
    const r = await outboundGet(`http://127.0.0.1:${port}/redirect`, { allowPrivate: true, maxBytes: 1024 });
    assert.equal(r.status, 302);
    r.body.resume();
    await assert.rejects(
      outboundJson(`http://127.0.0.1:${port}/redirect`, { allowPrivate: true, maxBytes: 1024 }),
      rejectsWith('UPSTREAM_ERROR'),
    );
    await assert.rejects(
      outboundJson(`http://127.0.0.1:${port}/big`, { allowPrivate: true, maxBytes: 100 }),
      rejectsWith('UPSTREAM_ERROR'),
    );
  });
});

describe('the mod catalog through the Panel, without PANEL_OUTBOUND_ALLOW_PRIVATE', () => {
  let panel: TestPanel;
  let catalog: http.Server;
  let hits = 0;
  before(async () => {
    catalog = http.createServer((_req, res) => {
      hits++;
      res.end('{"hits":[],"total_hits":0}');
    });
    await new Promise<void>((r) => catalog.listen(0, '127.0.0.1', r));
    panel = await startTestPanel({
      PANEL_MODRINTH_URL: `http://127.0.0.1:${(catalog.address() as AddressInfo).port}`,
    });
  });
  after(async () => {
    await panel?.stop();
    await new Promise<void>((r) => catalog.close(() => r()));
  });

  test('a catalog on loopback is refused with URL_NOT_ALLOWED and never called', async () => {
    const owner = await panel.login();
    const node = await fakeAgentNode(panel, owner);
    const egg = readFileSync(
      new URL('../../../web/e2e/fixtures/egg-busybox-paper-mods.json', import.meta.url),
      'utf8',
    );
    const t = await panel.api(owner, 'POST', '/api/templates/import', { content: egg, filename: 'egg.json' });
    assert.equal(t.status, 201, JSON.stringify(t.body));
    const id = await createServer(panel, owner, node.id, 'ssrf', {
      templateId: t.body.template.id,
      image: undefined,
    });
    const r = await panel.api(owner, 'GET', `/api/servers/${id}/mods/catalog?folder=plugins&query=x`);
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.code, 'URL_NOT_ALLOWED');
    assert.equal(hits, 0);
    await node.agent.close();
  });

  test("an egg's update_url on loopback is refused with URL_NOT_ALLOWED and never fetched", async () => {
    const owner = await panel.login();
    const port = (catalog.address() as AddressInfo).port;
    const egg = JSON.parse(
      readFileSync(new URL('../../../web/e2e/fixtures/egg-busybox-paper-mods.json', import.meta.url), 'utf8'),
    ) as { meta: { update_url: string | null }; name: string };
    egg.meta.update_url = `http://localhost:${port}/egg.json`;
    egg.name = 'Paper with an update_url';
    const t = await panel.api(owner, 'POST', '/api/templates/import', { content: JSON.stringify(egg) });
    assert.equal(t.status, 201, JSON.stringify(t.body));
    const r = await panel.api(owner, 'POST', `/api/templates/${t.body.template.id}/update`, {
      fromUpdateUrl: true,
    });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.code, 'URL_NOT_ALLOWED');
    assert.equal(hits, 0);
  });
});
