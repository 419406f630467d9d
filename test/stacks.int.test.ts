/**
 * Compose stacks (issue 11): the real Panel, a real Agent and the real Docker Engine. A
 * two-service busybox stack (one depends on the other, a named volume, a network) is deployed,
 * recognised by Debian's docker-compose, updated (only the changed service recreated), stopped,
 * started and removed; the relay's policy holds for stacks; keys outside the subset are refused.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { docker, IMAGE, type Stack, startStack } from './harness.ts';

const P = `capst${process.pid}`;
const PROJECT_LABEL = 'com.docker.compose.project';
const projects = [P, `${P}priv`, `${P}bad`, `${P}fail`];

// sh as PID 1 exits on TERM at once (a bare `sleep` ignores it and every stop would take 10 s)
const loop = (tag: string) => `["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done # ${tag}"]`;
const composeFile = (webTag: string) => `
services:
  db:
    image: ${IMAGE}
    command: ${loop('db')}
    volumes: ["data:/data"]
    networks: [back]
  web:
    image: ${IMAGE}
    command: ${loop(webTag)}
    depends_on: [db]
    networks: [back]
    environment: { ROLE: web }
networks:
  back: {}
volumes:
  data: {}
`;

async function cleanup(project: string): Promise<void> {
  const filters = { label: [`${PROJECT_LABEL}=${project}`] };
  for (const c of await docker.listContainers({ all: true, filters }))
    await docker
      .getContainer(c.Id)
      .remove({ force: true })
      .catch(() => undefined);
  for (const n of await docker.listNetworks({ filters }))
    await docker
      .getNetwork(n.Id)
      .remove()
      .catch(() => undefined);
  for (const v of (await docker.listVolumes({ filters })).Volumes ?? [])
    await docker
      .getVolume(v.Name)
      .remove()
      .catch(() => undefined);
}

const containersOf = (project: string) =>
  docker.listContainers({ all: true, filters: { label: [`${PROJECT_LABEL}=${project}`] } });

describe('Panel + Agent: compose stacks through the Engine API', () => {
  let stack: Stack;
  let base = '';
  before(async () => {
    for (const p of projects) await cleanup(p);
    stack = await startStack('stacks');
    base = `/api/nodes/${stack.nodeId}/stacks`;
  });
  after(async () => {
    await stack?.stop();
    for (const p of projects) await cleanup(p);
  });

  it('deploys, is seen by docker-compose, updates only the changed service, stops, starts, removes', async () => {
    const admin = await stack.panel.userWithRole('admin');
    const r = await stack.panel.api(admin, 'POST', base, { name: P, compose: composeFile('v1') });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.deepEqual(
      r.body.result.services.map((s: { service: string; action: string }) => [s.service, s.action]),
      [
        ['db', 'created'],
        ['web', 'created'],
      ],
    );
    assert.equal(r.body.stack.status, 'running');
    const list = await containersOf(P);
    assert.equal(list.length, 2);
    for (const c of list) assert.equal(c.State, 'running', c.Names.join());
    const net = await docker.getNetwork(`${P}_back`).inspect();
    assert.equal(Object.keys(net.Containers ?? {}).length, 2, 'both on the stack network');
    const vol = await docker.getVolume(`${P}_data`).inspect();
    assert.equal(vol.Labels?.[PROJECT_LABEL], P);
    const db1 = list.find((c) => c.Labels['com.docker.compose.service'] === 'db');
    const web1 = list.find((c) => c.Labels['com.docker.compose.service'] === 'web');
    assert.ok(db1 && web1);
    assert.ok(web1.Names.includes(`/${P}-web-1`));

    // Debian's docker-compose (1.29) finds the project from the same file by its labels
    if (existsSync('/usr/bin/docker-compose')) {
      const dir = mkdtempSync(path.join(tmpdir(), 'cap-stack-'));
      try {
        writeFileSync(path.join(dir, 'docker-compose.yml'), composeFile('v1'));
        const ps = execFileSync('/usr/bin/docker-compose', ['-p', P, 'ps'], { cwd: dir, encoding: 'utf8' });
        assert.match(ps, new RegExp(`${P}-db-1 .* Up`));
        assert.match(ps, new RegExp(`${P}-web-1 .* Up`));
        const q = execFileSync('/usr/bin/docker-compose', ['-p', P, 'ps', '-q'], {
          cwd: dir,
          encoding: 'utf8',
        });
        assert.deepEqual(q.trim().split('\n').sort(), [db1.Id, web1.Id].sort());
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }

    const listed = await stack.panel.api(admin, 'GET', base);
    assert.equal(listed.status, 200);
    const mine = listed.body.find((s: { name: string }) => s.name === P);
    assert.equal(mine.managed, true);
    assert.equal(mine.containers.length, 2);

    // update: web's command changes, db's does not
    const u = await stack.panel.api(admin, 'PUT', `${base}/${P}`, { compose: composeFile('v2') });
    assert.equal(u.status, 200, JSON.stringify(u.body));
    assert.deepEqual(
      u.body.result.services.map((s: { service: string; action: string }) => [s.service, s.action]),
      [
        ['db', 'unchanged'],
        ['web', 'recreated'],
      ],
    );
    const after2 = await containersOf(P);
    assert.equal(after2.length, 2, 'the old web container is gone');
    const db2 = after2.find((c) => c.Labels['com.docker.compose.service'] === 'db');
    const web2 = after2.find((c) => c.Labels['com.docker.compose.service'] === 'web');
    assert.equal(db2?.Id, db1.Id, 'db was not recreated');
    assert.notEqual(web2?.Id, web1.Id, 'web was recreated');
    assert.equal(web2?.State, 'running');
    assert.ok(web2?.Names.includes(`/${P}-web-1`));

    const stopped = await stack.panel.api(admin, 'POST', `${base}/${P}/stop`);
    assert.equal(stopped.status, 200, JSON.stringify(stopped.body));
    assert.equal(stopped.body.status, 'stopped');
    for (const c of await containersOf(P)) assert.equal(c.State, 'exited');
    const started = await stack.panel.api(admin, 'POST', `${base}/${P}/start`);
    assert.equal(started.status, 200, JSON.stringify(started.body));
    for (const c of await containersOf(P)) assert.equal(c.State, 'running');

    const rm = await stack.panel.api(admin, 'DELETE', `${base}/${P}?volumes=true`);
    assert.equal(rm.status, 200, JSON.stringify(rm.body));
    assert.deepEqual(rm.body, { containers: 2, networks: 1, volumes: 1 });
    assert.equal((await containersOf(P)).length, 0);
    await assert.rejects(docker.getNetwork(`${P}_back`).inspect(), /404|no such network|not found/i);
    await assert.rejects(docker.getVolume(`${P}_data`).inspect(), /404|no such volume|not found/i);
    assert.equal((await stack.panel.api(admin, 'GET', `${base}/${P}`)).body.code, 'STACK_NOT_FOUND');
  });

  it('the policy: a stack with privileged: true is refused for an admin, allowed for an owner', async () => {
    const name = `${P}priv`;
    const compose = `services:\n  root:\n    image: ${IMAGE}\n    command: ${loop('priv')}\n    privileged: true\n`;
    const admin = await stack.panel.userWithRole('admin');
    const refused = await stack.panel.api(admin, 'POST', base, { name, compose });
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    assert.equal(refused.body.code, 'DOCKER_POLICY_DENIED');
    assert.equal(refused.body.details?.service, 'root');
    assert.equal((await containersOf(name)).length, 0, 'nothing was created');
    assert.equal((await stack.panel.api(admin, 'GET', `${base}/${name}`)).status, 404, 'nothing was stored');
    // a bind outside the node's allow-list is the relay's rule too
    const bind = await stack.panel.api(admin, 'POST', base, {
      name,
      compose: `services:\n  b:\n    image: ${IMAGE}\n    volumes: ["/etc:/host-etc:ro"]\n`,
    });
    assert.equal(bind.status, 403, JSON.stringify(bind.body));
    assert.equal(bind.body.code, 'DOCKER_POLICY_DENIED');

    const allowed = await stack.panel.api(stack.owner, 'POST', base, { name, compose });
    // past the policy: the Engine gets it. (An Engine that itself runs without all capabilities,
    // as in an unprivileged CI container, then cannot start it: a deploy failure from the Engine,
    // never the policy's code; the container is made, privileged, either way.)
    if (allowed.status !== 201) {
      assert.equal(allowed.status, 502, JSON.stringify(allowed.body));
      assert.equal(allowed.body.code, 'STACK_DEPLOY_FAILED');
      assert.equal(allowed.body.details.code, 'DOCKER_ERROR');
    }
    const [c] = await containersOf(name);
    assert.ok(c);
    assert.equal((await docker.getContainer(c.Id).inspect()).HostConfig.Privileged, true);
    const rm = await stack.panel.api(stack.owner, 'DELETE', `${base}/${name}`);
    assert.equal(rm.status, 200, JSON.stringify(rm.body));
  });

  it('keys outside the supported subset are refused with STACK_UNSUPPORTED naming each', async () => {
    const name = `${P}bad`;
    const compose = `services:\n  a:\n    image: ${IMAGE}\n    build: .\n    deploy: { replicas: 3 }\nconfigs: {}\n`;
    const r = await stack.panel.api(stack.owner, 'POST', base, { name, compose });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.code, 'STACK_UNSUPPORTED');
    assert.deepEqual(r.body.details.keys, ['configs', 'services.a.build', 'services.a.deploy.replicas']);
    assert.equal((await containersOf(name)).length, 0);
    const invalid = await stack.panel.api(stack.owner, 'POST', base, { name, compose: 'services: [' });
    assert.equal(invalid.status, 400);
    assert.equal(invalid.body.code, 'VALIDATION_FAILED');
    const badName = await stack.panel.api(stack.owner, 'POST', base, { name: 'Bad/Name', compose: 'x' });
    assert.equal(badName.status, 400);
  });

  it('a failure mid-deploy names the service and leaves the services before it running', async () => {
    const name = `${P}fail`;
    const compose = `services:\n  first:\n    image: ${IMAGE}\n    command: ${loop('first')}\n  second:\n    image: 127.0.0.1:1/none/such:image\n    depends_on: [first]\n`;
    const r = await stack.panel.api(stack.owner, 'POST', base, { name, compose });
    assert.equal(r.status, 502, JSON.stringify(r.body));
    assert.equal(r.body.code, 'STACK_DEPLOY_FAILED');
    assert.equal(r.body.details.service, 'second');
    const list = await containersOf(name);
    assert.equal(list.length, 1);
    assert.equal(list[0]?.Labels['com.docker.compose.service'], 'first');
    assert.equal(list[0]?.State, 'running');
    const got = await stack.panel.api(stack.owner, 'GET', `${base}/${name}`);
    assert.equal(got.body.status, 'failed');
    assert.match(got.body.lastError, /second/);
    const plain = await stack.panel.userWithRole('user');
    const denied = await stack.panel.api(plain, 'GET', base);
    assert.equal(denied.status, 403, 'docker.read is needed to see stacks');
    assert.equal(denied.body.code, 'PERMISSION_DENIED');
    assert.equal((await stack.panel.api(stack.owner, 'DELETE', `${base}/${name}`)).status, 200);
  });
});
