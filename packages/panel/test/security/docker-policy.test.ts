/**
 * Attack class: using the Docker relay (`/api/nodes/:id/docker/*`) to take the node over. The
 * policy refuses, for anyone but a Panel owner, with DOCKER_POLICY_DENIED: privileged containers,
 * host namespaces, binds outside the node's allow-list (and the Docker socket), devices, added
 * capabilities, the Agent's own container, privileged execs, devices through an update, and the
 * same hidden in keys of another case (the Engine's JSON decoding ignores case). A fake Agent
 * dials the real tunnel in and splices it to a fake Engine that records what reached it.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Command } from '@cap/protocol';
import WebSocket from 'ws';
import type { FakeAgent } from '../fake-agent.ts';
import { fakeAgentNode, type Session, startTestPanel, type TestPanel, until } from '../helpers.ts';

const AGENT_ID = 'a'.repeat(64);
const EXEC_IN_AGENT = 'e'.repeat(64);

/** Opens the exec terminal's WebSocket: 'open', or the HTTP status of the refusal. */
function execSocket(url: string, cookie: string): Promise<{ open: true } | { status: number }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      headers: { cookie, origin: new URL(url.replace(/^ws/, 'http')).origin },
    });
    ws.once('open', () => {
      ws.close();
      resolve({ open: true });
    });
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0 });
    });
    ws.once('error', reject);
  });
}

