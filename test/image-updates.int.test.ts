/**
 * Image updates with rollback (issue 13 item 3) on the real Panel, Agent, Docker Engine and a
 * real registry (Debian's docker-registry on loopback): v1 of `<registry>/cap/app:latest` is
 * pushed and a server made on it; v2 pushed under the same tag → the check shows an update →
 * the update pulls, recreates and the container runs v2 and is ready. Then an image that exits at
 * once and one that never prints its ready line → each update is rolled back to the image before,
 * the server running on it, outcome rolled_back with the reason (activity log too). A registry
 * that cannot be reached → the check stores its error and nothing else changes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Json, until } from '../packages/panel/test/helpers.ts';
import { pushImage, type RunningRegistry, startRegistry } from '../packages/web/e2e/registry.ts';
import { docker, type Stack, startStack } from './harness.ts';

/** an image whose /app/run prints `script` (a shell body) */
const appLayer = (body: string) => [
  'sh',
  '-c',
  `mkdir -p /app && printf '%s\\n' '#!/bin/sh' ${JSON.stringify(body)} > /app/run && chmod 755 /app/run`,
];

/** A server on `image` running `/app/run` with `ready` as its done line, started and running. */
async function runningServer(stack: Stack, name: string, image: string): Promise<string> {
  const api = (m: string, p: string, b?: unknown) => stack.panel.api(stack.owner, m, p, b);
  const res = await api('POST', '/api/servers?wait=true', {
    name,
    nodeId: stack.nodeId,
    image,
    startup: '/app/run',
    done: 'ready',
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  const id = res.body.id as string;
  assert.equal((await api('POST', `/api/servers/${id}/power`, { action: 'start' })).status, 202);
  await until(async () => (await api('GET', `/api/servers/${id}`)).body.status === 'running', 60_000);
  return id;
}

/** Every image of a test repository, tagged or left untagged by a later pull; then the registry. */
async function cleanUp(stack: Stack | undefined, registry: RunningRegistry | undefined, repo: string) {
  await stack?.stop();
  const mine = (await docker.listImages({ all: true })).filter(
    (i) =>
      (i.RepoTags ?? []).some((t) => t.startsWith(`${registry?.host}/${repo}:`)) ||
      (i.RepoDigests ?? []).some((d) => d.startsWith(`${registry?.host}/${repo}@`)),
  );
  for (const i of mine)
    await docker
      .getImage(i.Id)
      .remove({ force: true })
      .catch(() => undefined);
  await registry?.stop();
}

describe('Panel + Agent + Docker + registry: image updates roll back when the new image is not ready', () => {
  let stack: Stack;
  let registry: RunningRegistry;
  let ref = '';
  let serverId = '';
  const api = (m: string, p: string, b?: unknown) => stack.panel.api(stack.owner, m, p, b);
  const status = async () => (await api('GET', `/api/servers/${serverId}`)).body.status as string;
  const running = async () => {
    const [c] = (await stack.containers(serverId)).filter((x) => x.State === 'running');
    return c;
  };
  const logsOf = async (id: string) =>
    (await docker.getContainer(id).logs({ stdout: true, stderr: true, follow: false })).toString();
  const push = (body: string) => pushImage(docker, ref, { cmd: appLayer(body), layerBytes: 0 });
  const remoteDigest = async () => {
    const d = (await docker.getImage(ref).distribution({})) as { Descriptor: { digest: string } };
    return d.Descriptor.digest;
  };

  before(async () => {
    registry = await startRegistry();
    ref = `${registry.host}/cap/app:latest`;
    await push('echo "ready v1"; exec sleep 3600');
    stack = await startStack('image-updates');
    serverId = await runningServer(stack, 'image update', ref);
  });

  after(() => cleanUp(stack, registry, 'cap/app'));

  it('a new image under the same tag: the check says so, the update runs it and it is ready', async () => {
    const first = await api('POST', `/api/servers/${serverId}/image/check`);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.updateAvailable, false, JSON.stringify(first.body));
    assert.equal(first.body.error, null);
    assert.match(first.body.localDigest, /^sha256:[0-9a-f]{64}$/);

    await push('echo "ready v2"; exec sleep 3600');
    const v2 = await remoteDigest();
    const checked = await api('POST', `/api/servers/${serverId}/image/check`);
    assert.equal(checked.body.updateAvailable, true, JSON.stringify(checked.body));
    assert.equal(checked.body.remoteDigest, v2);
    assert.notEqual(checked.body.localDigest, v2);
    const listed = async () =>
      ((await api('GET', '/api/servers')).body as Json[]).find((x) => x.id === serverId)?.updateAvailable;
    assert.equal(await listed(), true, 'the server list says so too');

    const res = await api('POST', `/api/servers/${serverId}/image/update?wait=true`, {
      readyTimeoutSeconds: 30,
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.outcome, 'updated', JSON.stringify(res.body));
    assert.equal(await status(), 'running');
    const c = await running();
    assert.ok(c, 'a running container');
    const image = await docker.getImage(c.ImageID).inspect();
    assert.ok(
      image.RepoDigests.some((d) => d.endsWith(`@${v2}`)),
      `runs v2: ${image.RepoDigests}`,
    );
    assert.match(await logsOf(c.Id), /ready v2/);
    await until(
      async () => (await api('GET', `/api/servers/${serverId}/image`)).body.updateAvailable === false,
      20_000,
    );
    assert.equal(await listed(), undefined, 'and no longer once it runs v2');
    const op = await api('GET', `/api/operations/${res.body.operationId}`);
    assert.equal(op.body.kind, 'image_update');
    assert.equal(op.body.success, true);
  });

  for (const [what, body] of [
    ['exits at once', 'echo "broken"; exit 3'],
    ['never prints its ready line', 'echo "starting forever"; exec sleep 3600'],
  ] as const) {
    it(`an image that ${what}: rolled back to the image before, running, outcome rolled_back`, async () => {
      const before = await running();
      assert.ok(before);
      await push(body);
      const res = await api('POST', `/api/servers/${serverId}/image/update?wait=true`, {
        readyTimeoutSeconds: 8,
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.outcome, 'rolled_back', JSON.stringify(res.body));
      assert.ok(res.body.reason, 'a reason');
      assert.equal(res.body.imageId, before.ImageID);
      assert.equal(await status(), 'running');
      const after = await running();
      assert.ok(after, 'a running container');
      assert.notEqual(after.Id, before.Id, 'the container was made again');
      assert.equal(after.ImageID, before.ImageID, 'on the image before');
      assert.match(await logsOf(after.Id), /ready v2/);
      // the previous image is kept under its rollback tag, and the tag points at it again
      const kept = await docker.getImage(`${registry.host}/cap/app:cap-rollback-${serverId}`).inspect();
      assert.equal(kept.Id, before.ImageID);
      assert.equal((await docker.getImage(ref).inspect()).Id, before.ImageID);
      const state = await api('GET', `/api/servers/${serverId}/image`);
      assert.equal(state.body.lastUpdate.outcome, 'rolled_back');
      // the check after the rollback: the registry's tag is the broken image, the server runs the one before
      const broken = await remoteDigest();
      await until(async () => {
        const s = (await api('GET', `/api/servers/${serverId}/image`)).body;
        return s.remoteDigest === broken && s.updateAvailable === true;
      }, 20_000);
      await stack.panel.app.panel.activity.settled();
      const log = await api('GET', `/api/servers/${serverId}/activity`);
      const entry = (log.body.entries ?? log.body).find(
        (e: Json) =>
          e.action === 'server.image_update' && JSON.stringify(e.details).includes(res.body.operationId),
      );
      assert.ok(entry, `an activity entry: ${JSON.stringify(log.body).slice(0, 500)}`);
      assert.equal(entry.details.outcome, 'rolled_back');
    });
  }

  it('an unreachable registry: the check stores its error, nothing else changes', async () => {
    const before = await api('GET', `/api/servers/${serverId}/image`);
    const c = await running();
    await registry.stop();
    const res = await api('POST', `/api/servers/${serverId}/image/check`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.ok(res.body.error, 'an error is stored');
    assert.equal(res.body.remoteDigest, before.body.remoteDigest);
    assert.equal(res.body.localDigest, before.body.localDigest);
    assert.equal(res.body.updateAvailable, false, 'no update claimed while the registry fails');
    assert.equal(await status(), 'running');
    assert.equal((await running())?.Id, c?.Id);
  });
});

describe('Panel + Agent + Docker + a registry that needs a password: checks and updates use the stored credentials', () => {
  const USER = 'capuser';
  const PASSWORD = `pw-${process.pid}-private`;
  let stack: Stack;
  let registry: RunningRegistry;
  let ref = '';
  let serverId = '';
  const api = (m: string, p: string, b?: unknown) => stack.panel.api(stack.owner, m, p, b);
  const auth = () => ({ username: USER, password: PASSWORD, serveraddress: registry.host });
  const push = (body: string) =>
    pushImage(docker, ref, { cmd: appLayer(body), layerBytes: 0, authconfig: auth() });

  before(async () => {
    registry = await startRegistry({ htpasswd: { username: USER, password: PASSWORD } });
    ref = `${registry.host}/cap/private:latest`;
    await push('echo "ready p1"; exec sleep 3600');
    stack = await startStack('image-updates-private');
    const reg = await api('POST', '/api/registries', {
      name: 'private',
      host: registry.host,
      username: USER,
      password: PASSWORD,
    });
    assert.equal(reg.status, 201, JSON.stringify(reg.body));
    serverId = await runningServer(stack, 'private image update', ref);
  });

  after(() => cleanUp(stack, registry, 'cap/private'));

  it('the check reads the private digest, and the update pulls with the stored credentials', async () => {
    const first = await api('POST', `/api/servers/${serverId}/image/check`);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.error, null, 'the registry answered the check (credentials sent)');
    assert.equal(first.body.updateAvailable, false);
    await push('echo "ready p2"; exec sleep 3600');
    const checked = await api('POST', `/api/servers/${serverId}/image/check`);
    assert.equal(checked.body.updateAvailable, true, JSON.stringify(checked.body));
    const res = await api('POST', `/api/servers/${serverId}/image/update?wait=true`, {
      readyTimeoutSeconds: 30,
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.outcome, 'updated', JSON.stringify(res.body));
    const [c] = (await stack.containers(serverId)).filter((x) => x.State === 'running');
    assert.ok(c, 'a running container');
    const logs = (
      await docker.getContainer(c.Id).logs({ stdout: true, stderr: true, follow: false })
    ).toString();
    assert.match(logs, /ready p2/);
  });
});
