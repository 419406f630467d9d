/**
 * Webhook targets (SSRF, issue 13 item 2): without PANEL_OUTBOUND_ALLOW_PRIVATE a webhook may not
 * point at loopback, private, link-local, CGNAT, unspecified or IPv4-mapped addresses, whether
 * written as an IP (in any form the URL parser accepts) or as a name that resolves to one; nor use
 * another scheme or carry credentials. The check is made again at every delivery (a stored target
 * that now resolves privately is refused, the receiver never hit), and redirects are never
 * followed. Real Panel; a loopback receiver.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { seal } from '../../src/lib/crypto.ts';
import { loadOrCreateKey } from '../../src/lib/private-files.ts';
import { type Session, startTestPanel, type TestPanel } from '../helpers.ts';
import { type Receiver, startReceiver } from '../webhook-receiver.ts';

const hook = (url: string) => ({ name: 'h', kind: 'json', url, events: ['node.online'] });

describe('webhook targets (SSRF)', () => {
  let panel: TestPanel;
  let open: TestPanel;
  let owner: Session;
  let openOwner: Session;
  let rx: Receiver;
  let rx2: Receiver;

  before(async () => {
    panel = await startTestPanel();
    owner = await panel.login();
    open = await startTestPanel({ PANEL_OUTBOUND_ALLOW_PRIVATE: '1' });
    openOwner = await open.login();
    rx = await startReceiver();
    rx2 = await startReceiver();
  });
  after(async () => {
    await panel?.stop();
    await open?.stop();
    await rx?.close();
    await rx2?.close();
  });

  test('loopback, private, link-local and mapped targets are refused at create, however written', async () => {
    const port = new URL(rx.url).port;
    for (const url of [
      rx.url,
      `http://localhost:${port}/`,
      'http://127.1/',
      'http://2130706433/',
      'http://0x7f000001/',
      'http://0.0.0.0/',
      'http://[::1]/',
      'http://[::]/',
      'http://[::ffff:127.0.0.1]/',
      'http://[::ffff:7f00:1]/',
      'http://[fe80::1]/',
      'http://[fd00::1]/',
      'http://169.254.169.254/latest/meta-data/',
      'http://10.0.0.1/',
      'http://172.16.5.4/',
      'http://192.168.1.1/',
      'http://100.64.0.1/',
      'http://224.0.0.1/',
    ]) {
      const r = await panel.api(owner, 'POST', '/api/webhooks', hook(url));
      assert.equal(r.status, 400, `${url}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'WEBHOOK_TARGET_REFUSED', url);
      assert.equal(r.body.location, 'url');
    }
    for (const url of [
      'ftp://example.com/',
      'file:///etc/passwd',
      'gopher://x/',
      'http://user:pw@example.com/',
    ]) {
      const r = await panel.api(owner, 'POST', '/api/webhooks', hook(url));
      assert.equal(r.status, 400, url);
      assert.equal(r.body.code, 'WEBHOOK_TARGET_REFUSED', url);
    }
    assert.equal(rx.got.length, 0);
    assert.equal((await panel.api(owner, 'GET', '/api/webhooks')).body.webhooks.length, 0);
  });

  test('checked again at delivery: a stored target that is now private is refused, never reached', async () => {
    // a public address passes the create (no DNS for an IP literal; nothing is sent yet)
    const created = await panel.api(owner, 'POST', '/api/webhooks', {
      ...hook('http://192.0.32.10/'),
      enabled: false,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    // then it points at loopback (as a rebinding name would): sealed as the Panel stores URLs
    const { key } = loadOrCreateKey(panel.dataDir, 'webhooks');
    await panel.app.panel.db
      .updateTable('webhooks')
      .set({ url: seal(key, `${rx.url}/rebound`) })
      .where('id', '=', created.body.id)
      .execute();
    const r = await panel.api(owner, 'POST', `/api/webhooks/${created.body.id}/test`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.state, 'failed');
    assert.equal(r.body.attempts, 1);
    assert.match(r.body.lastError, /^WEBHOOK_TARGET_REFUSED: the host 127\.0\.0\.1 resolves to 127\.0\.0\.1/);
    await new Promise((res) => setTimeout(res, 200));
    assert.equal(rx.got.length, 0);
  });

  test('redirects are not followed (even where private targets are allowed)', async () => {
    const created = await open.api(openOwner, 'POST', '/api/webhooks', hook(`${rx.url}/moved`));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    for (const status of [301, 302, 307, 308]) {
      rx.answers.push({ status, headers: { location: `${rx2.url}/internal` } });
      const r = await open.api(openOwner, 'POST', `/api/webhooks/${created.body.id}/test`);
      assert.equal(r.body.state, 'failed', String(status));
      assert.equal(r.body.lastStatus, status);
    }
    await new Promise((res) => setTimeout(res, 200));
    assert.equal(rx2.got.length, 0);
  });
});
