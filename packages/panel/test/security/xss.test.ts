/**
 * XSS (Pterodactyl GHSA-384w-wffr-x63q, 0.6.3 console rendering): game output and template names
 * go out as JSON data with nosniff, never as HTML; the SPA fallback serves the file as it is and
 * reflects nothing of the URL.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FakeAgent } from '../fake-agent.ts';
import {
  createServer,
  fakeAgentNode,
  type Session,
  startTestPanel,
  type TestPanel,
  until,
} from '../helpers.ts';

const PAYLOAD = '<script>alert(1)</script><img src=x onerror=alert(2)>\u001b]8;;javascript:alert(3)\u0007x';

describe('XSS: data stays data', () => {
  let panel: TestPanel;
  let owner: Session;
  let agent: FakeAgent;
  let serverId: string;
  let index: string;
  const web = mkdtempSync(join(tmpdir(), 'cap-xss-web-'));

  before(async () => {
    index = '<!doctype html><title>cap</title><div id="root"></div>';
    writeFileSync(join(web, 'index.html'), index);
    panel = await startTestPanel({ PANEL_WEB_DIST: web });
    owner = await panel.login();
    const node = await fakeAgentNode(panel, owner);
    agent = node.agent;
    serverId = await createServer(panel, owner, node.id, PAYLOAD.slice(0, 40));
  });
  after(async () => {
    await agent.close();
    await panel.stop();
    rmSync(web, { recursive: true, force: true });
  });

  const get = async (path: string) => {
    const r = await fetch(`${panel.url}${path}`, { headers: { cookie: owner.cookie } });
    return { r, text: await r.text() };
  };
  const isJsonData = (r: Response) => {
    assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  };

  test('console lines (with HTML and escape sequences) come back verbatim inside JSON', async () => {
    agent.emit('server_log', { serverId, message: PAYLOAD });
    await until(
      async () =>
        (await panel.api(owner, 'GET', `/api/servers/${serverId}/telemetry`)).body.console.length > 0,
    );
    const { r, text } = await get(`/api/servers/${serverId}/telemetry`);
    isJsonData(r);
    assert.deepEqual(JSON.parse(text).console, [PAYLOAD]);
    const list = await get('/api/servers');
    isJsonData(list.r);
    assert.equal(JSON.parse(list.text)[0].name, PAYLOAD.slice(0, 40));
  });

  test('a template named with HTML is stored and listed as JSON text', async () => {
    const egg = JSON.parse(
      readFileSync(new URL('../../../../templates/builtin/openttd.json', import.meta.url), 'utf8'),
    );
    const name = '<svg onload=alert(4)>';
    const imported = await panel.api(owner, 'POST', '/api/templates/import', {
      content: JSON.stringify({ ...egg, uuid: null, name }),
      filename: 'x.json',
    });
    assert.equal(imported.status, 201, JSON.stringify(imported.body).slice(0, 300));
    const { r, text } = await get('/api/templates');
    isJsonData(r);
    assert.ok((JSON.parse(text) as { name: string }[]).some((t) => t.name === name));
  });

  test('errors that echo the request are JSON, not HTML', async () => {
    for (const path of ['/api/<script>alert(1)</script>', `/api/servers/${encodeURIComponent('<b>x</b>')}`]) {
      const { r, text } = await get(path);
      assert.equal(r.status, 404);
      isJsonData(r);
      assert.ok(JSON.parse(text).code);
    }
  });

  test('the SPA fallback serves index.html byte for byte, framing refused, nothing reflected', async () => {
    const { r, text } = await get(
      '/servers/%3Cscript%3Ealert(1)%3C%2Fscript%3E?q=%3Csvg%20onload%3Dalert(1)%3E',
    );
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/html/);
    assert.equal(text, index);
    assert.equal(r.headers.get('x-frame-options'), 'DENY');
    assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
  });
});
