/**
 * Registries (issue 11 item 3) with the real Panel, a real Agent, the real Docker Engine and a
 * real registry asking for credentials (Debian's docker-registry with a bcrypt htpasswd file, on
 * 127.0.0.1 over plain HTTP): credentials stored once (sealed, write-only), then pulls and
 * pushes through the Panel's Docker relay, a game server's create on a private image, its image
 * changed to a private one and an image build FROM a private image work with no client auth; a wrong stored password gives the registry's refusal; the password is in
 * no answer, no log line, no Agent file; users without docker.write never get to use them.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { create as createTar } from 'tar';
import { freePort } from '../packages/agent/test/helpers.ts';
import { createAccount } from '../packages/panel/test/helpers.ts';
import { pushImage, type RunningRegistry, startRegistry } from '../packages/web/e2e/registry.ts';
import { docker, type Stack, startStack } from './harness.ts';

const USER = 'cap-pusher';
const PASSWORD = `reg-secret-${process.pid}-${Math.random().toString(36).slice(2)}`;
const logs: string[] = [];
const capture = () =>
  new Writable({
    write(chunk, _enc, cb) {
      logs.push(String(chunk));
      cb();
    },
  });

const agentLogs: string[] = [];
const captureAgent = () =>
  new Writable({
    write(chunk, _enc, cb) {
      agentLogs.push(String(chunk));
      cb();
    },
  });

async function removeImage(ref: string): Promise<void> {
  await docker
    .getImage(ref)
    .remove({ force: true })
    .catch(() => undefined);
}

/** Every file under `dir`, as text. */
async function allText(dir: string): Promise<string> {
  let out = '';
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    out += await readFile(path.join(e.parentPath, e.name), 'latin1').catch(() => '');
  }
  return out;
}

