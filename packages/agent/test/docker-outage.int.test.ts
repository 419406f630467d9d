/**
 * The Docker daemon going away mid-stream (a restart of dockerd), without restarting the shared
 * Engine: the Agent talks to Docker through a socket proxy that the test cuts and brings back.
 * The Agent must not crash, must report Docker unreachable meanwhile, and once Docker is back
 * must still know the server (it kept running in the Engine) and give it its console again.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { EventMessage } from '@cap/protocol';
import { egg, type Fixture, fixture, sleep, uid, waitStatus } from './helpers.ts';

/** A unix-socket proxy to the real Engine that can be cut (all connections dropped) and restored. */
class DockerProxy {
  readonly path: string;
  #server: net.Server | null = null;
  readonly #conns = new Set<net.Socket>();
  constructor(dir: string) {
    this.path = path.join(dir, 'docker.sock');
  }
  async up(): Promise<void> {
    if (this.#server) return;
    await rm(this.path, { force: true });
    const server = net.createServer((c) => {
      const up = net.connect('/var/run/docker.sock');
      for (const s of [c, up]) {
        this.#conns.add(s);
        s.on('error', () => undefined);
        s.on('close', () => {
          this.#conns.delete(s);
          c.destroy();
          up.destroy();
        });
      }
      c.pipe(up).pipe(c);
    });
    await new Promise<void>((r) => server.listen(this.path, r));
    this.#server = server;
  }
  async down(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    for (const s of this.#conns) s.destroy();
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}

describe('Docker daemon outage', () => {
  let f: Fixture;
  let proxy: DockerProxy;
  let dir: string;
  const id = uid('outage-');

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cap-dproxy-'));
    proxy = new DockerProxy(dir);
    await proxy.up();
    f = await fixture({ env: { DOCKER_HOST: `unix://${proxy.path}` } });
    await f.panel.waitConnected();
  });
  after(async () => {
    await proxy.up().catch(() => undefined);
    await f.cleanup();
    await proxy.down();
    await rm(dir, { recursive: true, force: true });
  });

  const health = async () =>
    (await (await fetch(`http://127.0.0.1:${f.agent.httpPort}/health`)).json()) as {
      status: string;
      docker: { reachable: boolean };
    };

  it('survives the Engine going away mid-stream and picks the server up again when it is back', async () => {
    const res = await f.panel.command('create_server', {
      serverId: id,
      eggConfig: egg('echo ready; while read l; do echo "got:$l"; done', { done: 'ready' }),
    });
    assert.equal(res.success, true, JSON.stringify(res.error));
    let mark = f.panel.received.length;
    assert.equal((await f.panel.command('start_server', {}, { serverId: id })).success, true);
    await waitStatus(f, id, 'running', mark);
    // console, exit watch and stats streams are all open through the proxy now
    await sleep(500);

    mark = f.panel.received.length;
    await proxy.down();
    await sleep(1500);
    assert.deepEqual((await health()).docker.reachable, false);
    const during = await f.panel.command('get_status', {}, { serverId: id });
    assert.ok(during.success || during.error?.code === 'DOCKER_ERROR', JSON.stringify(during.error));
    // stdin is gone with the Engine: the command is refused, not silently dropped
    const lost = await f.panel.command('send_command', { command: 'into-nothing' }, { serverId: id });
    assert.equal(lost.error?.code, 'DOCKER_ERROR');
    // a lost connection to Docker is not a crash of the game
    assert.equal(f.panel.events('server_crashed').filter((e) => e.data.serverId === id).length, 0);

    await proxy.up();
    const t0 = Date.now();
    while (!(await health()).docker.reachable) {
      if (Date.now() - t0 > 10_000) assert.fail('health never saw Docker again');
      await sleep(100);
    }
    const st = await f.panel.command('get_status', {}, { serverId: id });
    assert.equal((st.data as { status: string }).status, 'running');
    const statuses = f.panel.received
      .slice(mark)
      .filter(
        (e): e is EventMessage<'server_status_changed'> =>
          e.type === 'event' &&
          e.event === 'server_status_changed' &&
          (e.data as { serverId: string }).serverId === id,
      )
      .map((e) => e.data.currentStatus);
    assert.deepEqual(statuses, [], 'the outage changed the server status');

    // the console comes back: a command reaches stdin and its output reaches the Panel
    const t1 = Date.now();
    let seen = false;
    while (!seen && Date.now() - t1 < 15_000) {
      const m = f.panel.received.length;
      await f.panel.command('send_command', { command: 'after-outage' }, { serverId: id });
      seen = await f.panel
        .waitEvent('server_log', (d) => d.serverId === id && d.message === 'got:after-outage', {
          since: m,
          timeoutMs: 1000,
        })
        .then(
          () => true,
          () => false,
        );
    }
    assert.ok(seen, 'the console did not come back after the outage');
    mark = f.panel.received.length;
    assert.equal((await f.panel.command('kill_server', {}, { serverId: id })).success, true);
    await waitStatus(f, id, 'offline', mark);
  });
});
