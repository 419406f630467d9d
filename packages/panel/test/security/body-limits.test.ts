/**
 * Oversize and wrongly typed request bodies: refused before anything reads them, with codes of
 * their own (not a generic VALIDATION_FAILED), so a client can tell "too big" from "malformed".
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Session, startTestPanel, type TestPanel } from '../helpers.ts';

describe('request bodies over the limit or of the wrong type', () => {
  let panel: TestPanel;
  let owner: Session;
  before(async () => {
    panel = await startTestPanel();
    owner = await panel.login();
  });
  after(() => panel.stop());

  test('a body over the 1 MiB limit is 413 PAYLOAD_TOO_LARGE', async () => {
    const r = await fetch(`${panel.url}/api/nodes`, {
      method: 'POST',
      headers: { ...owner.headers, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) }),
    });
    assert.equal(r.status, 413);
    assert.equal(((await r.json()) as { code: string }).code, 'PAYLOAD_TOO_LARGE');
  });

  test('a body of an unsupported media type is 415 UNSUPPORTED_MEDIA_TYPE', async () => {
    const r = await fetch(`${panel.url}/api/nodes`, {
      method: 'POST',
      headers: { ...owner.headers, 'content-type': 'application/x-evil' },
      body: 'name=x',
    });
    assert.equal(r.status, 415);
    assert.equal(((await r.json()) as { code: string }).code, 'UNSUPPORTED_MEDIA_TYPE');
  });

  test('malformed JSON stays 400 VALIDATION_FAILED', async () => {
    const r = await fetch(`${panel.url}/api/nodes`, {
      method: 'POST',
      headers: { ...owner.headers, 'content-type': 'application/json' },
      body: '{"name":',
    });
    assert.equal(r.status, 400);
    assert.equal(((await r.json()) as { code: string }).code, 'VALIDATION_FAILED');
  });
});