describe('registries: stored credentials used for pulls and pushes through the Panel', () => {
  let reg: RunningRegistry;
  let stack: Stack;
  let base = '';
  let rid = '';
  const answers: string[] = [];
  let privateRef = '';
  const pushedRepo = () => `${reg.host}/cap-test/pushed`;

  /** A relayed POST with the owner's session and no X-Registry-Auth: status and the whole body. */
  async function relayPost(p: string, headers: Record<string, string> = stack.owner.headers) {
    const res = await fetch(`${base}${p}`, { method: 'POST', headers });
    const text = await res.text();
    answers.push(text);
    return { status: res.status, text };
  }
  async function api(method: string, p: string, body?: unknown) {
    const r = await stack.panel.api(stack.owner, method, p, body);
    answers.push(JSON.stringify(r.body));
    return r;
  }

  before(async () => {
    reg = await startRegistry({ htpasswd: { username: USER, password: PASSWORD } });
    privateRef = `${reg.host}/cap-test/private:v1`;
    await pushImage(docker, privateRef, {
      authconfig: { username: USER, password: PASSWORD, serveraddress: reg.host },
      changes: ['CMD ["sleep","3600"]'],
    });
    stack = await startStack('registries', { panelLogStream: capture(), agentLogStream: captureAgent() });
    base = `${stack.panel.url}/api/nodes/${stack.nodeId}/docker`;
  });
  after(async () => {
    await stack?.stop();
    for (const ref of [privateRef, `${pushedRepo()}:v2`]) await removeImage(ref);
    await reg?.stop();
  });

  it('the registry really asks for credentials: a pull through the relay without stored ones fails', async () => {
    await removeImage(privateRef);
    const r = await relayPost(`/images/create?fromImage=${encodeURIComponent(privateRef)}`);
    assert.match(r.text, /no basic auth credentials|unauthorized|authentication required/i, r.text);
  });

  it('stores credentials write-only and sealed; admins only; activity without secrets', async () => {
    const c = await api('POST', '/api/registries', {
      name: 'local',
      host: `http://${reg.host}/`,
      username: USER,
      password: PASSWORD,
    });
    assert.equal(c.status, 201, JSON.stringify(c.body));
    rid = c.body.id;
    assert.equal(c.body.host, reg.host, 'the host is normalised (no scheme, no path)');
    assert.equal(c.body.hasPassword, true);
    assert.equal(Object.hasOwn(c.body, 'password'), false);
    const dup = await api('POST', '/api/registries', { name: 'again', host: reg.host, username: 'x' });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.code, 'CONFLICT');
    const bad = await api('POST', '/api/registries', { name: 'bad', host: 'not a host', username: 'x' });
    assert.equal(bad.status, 400);
    const list = await api('GET', '/api/registries');
    assert.equal(list.status, 200);
    assert.deepEqual(
      list.body.registries.map((x: { id: string; hasPassword: boolean }) => [x.id, x.hasPassword]),
      [[rid, true]],
    );
    const p = await api('PATCH', `/api/registries/${rid}`, { name: 'local registry' });
    assert.equal(p.status, 200);
    assert.equal(p.body.name, 'local registry');
    assert.equal(p.body.hasPassword, true, 'a patch without password keeps it');

    const row = await stack.panel.app.panel.db
      .selectFrom('registries')
      .selectAll()
      .where('id', '=', rid)
      .executeTakeFirstOrThrow();
    assert.ok(row.password_sealed?.startsWith('v1.'), 'sealed (AES-256-GCM)');
    assert.ok(!JSON.stringify(row).includes(PASSWORD), 'not in the database in clear');

    const user = await createAccount(stack.panel, stack.owner, `reg-user-${process.pid}`, 'user');
    const denied = await stack.panel.api(user, 'GET', '/api/registries');
    assert.equal(denied.status, 403);
    assert.equal(
      (await stack.panel.api(user, 'POST', '/api/registries', { name: 'x', host: 'a.io', username: 'u' }))
        .status,
      403,
    );

    const act = await api('GET', '/api/activity?action=registry');
    assert.equal(act.status, 200);
    const actions = act.body.entries.map((e: { action: string }) => e.action);
    assert.ok(
      actions.includes('registry.create') && actions.includes('registry.update'),
      JSON.stringify(actions),
    );
    assert.ok(
      act.body.entries.some((e: { details?: { host?: string } }) => e.details?.host === reg.host),
      'entries name the host',
    );
  });

  it('a test login through the node’s Engine succeeds with the stored credentials', async () => {
    const t = await api('POST', `/api/registries/${rid}/test`, { nodeId: stack.nodeId });
    assert.equal(t.status, 200, JSON.stringify(t.body));
    assert.equal(t.body.ok, true);
    assert.match(t.body.status, /login succeeded/i);
  });

  it('pulls, tags and pushes through the relay with the stored credentials and no client auth', async () => {
    await removeImage(privateRef);
    const pull = await relayPost(`/images/create?fromImage=${encodeURIComponent(privateRef)}`);
    assert.equal(pull.status, 200);
    assert.doesNotMatch(pull.text, /"error"/, pull.text);
    assert.match(pull.text, /Pull complete|Downloaded newer image/);
    await docker.getImage(privateRef).inspect();

    const tag = await relayPost(
      `/images/${encodeURIComponent(privateRef)}/tag?repo=${encodeURIComponent(pushedRepo())}&tag=v2`,
    );
    assert.equal(tag.status, 201, tag.text);
    // dockerode and the docker CLI send `{}` when they have no credentials: that is "none" too
    const push = await relayPost(`/images/${encodeURIComponent(pushedRepo())}/push?tag=v2`, {
      ...stack.owner.headers,
      'x-registry-auth': Buffer.from('{}').toString('base64'),
    });
    assert.equal(push.status, 200);
    assert.doesNotMatch(push.text, /"error"/, push.text);
    assert.match(push.text, /"status":"v2: digest: sha256:/);
    const tags = await fetch(`http://${reg.host}/v2/cap-test/pushed/tags/list`, {
      headers: { authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` },
    });
    assert.deepEqual(((await tags.json()) as { tags: string[] }).tags, ['v2']);

    const act = await api('GET', '/api/activity?action=node.docker');
    const injected = act.body.entries.filter((e: { details?: { registry?: string } }) => e.details?.registry);
    assert.ok(injected.length >= 2, 'the pull and the push are logged with the registry used');
  });

  it('a game server on a private image is created: the Agent pulls with the credentials and keeps none', async () => {
    await removeImage(privateRef);
    const r = await api('POST', '/api/servers?wait=true', {
      name: 'private-image',
      nodeId: stack.nodeId,
      image: privateRef,
      startup: 'sleep 3600',
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const [c] = await stack.containers(r.body.id);
    assert.equal(c?.Image, privateRef);
    assert.ok(!(await allText(stack.agentDir)).includes(PASSWORD), 'no Agent file holds the password');
  });

  it("a server's image changed to a private one is pulled with the credentials on the update", async () => {
    const made = await api('POST', '/api/servers?wait=true', {
      name: 'to-private',
      nodeId: stack.nodeId,
      image: 'ctrl-alt-play/busybox:latest',
      startup: 'sleep 3600',
    });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    await removeImage(privateRef);
    const r = await api('PATCH', `/api/servers/${made.body.id}?wait=true`, { image: privateRef });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const [c] = await stack.containers(made.body.id);
    assert.equal(c?.Image, privateRef);
    await docker.getImage(privateRef).inspect();
  });

  it("a reinstall pulls the template's private install image with the credentials", async () => {
    const imported = await api('POST', '/api/templates/import', {
      content: JSON.stringify({
        meta: { version: 'PTDL_v2', update_url: null },
        uuid: `5e0c1f7a-2b1a-4c55-9a7e-${String(process.pid).padStart(12, '0').slice(-12)}`,
        name: `Private installer ${process.pid}`,
        author: 'a@b.c',
        description: 'an install image on the private registry',
        features: null,
        docker_images: { Base: 'ctrl-alt-play/busybox:latest' },
        file_denylist: [],
        startup: 'sleep 3600',
        config: { files: '{}', startup: '{"done": ""}', logs: '{}', stop: '^C' },
        scripts: {
          installation: {
            script: 'echo installed > /mnt/server/installed.txt',
            container: privateRef,
            entrypoint: 'sh',
          },
        },
        variables: [],
      }),
    });
    assert.ok(imported.status === 201 || imported.status === 200, JSON.stringify(imported.body));
    const templateId = imported.body.template.id as string;
    const port = await freePort('0.0.0.0');
    const pool = await api('POST', `/api/nodes/${stack.nodeId}/allocations`, {
      ip: '0.0.0.0',
      ports: [String(port)],
    });
    assert.equal(pool.status, 201, JSON.stringify(pool.body));
    const made = await api('POST', '/api/servers?wait=true', {
      name: 'private-installer',
      nodeId: stack.nodeId,
      templateId,
      allocationId: pool.body[0].id,
    });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const id = made.body.id as string;
    const status = async () => (await api('GET', `/api/servers/${id}`)).body.status as string;
    const settle = async () => {
      for (let i = 0; i < 600; i++) {
        const st = await status();
        if (st !== 'installing') return st;
        await new Promise((r) => setTimeout(r, 100));
      }
      return 'installing';
    };
    assert.equal(await settle(), 'offline');
    // the install image gone from the node: the reinstall must pull it again, from the private registry
    await removeImage(privateRef);
    const re = await api('POST', `/api/servers/${id}/reinstall`);
    assert.equal(re.status, 202, JSON.stringify(re.body));
    let op: { success: boolean | null; errorMessage: string | null } | undefined;
    for (let i = 0; i < 600 && (op?.success ?? null) === null; i++) {
      await new Promise((r) => setTimeout(r, 100));
      op = (await api('GET', `/api/servers/${id}/operations`)).body.find(
        (o: { id: string }) => o.id === re.body.operationId,
      );
    }
    assert.equal(op?.success, true, JSON.stringify(op));
    assert.equal(await settle(), 'offline');
    await docker.getImage(privateRef).inspect();
    assert.ok(!(await allText(stack.agentDir)).includes(PASSWORD), 'no Agent file holds the password');
  });

  it('a build whose FROM is on the private registry pulls it with the stored credentials', async () => {
    await removeImage(privateRef);
    const dir = await mkdtemp(path.join(tmpdir(), 'cap-build-'));
    const tag = `cap-test/built-${process.pid}:v1`;
    try {
      await writeFile(path.join(dir, 'Dockerfile'), `FROM ${privateRef}\nLABEL cap.built=yes\n`);
      const context = await new Promise<Buffer>((resolve, reject) => {
        const chunks: Buffer[] = [];
        const pack = createTar({ cwd: dir, portable: true }, ['Dockerfile']);
        pack.on('data', (c: Buffer) => chunks.push(c));
        pack.on('end', () => resolve(Buffer.concat(chunks)));
        pack.on('error', reject);
      });
      const res = await fetch(`${base}/build?t=${encodeURIComponent(tag)}&rm=1`, {
        method: 'POST',
        headers: { ...stack.owner.headers, 'content-type': 'application/x-tar' },
        body: new Uint8Array(context),
      });
      const text = await res.text();
      answers.push(text);
      assert.equal(res.status, 200, text);
      assert.doesNotMatch(text, /"error"/, text);
      const built = await docker.getImage(tag).inspect();
      assert.equal(built.Config?.Labels?.['cap.built'], 'yes');
      const act = await api('GET', '/api/activity?action=node.docker');
      assert.ok(
        act.body.entries.some(
          (e: { details?: { path?: string; registry?: string } }) =>
            e.details?.path === '/build' && e.details.registry?.includes(reg.host),
        ),
        'the build is logged with the registries whose credentials went with it',
      );
    } finally {
      await removeImage(tag);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a wrong stored password: the registry’s refusal comes back (relay stream and test login)', async () => {
    const p = await api('PATCH', `/api/registries/${rid}`, { password: 'wrong-password' });
    assert.equal(p.status, 200);
    const t = await api('POST', `/api/registries/${rid}/test`, { nodeId: stack.nodeId });
    assert.equal(t.status, 502);
    assert.equal(t.body.code, 'REGISTRY_AUTH_FAILED');
    assert.match(t.body.message, /unauthorized|authentication required|401/i);
    await removeImage(`${pushedRepo()}:v2`);
    const pull = await relayPost(`/images/create?fromImage=${encodeURIComponent(`${pushedRepo()}:v2`)}`);
    // the Engine answers the registry's 401 as its own error (an HTTP error, or an error entry in the stream)
    assert.match(pull.text, /unauthorized: authentication required/, pull.text);
    assert.doesNotMatch(pull.text, /Pull complete/);
    assert.equal((await api('PATCH', `/api/registries/${rid}`, { password: PASSWORD })).status, 200);
  });

  it('a user with docker.read only never triggers an injected pull', async () => {
    const u = await createAccount(stack.panel, stack.owner, `reg-reader-${process.pid}`, 'user');
    const g = await api('PUT', `/api/nodes/${stack.nodeId}/docker-access/${u.id}`, {
      permissions: ['docker.read'],
    });
    assert.equal(g.status, 200);
    await removeImage(`${pushedRepo()}:v2`);
    const r = await relayPost(
      `/images/create?fromImage=${encodeURIComponent(`${pushedRepo()}:v2`)}`,
      u.headers,
    );
    assert.equal(r.status, 403);
    assert.match(r.text, /PERMISSION_DENIED/);
    await assert.rejects(docker.getImage(`${pushedRepo()}:v2`).inspect());
  });

  it('the password is in no API answer, no Panel log line and no Agent log line', async () => {
    assert.ok(logs.length > 0, 'the Panel logged');
    assert.ok(!logs.join('\n').includes(PASSWORD), 'not in the Panel log');
    assert.ok(agentLogs.length > 0, 'the Agent logged');
    assert.ok(!agentLogs.join('\n').includes(PASSWORD), 'not in the Agent log');
    assert.ok(!answers.join('\n').includes(PASSWORD), 'not in any answer');
    const del = await api('DELETE', `/api/registries/${rid}`);
    assert.equal(del.status, 204);
    assert.equal((await api('GET', `/api/registries`)).body.registries.length, 0);
  });
});
