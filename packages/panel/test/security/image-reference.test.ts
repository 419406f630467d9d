/**
 * Image references as an attack on the Docker Engine (a path `../../../etc` the Engine answers
 * with a redirect; a flag `--privileged busybox`): refused by the Panel in a create, a PATCH and
 * a template import, before any Agent hears of them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FakeAgent } from '../fake-agent.ts';
import { fakeAgentNode, type Session, startTestPanel, type TestPanel } from '../helpers.ts';

const BAD = ['../../../etc', '--privileged busybox', 'busybox;rm -rf /', 'Upper/Case', 'a//b', 'x:bad tag'];

describe('bad image references at the Panel', () => {
  let panel: TestPanel;
  let owner: Session;
  let agent: FakeAgent;
  let nodeId: string;

  before(async () => {
    panel = await startTestPanel();
    owner = await panel.login();
    const node = await fakeAgentNode(panel, owner);
    nodeId = node.id;
    agent = node.agent;
  });
  after(async () => {
    await agent.close();
    await panel.stop();
  });

  test('a create with a bad image is 400 VALIDATION_FAILED at "image", nothing reaches the Agent', async () => {
    for (const image of BAD) {
      const r = await panel.api(owner, 'POST', '/api/servers?wait=true', { name: 'bad', nodeId, image });
      assert.equal(r.status, 400, `${image}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'VALIDATION_FAILED', image);
    }
    assert.equal(agent.commands.filter((c) => c.action === 'create_server').length, 0);
    const servers = (await panel.api(owner, 'GET', '/api/servers')).body as unknown[];
    assert.equal(servers.length, 0);
  });

  test('a PATCH with a bad image is 400 VALIDATION_FAILED and changes nothing', async () => {
    const ok = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'good',
      nodeId,
      image: 'ghcr.io/pterodactyl/yolks:java_17',
    });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    for (const image of BAD) {
      const r = await panel.api(owner, 'PATCH', `/api/servers/${ok.body.id}`, { image });
      assert.equal(r.status, 400, `${image}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'VALIDATION_FAILED', image);
    }
    assert.equal(agent.commands.filter((c) => c.action === 'update_server').length, 0);
    const now = await panel.api(owner, 'GET', `/api/servers/${ok.body.id}`);
    assert.equal(now.body.image, 'ghcr.io/pterodactyl/yolks:java_17');
  });

  test('an egg with a bad docker image or install container is TEMPLATE_INVALID at its location', async () => {
    const egg = (images: unknown, container = 'ghcr.io/pterodactyl/installers:alpine') =>
      JSON.stringify({
        meta: { version: 'PTDL_v2' },
        name: 'Bad image',
        docker_images: images,
        startup: 'run',
        config: { startup: '{"done": "ready"}', stop: 'stop', files: '{}', logs: '{}' },
        scripts: { installation: { script: 'true', container, entrypoint: 'ash' } },
        variables: [],
      });
    const cases: [string, string][] = [
      [egg({ Evil: '../../../etc' }), 'docker_images.Evil'],
      [egg({ Flag: '--privileged busybox' }), 'docker_images.Flag'],
      [egg({ Ok: 'ghcr.io/x/y:1' }, '../../../etc'), 'scripts.installation.container'],
    ];
    for (const [content, location] of cases) {
      const r = await panel.api(owner, 'POST', '/api/templates/import', { content });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.code, 'TEMPLATE_INVALID');
      assert.equal(r.body.location, location);
    }
  });
});
