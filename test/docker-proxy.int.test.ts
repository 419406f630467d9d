/**
 * A node's Docker Engine API through the Panel (issue 11 item 1): the real Panel, a real Agent
 * and the real Docker Engine. `/api/nodes/:id/docker/<Engine path>` answers what the Engine
 * answers (status, Content-Type, body), streams both ways (logs follow, events, an image's export
 * and load), and works from dockerode pointed at the Panel with a Panel API key.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import WebSocket from 'ws';
import { ADMIN_PASSWORD, until } from '../packages/panel/test/helpers.ts';
import { docker, IMAGE, type Stack, startStack } from './harness.ts';

const LABEL = 'ctrl-alt-play.test';
const label = `docker-proxy-${process.pid}`;

async function removeTestContainers(): Promise<void> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL}=${label}`] } });
  await Promise.all(
    list.map((c) =>
      docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined),
    ),
  );
}

/** What the Engine itself answers (its socket, no Panel): status and Content-Type. */
function rawEngine(path: string): Promise<{ status: number; type: string | null }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath: '/var/run/docker.sock', path }, (res) => {
      res.destroy();
      resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'] ?? null });
    });
    req.on('error', reject);
  });
}

/** Reads a response body until `pred` holds on what arrived so far (then stops reading). */
async function readUntil(
  res: Response,
  pred: (text: string) => boolean,
  timeoutMs = 15_000,
): Promise<string> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  let text = '';
  const deadline = Date.now() + timeoutMs;
  while (!pred(text)) {
    if (Date.now() > deadline) throw new Error(`timed out; got ${JSON.stringify(text.slice(0, 500))}`);
    const { value, done } = await reader.read();
    if (done) break;
    text += Buffer.from(value).toString('latin1');
  }
  await reader.cancel().catch(() => undefined);
  return text;
}

