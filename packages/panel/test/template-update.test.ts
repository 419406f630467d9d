/**
 * Template updates (issue 13 item 3, its template half): a newer version of an egg, uploaded or
 * fetched from its update_url, is shown as a list of differences with each server's impact (kept
 * values failing the new rules, an image gone) and only applied when asked; servers keep their
 * values; another egg (a different uuid) is refused.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createServer, fakeAgentNode, type Session, startTestPanel, type TestPanel } from './helpers.ts';

const UUID = '1f6c7d7e-2b1a-4c55-9a7e-5c1f3d0b9a11';
function egg(version: 1 | 2, updateUrl: string | null = null) {
  return JSON.stringify({
    meta: { version: 'PTDL_v2', update_url: updateUrl },
    uuid: UUID,
    name: 'Update me',
    author: 'a@b.c',
    description: 'd',
    features: null,
    docker_images:
      version === 1 ? { Base: 'ctrl-alt-play/busybox:latest' } : { Base: 'ctrl-alt-play/busybox:v2' },
    file_denylist: [],
    startup: version === 1 ? 'run --level {{LEVEL}}' : 'run --level {{LEVEL}} --fast',
    config: { files: '{}', startup: '{"done": "ready"}', logs: '{}', stop: 'stop' },
    scripts: { installation: { script: '', container: '', entrypoint: 'ash' } },
    variables: [
      {
        name: 'Level',
        description: '',
        env_variable: 'LEVEL',
        default_value: version === 1 ? 'world' : '3',
        user_viewable: true,
        user_editable: true,
        rules: version === 1 ? 'required|string|max:20' : 'required|integer|between:1,9',
        field_type: 'text',
      },
      ...(version === 1
        ? [
            {
              name: 'Old',
              description: '',
              env_variable: 'OLD',
              default_value: 'x',
              user_viewable: true,
              user_editable: true,
              rules: 'string',
              field_type: 'text',
            },
          ]
        : [
            {
              name: 'New',
              description: '',
              env_variable: 'NEW_ONE',
              default_value: 'n',
              user_viewable: true,
              user_editable: true,
              rules: 'string',
              field_type: 'text',
            },
          ]),
    ],
  });
}

describe('template updates', () => {
  let panel: TestPanel;
  let owner: Session;
  let upstream: http.Server;
  let upstreamUrl = '';
  let templateId = '';
  let serverId = '';
  before(async () => {
    upstream = http.createServer((req, res) => {
      if (req.url === '/egg-update-me.json') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(egg(2, `${upstreamUrl}/egg-update-me.json`));
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    panel = await startTestPanel({ PANEL_OUTBOUND_ALLOW_PRIVATE: '1' });
    owner = await panel.login();
    const imported = await panel.api(owner, 'POST', '/api/templates/import', {
      content: egg(1, `${upstreamUrl}/egg-update-me.json`),
    });
    assert.equal(imported.status, 201, JSON.stringify(imported.body));
    templateId = imported.body.template.id;
    const node = await fakeAgentNode(panel, owner);
    serverId = await createServer(panel, owner, node.id, 'kept values', {
      image: undefined,
      templateId,
      environment: { LEVEL: 'my world', OLD: 'y' },
    });
  });
  after(async () => {
    await panel?.stop();
    await new Promise<void>((r) => upstream.close(() => r()));
  });

  const update = (body: unknown) => panel.api(owner, 'POST', `/api/templates/${templateId}/update`, body);
  const startup = async () =>
    (await panel.api(owner, 'GET', `/api/templates/${templateId}`)).body.template.startup;

  test('a preview lists the differences and the servers whose kept values fail; nothing changes', async () => {
    const r = await update({ content: egg(2) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.applied, false);
    const byField = new Map(r.body.changes.map((c: { field: string }) => [c.field, c]));
    assert.deepEqual(byField.get('startup'), {
      field: 'startup',
      kind: 'changed',
      before: 'run --level {{LEVEL}}',
      after: 'run --level {{LEVEL}} --fast',
    });
    assert.equal((byField.get('variables.OLD') as { kind: string }).kind, 'removed');
    assert.equal((byField.get('variables.NEW_ONE') as { kind: string }).kind, 'added');
    assert.equal((byField.get('variables.LEVEL.rules') as { kind: string }).kind, 'changed');
    assert.equal((byField.get('variables.LEVEL.defaultValue') as { after: string }).after, '3');
    assert.equal((byField.get('images.Base') as { kind: string }).kind, 'changed');
    assert.equal(r.body.servers.length, 1);
    assert.equal(r.body.servers[0].id, serverId);
    assert.ok(r.body.servers[0].failingValues.LEVEL?.length > 0, JSON.stringify(r.body.servers[0]));
    assert.equal(r.body.servers[0].imageGone, true);
    assert.equal(await startup(), 'run --level {{LEVEL}}', 'a preview changes nothing');
  });

  test('applied from the update_url: the template changes in place, the server keeps its values', async () => {
    const r = await update({ fromUpdateUrl: true, apply: true });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.applied, true);
    assert.equal(r.body.from, `${upstreamUrl}/egg-update-me.json`);
    assert.equal(await startup(), 'run --level {{LEVEL}} --fast');
    const srv = await panel.api(owner, 'GET', `/api/servers/${serverId}`);
    assert.equal(srv.status, 200);
    assert.equal(srv.body.templateId, templateId);
    assert.equal(srv.body.environment.LEVEL, 'my world');
    // the same version again: nothing to apply
    const again = await update({ content: egg(2), apply: true });
    assert.equal(again.body.applied, false);
    assert.deepEqual(again.body.changes, []);
  });

  test('another egg, a broken file and an egg without update_url are refused', async () => {
    const other = await update({ content: egg(2).replace(UUID, '00000000-0000-4000-8000-000000000000') });
    assert.equal(other.status, 409, JSON.stringify(other.body));
    const broken = await update({ content: '{"meta": {"version": "PTDL_v2"}, ' });
    assert.equal(broken.status, 400);
    assert.equal(broken.body.code, 'TEMPLATE_INVALID');
    const plain = await panel.api(owner, 'POST', '/api/templates/import', {
      content: egg(1).replace(UUID, '11111111-1111-4111-8111-111111111111').replace('Update me', 'No URL'),
    });
    const none = await panel.api(owner, 'POST', `/api/templates/${plain.body.template.id}/update`, {
      fromUpdateUrl: true,
    });
    assert.equal(none.status, 400);
    assert.equal(none.body.code, 'VALIDATION_FAILED');
    const spectator = await panel.userWithRole('spectator');
    assert.equal(
      (await panel.api(spectator, 'POST', `/api/templates/${templateId}/update`, { content: egg(2) })).status,
      403,
    );
  });
});