describe('security: the Docker relay policy', () => {
  let panel: TestPanel;
  let owner: Session;
  let admin: Session & { email: string };
  let nodeId = '';
  let agent: FakeAgent;
  let engine: http.Server;
  let enginePort = 0;
  /** requests that reached the fake Engine */
  const reached: { method: string; url: string; body: string }[] = [];

  before(async () => {
    engine = http.createServer((req, res) => {
      let body = '';
      req.on('data', (b: Buffer) => {
        body += b.toString();
      });
      req.on('end', () => {
        reached.push({ method: req.method ?? '', url: req.url ?? '', body });
        // an exec's inspect: the container it runs in (EXEC_IN_AGENT is one in the Agent's)
        const exec = /^\/exec\/([0-9a-f]{64})\/json$/.exec(req.url ?? '');
        if (req.method === 'GET' && exec) {
          res.writeHead(200, { 'content-type': 'application/json', 'api-version': '1.41' });
          res.end(
            JSON.stringify({
              ID: exec[1],
              ContainerID: exec[1] === EXEC_IN_AGENT ? AGENT_ID : 'c'.repeat(64),
              Running: false,
            }),
          );
          return;
        }
        res.writeHead(201, { 'content-type': 'application/json', 'api-version': '1.41' });
        res.end(JSON.stringify({ Id: 'b'.repeat(64), Warnings: [] }));
      });
    });
    await new Promise<void>((r) => engine.listen(0, '127.0.0.1', r));
    enginePort = (engine.address() as net.AddressInfo).port;
    panel = await startTestPanel();
    owner = await panel.login();
    admin = await panel.userWithRole('admin');
    const dial = async (cmd: Command) => {
      const ticket = (cmd.payload as { ticket: string }).ticket;
      const { token, id } = agent.credentials;
      const u = new URL(panel.url);
      const req = http.request({
        host: u.hostname,
        port: u.port,
        path: `/api/agent/docker-tunnel/${ticket}`,
        headers: {
          authorization: `Bearer ${token}`,
          'x-agent-id': id,
          connection: 'Upgrade',
          upgrade: 'cap-docker-tunnel',
        },
      });
      req.on('upgrade', (_res, socket, head) => {
        const e = net.connect(enginePort, '127.0.0.1');
        if (head.length > 0) e.write(head);
        socket.pipe(e);
        e.pipe(socket);
        socket.on('close', () => e.destroy());
        e.on('close', () => socket.destroy());
      });
      req.end();
    };
    const node = await fakeAgentNode(panel, owner, {
      handlers: {
        docker_tunnel: (cmd) => {
          void dial(cmd);
          return { started: true, agentContainer: { id: AGENT_ID, name: 'cap-agent' } };
        },
      },
    });
    nodeId = node.id;
    agent = node.agent;
    const put = await panel.api(owner, 'PUT', `/api/nodes/${nodeId}/docker-policy`, {
      bindAllow: ['/srv/games'],
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
  });
  after(async () => {
    agent?.ws.close();
    await panel?.stop();
    await new Promise((r) => engine?.close(r));
  });

  const create = (who: Session, body: unknown, path = '/containers/create') =>
    panel.api(who, 'POST', `/api/nodes/${nodeId}/docker${path}`, body);

  const refused: [string, unknown, string?][] = [
    ['privileged', { Image: 'x', HostConfig: { Privileged: true } }],
    ['privileged, the key in lower case', { Image: 'x', hostconfig: { privileged: true } }],
    ['the same key twice in two cases', { Image: 'x', HostConfig: { Privileged: false, privileged: true } }],
    ['binds under a Unicode fold of the key (ſ for s)', { Image: 'x', HostConfig: { Bindſ: ['/etc:/e'] } }],
    ['seccomp unconfined', { Image: 'x', HostConfig: { SecurityOpt: ['seccomp=unconfined'] } }],
    ['host network', { Image: 'x', HostConfig: { NetworkMode: 'host' } }],
    ['host PID', { Image: 'x', HostConfig: { PidMode: 'host' } }],
    ['host IPC', { Image: 'x', HostConfig: { IpcMode: 'host' } }],
    ['a bind outside the allow-list', { Image: 'x', HostConfig: { Binds: ['/etc:/host-etc'] } }],
    [
      'a bind escaping the allow-list with ..',
      { Image: 'x', HostConfig: { Binds: ['/srv/games/../../etc:/e'] } },
    ],
    [
      'a bind of a sibling with the same prefix',
      { Image: 'x', HostConfig: { Binds: ['/srv/games-other:/e'] } },
    ],
    [
      'a bind Mount',
      { Image: 'x', HostConfig: { Mounts: [{ Type: 'bind', Source: '/root', Target: '/r' }] } },
    ],
    [
      'a volume mount whose device binds /etc',
      {
        Image: 'x',
        HostConfig: {
          Mounts: [
            {
              Type: 'volume',
              Target: '/e',
              VolumeOptions: {
                DriverConfig: { Name: 'local', Options: { type: 'none', o: 'bind', device: '/etc' } },
              },
            },
          ],
        },
      },
    ],
    [
      'the Docker socket',
      { Image: 'x', HostConfig: { Binds: ['/var/run/docker.sock:/var/run/docker.sock'] } },
    ],
    ['the host root', { Image: 'x', HostConfig: { Binds: ['/:/host'] } }],
    [
      'devices',
      { Image: 'x', HostConfig: { Devices: [{ PathOnHost: '/dev/sda', PathInContainer: '/dev/sda' }] } },
    ],
    ['added capabilities', { Image: 'x', HostConfig: { CapAdd: ['SYS_ADMIN'] } }],
    [
      "the Agent's network namespace",
      { Image: 'x', HostConfig: { NetworkMode: `container:${AGENT_ID.slice(0, 12)}` } },
    ],
    ["volumes from the Agent's container", { Image: 'x', HostConfig: { VolumesFrom: ['cap-agent'] } }],
    ['a privileged exec', { Cmd: ['sh'], Privileged: true }, '/containers/web/exec'],
    ['devices through an update', { Devices: [{ PathOnHost: '/dev/mem' }] }, '/containers/web/update'],
    [
      'a local volume binding /etc',
      { Name: 'v', DriverOpts: { type: 'none', o: 'bind', device: '/etc' } },
      '/volumes/create',
    ],
  ];

  for (const [what, body, path] of refused) {
    it(`refuses for an admin, allows for an owner: ${what}`, async () => {
      const before = reached.length;
      const r = await create(admin, body, path);
      // keys that differ only in case are refused outright (VALIDATION_FAILED): either way, nothing reached Docker
      assert.ok(
        (r.status === 403 && r.body.code === 'DOCKER_POLICY_DENIED') ||
          (r.status === 400 && r.body.code === 'VALIDATION_FAILED'),
        `${r.status} ${JSON.stringify(r.body)}`,
      );
      assert.equal(reached.length, before, 'nothing reached the Engine');
      if (r.status === 400) return;
      const o = await create(owner, body, path);
      assert.equal(o.status, 201, JSON.stringify(o.body));
      // (an update first inspects the container: a game server's one is refused)
      const sent = reached.slice(before).filter((x) => !(x.method === 'GET' && x.url.endsWith('/json')));
      assert.equal(sent.length, 1);
    });
  }

  it("an admin may not touch the Agent's own container, by id, prefix or name", async () => {
    const before = reached.length;
    for (const ref of [AGENT_ID, AGENT_ID.slice(0, 5), 'cap-agent']) {
      const r = await panel.api(
        admin,
        'GET',
        `/api/nodes/${nodeId}/docker/containers/${encodeURIComponent(ref)}/json`,
      );
      assert.equal(r.status, 403, `${ref}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'DOCKER_POLICY_DENIED');
    }
    const exec = await create(admin, { Cmd: ['sh'] }, `/containers/cap-agent/exec`);
    assert.equal(exec.status, 403);
    assert.equal(reached.length, before);
  });

  it('allows what the policy permits for an admin, and passes the body as parsed', async () => {
    const before = reached.length;
    const r = await create(admin, {
      Image: 'x',
      HostConfig: { Binds: ['/srv/games/world:/data', 'named-volume:/v'], NetworkMode: 'bridge' },
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(reached.length, before + 1);
    assert.equal(JSON.parse(reached.at(-1)?.body ?? '{}').HostConfig.Binds[0], '/srv/games/world:/data');
  });

  it('the allow-list is set by owners only', async () => {
    const r = await panel.api(admin, 'PUT', `/api/nodes/${nodeId}/docker-policy`, { bindAllow: ['/'] });
    assert.equal(r.status, 403);
    const g = await panel.api(admin, 'GET', `/api/nodes/${nodeId}/docker-policy`);
    assert.deepEqual(g.body, { bindAllow: ['/srv/games'] });
  });

  it('node-level docker.read / docker.write: a user without them gets 403 PERMISSION_DENIED; keys keep their scope', async () => {
    const user = await panel.userWithRole('user');
    const me = (await panel.api(user, 'GET', '/api/auth/me')).body;
    const userId = String(me.user?.id ?? me.id);
    const url = `/api/nodes/${nodeId}/docker/containers/json`;
    const before = reached.length;
    let r = await panel.api(user, 'GET', url);
    assert.equal(r.status, 403, JSON.stringify(r.body));
    assert.equal(r.body.code, 'PERMISSION_DENIED');
    r = await create(user, { Image: 'x' });
    assert.equal(r.body.code, 'PERMISSION_DENIED');
    assert.equal(reached.length, before);

    const g = await panel.api(admin, 'PUT', `/api/nodes/${nodeId}/docker-access/${userId}`, {
      permissions: ['docker.read'],
    });
    assert.equal(g.status, 200, JSON.stringify(g.body));
    r = await panel.api(user, 'GET', url);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    r = await create(user, { Image: 'x' });
    assert.equal(r.status, 403);
    assert.equal(r.body.code, 'PERMISSION_DENIED');

    await panel.api(admin, 'PUT', `/api/nodes/${nodeId}/docker-access/${userId}`, {
      permissions: ['docker.read', 'docker.write'],
    });
    r = await create(user, { Image: 'x' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    // the policy holds for them as for an admin
    r = await create(user, { Image: 'x', HostConfig: { Privileged: true } });
    assert.equal(r.body.code, 'DOCKER_POLICY_DENIED');

    const k = await panel.api(admin, 'POST', '/api/api-keys', {
      name: 'ro',
      scope: 'read',
      currentPassword: `admin-password-${admin.email.match(/\d+/)?.[0]}`,
    });
    if (k.status === 201) {
      const auth = { authorization: `Bearer ${k.body.key}` };
      const get = await fetch(`${panel.url}${url}`, { headers: auth });
      assert.equal(get.status, 201);
      const post = await fetch(`${panel.url}/api/nodes/${nodeId}/docker/containers/create`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: '{"Image":"x"}',
      });
      assert.equal(post.status, 403);
      assert.equal(((await post.json()) as { code: string }).code, 'FORBIDDEN');
    } else assert.fail(`no read-only key: ${JSON.stringify(k.body)}`);
  });

  it('GET /api/docker/nodes names only the nodes the caller holds Docker permissions on, with them', async () => {
    const user = await panel.userWithRole('user');
    const me = (await panel.api(user, 'GET', '/api/auth/me')).body;
    const userId = String(me.user?.id ?? me.id);
    let r = await panel.api(user, 'GET', '/api/docker/nodes');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, []);
    await panel.api(admin, 'PUT', `/api/nodes/${nodeId}/docker-access/${userId}`, {
      permissions: ['docker.read'],
    });
    r = await panel.api(user, 'GET', '/api/docker/nodes');
    assert.deepEqual(
      (r.body as { id: string; permissions: string[] }[]).map((n) => [n.id, n.permissions]),
      [[nodeId, ['docker.read']]],
    );
    r = await panel.api(admin, 'GET', '/api/docker/nodes');
    const mine = (r.body as { id: string; permissions: string[] }[]).find((n) => n.id === nodeId);
    assert.deepEqual(mine?.permissions, ['docker.read', 'docker.write']);
  });

  it('the exec terminal admits users with docker.write on the node, for an exec the policy lets them use', async () => {
    const user = await panel.userWithRole('user');
    const me = (await panel.api(user, 'GET', '/api/auth/me')).body;
    const userId = String(me.user?.id ?? me.id);
    const ws = (execId: string) =>
      execSocket(`${panel.url.replace(/^http/, 'ws')}/ws/nodes/${nodeId}/docker/exec/${execId}`, user.cookie);
    const exec = 'd'.repeat(64);
    const grant = (permissions: string[]) =>
      panel.api(admin, 'PUT', `/api/nodes/${nodeId}/docker-access/${userId}`, { permissions });

    assert.deepEqual(await ws(exec), { status: 403 }, 'no Docker permission');
    assert.equal((await grant(['docker.read'])).status, 200);
    assert.deepEqual(await ws(exec), { status: 403 }, 'docker.read only');
    assert.equal((await grant(['docker.read', 'docker.write'])).status, 200);
    const before = reached.length;
    assert.deepEqual(await ws(exec), { open: true }, 'docker.write');
    // the Panel asked the Engine whose exec it is, then started it
    const asked = () => reached.slice(before).map((r) => `${r.method} ${r.url}`);
    assert.ok(asked().includes(`GET /exec/${exec}/json`), JSON.stringify(asked()));
    await until(() => asked().includes(`POST /exec/${exec}/start`), 5000);
    // an exec in the Agent's own container: the policy refuses it (and nothing is started)
    const mark = reached.length;
    assert.deepEqual(await ws(EXEC_IN_AGENT), { status: 403 });
    assert.ok(!reached.slice(mark).some((r) => r.url.includes('/start')));
    // docker.write on this node only: not on another one
    const other = await fakeAgentNode(panel, owner, {});
    const elsewhere = await execSocket(
      `${panel.url.replace(/^http/, 'ws')}/ws/nodes/${other.id}/docker/exec/${exec}`,
      user.cookie,
    );
    other.agent.ws.close();
    assert.deepEqual(elsewhere, { status: 403 });
    await grant([]);
  });

  it('every change through the relay is in the activity log (method, path, node, user, result; no body)', async () => {
    await create(admin, { Image: 'x', HostConfig: { Privileged: true }, Env: ['SECRET=hunter2'] });
    await create(admin, { Image: 'x', Env: ['SECRET=hunter2'] });
    let entries: {
      action: string;
      actor: string | null;
      result: string;
      details: Record<string, string> | null;
    }[] = [];
    for (let i = 0; i < 50; i++) {
      const r = await panel.api(owner, 'GET', '/api/activity?limit=50');
      entries = r.body.entries as typeof entries;
      if (entries.filter((e) => e.action === 'node.docker').length >= 2) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    const docker = entries.filter((e) => e.action === 'node.docker');
    const denied = docker.find((e) => e.result === 'DOCKER_POLICY_DENIED');
    assert.ok(denied, JSON.stringify(docker.slice(0, 3)));
    assert.deepEqual(denied.details, { nodeId, method: 'POST', path: '/containers/create' });
    assert.ok(docker.some((e) => e.result === 'ok'));
    assert.doesNotMatch(JSON.stringify(entries), /hunter2/);
  });
});