describe('Panel + Agent: the Docker Engine API relayed', () => {
  let stack: Stack;
  let base = '';
  let key = '';
  let outside = '';
  const auth = () => ({ authorization: `Bearer ${key}` });

  before(async () => {
    stack = await startStack('docker-proxy');
    base = `${stack.panel.url}/api/nodes/${stack.nodeId}/docker`;
    const r = await stack.panel.api(stack.owner, 'POST', '/api/api-keys', {
      name: 'docker',
      currentPassword: ADMIN_PASSWORD,
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    key = r.body.key;
    // a container the Panel never made (`docker run` elsewhere)
    const c = await docker.createContainer({
      Image: IMAGE,
      Cmd: ['sleep', '300'],
      name: `cap-outside-${process.pid}`,
      Labels: { [LABEL]: label },
    });
    await c.start();
    outside = c.id;
  });
  after(async () => {
    await removeTestContainers();
    await stack?.stop();
  });

  it('lists and inspects containers exactly as the Engine does, with or without /v1.xx', async () => {
    const res = await fetch(
      `${base}/containers/json?all=1&filters=${encodeURIComponent(JSON.stringify({ label: [`${LABEL}=${label}`] }))}`,
      {
        headers: auth(),
      },
    );
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.ok(res.headers.get('api-version'), 'the Engine headers come through');
    const list = (await res.json()) as { Id: string }[];
    assert.deepEqual(
      list.map((c) => c.Id),
      [outside],
    );

    const version = (await docker.version()).ApiVersion;
    const ins = await fetch(`${base}/v${version}/containers/${outside}/json`, { headers: auth() });
    assert.equal(ins.status, 200);
    const body = (await ins.json()) as { Id: string; State: { Running: boolean } };
    const raw = await docker.getContainer(outside).inspect();
    assert.equal(body.Id, raw.Id);
    assert.equal(body.State.Running, true);

    const missing = await fetch(`${base}/containers/no-such-container-${process.pid}/json`, {
      headers: auth(),
    });
    assert.equal(missing.status, 404);
    assert.match(((await missing.json()) as { message: string }).message, /no such container/i);
  });

  it('bad paths are refused before the Engine sees them; a user without admin gets 403', async () => {
    // sent as written (fetch would resolve the dot segments itself)
    const asWritten = (p: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const u = new URL(stack.panel.url);
        const req = http.get(
          { host: u.hostname, port: u.port, path: `/api/nodes/${stack.nodeId}/docker${p}`, headers: auth() },
          (res) => {
            let body = '';
            res.on('data', (b: Buffer) => {
              body += b.toString();
            });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        req.on('error', reject);
      });
    for (const p of [
      '/containers/../images/json',
      '/containers/%2e%2e/images/json',
      '/v1.41/./containers/json',
      '/containers//json',
      '/containers/%00/json',
    ]) {
      const r = await asWritten(p);
      assert.equal(r.status, 400, `${p}: ${r.body}`);
      assert.equal(JSON.parse(r.body).code, 'VALIDATION_FAILED');
    }
    const user = await stack.panel.userWithRole('user');
    const r = await fetch(`${base}/containers/json`, { headers: { cookie: user.cookie } });
    assert.equal(r.status, 403);
  });

  it('create, start, follow the logs, remove a busybox container (fetch with a session)', async () => {
    const headers = { ...stack.owner.headers, 'content-type': 'application/json' };
    const name = `cap-proxy-${process.pid}`;
    const created = await fetch(`${base}/containers/create?name=${name}`, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        Image: IMAGE,
        Cmd: ['sh', '-c', 'i=0; while [ $i -lt 100 ]; do echo line-$i; i=$((i+1)); sleep 0.2; done'],
        Labels: { [LABEL]: label },
      }),
    });
    assert.equal(created.status, 201, await created.clone().text());
    const { Id } = (await created.json()) as { Id: string };
    const started = await fetch(`${base}/containers/${Id}/start`, {
      method: 'POST',
      headers: stack.owner.headers,
    });
    assert.equal(started.status, 204);

    // logs follow: lines arrive while the container still runs (streamed, not buffered)
    const logs = await fetch(`${base}/containers/${Id}/logs?follow=1&stdout=1`, { headers: auth() });
    assert.equal(logs.status, 200);
    // the Engine's own Content-Type (Docker 20.10 sends none for logs; newer ones a vnd.docker one)
    assert.equal(logs.headers.get('content-type'), (await rawEngine(`/containers/${Id}/logs?stdout=1`)).type);
    const text = await readUntil(logs, (t) => t.includes('line-3'));
    assert.match(text, /line-0/);
    assert.equal((await docker.getContainer(Id).inspect()).State.Running, true);
    // the client went away: the Panel's tunnel closes (and with it the Agent's Docker connection)
    await until(() => stack.panel.app.panel.dockerTunnels.active === 0, 5000);

    const removed = await fetch(`${base}/containers/${Id}?force=1`, {
      method: 'DELETE',
      headers: stack.owner.headers,
    });
    assert.equal(removed.status, 204);
    await assert.rejects(docker.getContainer(Id).inspect(), /no such container/i);
  });

  it('an events stream carries what happens on the node as it happens', async () => {
    const filters = encodeURIComponent(JSON.stringify({ label: [`${LABEL}=${label}-events`] }));
    // Docker 20.10 sends the headers of /events with the first event: the request is not awaited
    const pending = fetch(`${base}/events?filters=${filters}`, { headers: auth() });
    await new Promise((r) => setTimeout(r, 300));
    const c = await docker.createContainer({
      Image: IMAGE,
      Cmd: ['true'],
      Labels: { [LABEL]: `${label}-events` },
    });
    try {
      const events = await pending;
      assert.equal(events.status, 200);
      assert.equal(events.headers.get('content-type'), 'application/json');
      const text = await readUntil(events, (t) => t.includes('"create"'));
      assert.match(text, new RegExp(c.id));
    } finally {
      await c.remove({ force: true });
    }
  });

  it("an image's export streams out and loads back in (big bodies both ways)", async () => {
    const save = await fetch(`${base}/images/${encodeURIComponent(IMAGE)}/get`, { headers: auth() });
    assert.equal(save.status, 200);
    assert.equal(save.headers.get('content-type'), 'application/x-tar');
    const tar = Buffer.from(await save.arrayBuffer());
    assert.ok(tar.length > 100_000, `an image tarball (${tar.length} bytes)`);
    const load = await fetch(`${base}/images/load?quiet=1`, {
      method: 'POST',
      headers: { ...stack.owner.headers, 'content-type': 'application/x-tar' },
      body: tar,
    });
    assert.equal(load.status, 200, await load.clone().text());
    assert.match(await load.text(), /Loaded image/);
  });

  it('dockerode pointed at the Panel with an API key does the same', async () => {
    const d = new Docker({
      host: '127.0.0.1',
      port: Number(new URL(stack.panel.url).port),
      protocol: 'http',
      version: `api/nodes/${stack.nodeId}/docker`,
      headers: auth(),
    });
    assert.equal(String(await d.ping()), 'OK');
    const list = await d.listContainers({ all: true, filters: { label: [`${LABEL}=${label}`] } });
    assert.deepEqual(
      list.map((c) => c.Id),
      [outside],
    );
    const c = await d.createContainer({
      Image: IMAGE,
      Cmd: ['sh', '-c', 'echo hello-from-dockerode; sleep 30'],
      Labels: { [LABEL]: label },
    });
    await c.start();
    assert.equal((await c.inspect()).State.Running, true);
    const stream = (await c.logs({ follow: true, stdout: true, stderr: true })) as NodeJS.ReadableStream;
    const seen = await new Promise<string>((resolve, reject) => {
      let t = '';
      stream.on('data', (b: Buffer) => {
        t += b.toString('latin1');
        if (t.includes('hello-from-dockerode')) resolve(t);
      });
      stream.on('error', reject);
      setTimeout(() => reject(new Error(`no log line: ${t}`)), 15_000).unref();
    });
    assert.match(seen, /hello-from-dockerode/);
    (stream as unknown as { destroy(): void }).destroy();
    const pending = d.getEvents({ filters: { label: [`${LABEL}=${label}`], event: ['die'] } });
    await new Promise((r) => setTimeout(r, 300));
    await c.kill();
    const events = (await pending) as NodeJS.ReadableStream;
    const died = await new Promise<string>((resolve) =>
      events.once('data', (b: Buffer) => resolve(b.toString())),
    );
    assert.match(died, /"die"/);
    (events as unknown as { destroy(): void }).destroy();
    await c.remove({ force: true });
    await assert.rejects(docker.getContainer(c.id).inspect(), /no such container/i);
  });

  it('exec through dockerode: stdin in, output out (hijacked, both ways), and a resize', async () => {
    const d = new Docker({
      host: '127.0.0.1',
      port: Number(new URL(stack.panel.url).port),
      protocol: 'http',
      version: `api/nodes/${stack.nodeId}/docker`,
      headers: auth(),
    });
    const c = d.getContainer(outside);
    // no TTY: the output is Docker's multiplexed stream; stdin closed ends `cat`
    const exec = await c.exec({
      Cmd: ['sh', '-c', 'cat; echo done-$?'],
      AttachStdin: true,
      AttachStdout: true,
    });
    const stream = (await exec.start({ hijack: true, stdin: true })) as import('node:stream').Duplex;
    let out = '';
    stream.on('data', (b: Buffer) => {
      out += b.toString('latin1');
    });
    stream.write('hello-through-the-panel\n');
    await until(() => out.includes('hello-through-the-panel'), 10_000);
    stream.end();
    await until(() => out.includes('done-0'), 10_000);
    const ended = await exec.inspect();
    assert.equal(ended.ExitCode, 0);

    // a TTY, resized: the shell sees the new size
    const tty = await c.exec({ Cmd: ['sh'], AttachStdin: true, AttachStdout: true, Tty: true });
    const ts = (await tty.start({ hijack: true, stdin: true, Tty: true })) as import('node:stream').Duplex;
    let tout = '';
    ts.on('data', (b: Buffer) => {
      tout += b.toString('latin1');
    });
    await tty.resize({ h: 37, w: 101 });
    ts.write('stty size; exit\n');
    await until(() => tout.includes('37 101'), 10_000);
    ts.destroy();
  });

  it("the browser's exec terminal: a WebSocket with binary stdin/stdout and a resize message", async () => {
    const created = await fetch(`${base}/containers/${outside}/exec`, {
      method: 'POST',
      headers: { ...stack.owner.headers, 'content-type': 'application/json' },
      body: JSON.stringify({
        Cmd: ['sh'],
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        Tty: true,
      }),
    });
    assert.equal(created.status, 201, await created.clone().text());
    const { Id } = (await created.json()) as { Id: string };
    const url = `${stack.panel.url.replace(/^http/, 'ws')}/ws/nodes/${stack.nodeId}/docker/exec/${Id}`;
    const ws = new WebSocket(url, { headers: { cookie: stack.owner.cookie } });
    let out = '';
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    ws.on('message', (b: Buffer) => {
      out += b.toString('latin1');
    });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    ws.send(JSON.stringify({ type: 'resize', cols: 99, rows: 33 }));
    await new Promise((r) => setTimeout(r, 300));
    ws.send(Buffer.from('stty size; echo term-$((6*7)); exit\n'));
    await until(() => out.includes('33 99') && out.includes('term-42'), 10_000);
    assert.equal(await closed, 1000);

    const user = await stack.panel.userWithRole('user');
    const refused = new WebSocket(url, { headers: { cookie: user.cookie } });
    const status = await new Promise<number>((resolve) =>
      refused.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)),
    );
    assert.equal(status, 403);
  });

  it('the policy: a privileged container is refused for an admin and allowed for an owner', async () => {
    const admin = await stack.panel.userWithRole('admin');
    const body = {
      Image: IMAGE,
      Cmd: ['true'],
      Labels: { [LABEL]: label },
      HostConfig: { Privileged: true },
    };
    const refused = await stack.panel.api(
      admin,
      'POST',
      `/api/nodes/${stack.nodeId}/docker/containers/create`,
      body,
    );
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    assert.equal(refused.body.code, 'DOCKER_POLICY_DENIED');
    const before = await docker.listContainers({ all: true, filters: { label: [`${LABEL}=${label}`] } });
    assert.equal(before.length, 1, 'nothing was created');
    const allowed = await stack.panel.api(
      stack.owner,
      'POST',
      `/api/nodes/${stack.nodeId}/docker/containers/create`,
      body,
    );
    assert.equal(allowed.status, 201, JSON.stringify(allowed.body));
    const made = await docker.getContainer(allowed.body.Id).inspect();
    assert.equal(made.HostConfig.Privileged, true);
    await docker.getContainer(allowed.body.Id).remove({ force: true });
  });

  it('per-request overhead: /_ping through the Panel next to the Engine itself', async () => {
    const n = 30;
    const time = async (url: string, headers: Record<string, string>) => {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        const r = await fetch(url, { headers });
        assert.equal(await r.text(), 'OK');
      }
      return (performance.now() - t0) / n;
    };
    const viaPanel = await time(`${base}/_ping`, auth());
    // the Engine straight (its socket through dockerode's modem: ping)
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await docker.ping();
    const raw = (performance.now() - t0) / n;
    console.log(
      `docker relay: /_ping ${viaPanel.toFixed(2)} ms through the Panel, ${raw.toFixed(2)} ms direct`,
    );
    assert.ok(viaPanel < 250, `through the Panel: ${viaPanel} ms`);
  });
});
