/**
 * Lateral movement from a game container: another server's unpublished ports, and the Agent's
 * HTTP API on the host's gateway address. A node's servers sit on the Agent's own bridge with
 * inter-container traffic off, and the host drops what that bridge sends to the Agent's port.
 * Real Agent (HTTP on all addresses here, to be reachable at all), real Docker Engine, iptables.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { docker, egg, type Fixture, fixture, freePort, uid, waitStatus } from '../helpers.ts';

/** Runs `cmd` in the container; its exit code and output. */
async function exec(containerName: string, cmd: string[]): Promise<{ code: number; out: string }> {
  const c = docker.getContainer(containerName);
  const e = await c.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, Tty: true });
  const stream = await e.start({ hijack: true, stdin: false, Tty: true });
  let out = '';
  stream.on('data', (d: Buffer) => {
    out += d.toString();
  });
  await new Promise((r) => stream.on('end', r));
  const info = await e.inspect();
  return { code: info.ExitCode ?? -1, out };
}

describe('game containers are kept apart (real Docker)', () => {
  let f: Fixture;
  let httpPort: number;
  before(async () => {
    httpPort = await freePort('0.0.0.0');
    f = await fixture({ env: { AGENT_HTTP_HOST: '0.0.0.0', AGENT_HTTP_PORT: String(httpPort) } });
    await f.panel.waitConnected();
  });
  after(() => f.cleanup());

  it('one server cannot reach another’s unpublished port, nor the Agent HTTP port on the gateway', async () => {
    const a = uid('neta-');
    const b = uid('netb-');
    const published = await freePort('0.0.0.0');
    const mark = f.panel.received.length;
    for (const [id, startup, ports] of [
      [
        a,
        'echo peer-secret > index.html; echo ready; httpd -f -p 7777 -h /home/container',
        { '8888': published },
      ],
      [b, 'echo ready; sleep 600', {}],
    ] as const) {
      const c = await f.panel.command('create_server', {
        serverId: id,
        eggConfig: egg(startup, { ports, done: 'ready', stopTimeout: 0 }),
      });
      assert.equal(c.success, true, JSON.stringify(c.error));
      assert.equal((await f.panel.command('start_server', {}, { serverId: id })).success, true);
      await waitStatus(f, id, 'running', mark);
    }
    const ia = await docker.getContainer(`cap-${a}`).inspect();
    const ib = await docker.getContainer(`cap-${b}`).inspect();
    const netA = Object.values(ia.NetworkSettings.Networks)[0]!;
    const netB = Object.values(ib.NetworkSettings.Networks)[0]!;
    assert.ok(netA.IPAddress && netB.Gateway, 'the containers have no address');
    // the servers are not on Docker's default bridge, where every container meets every other
    assert.ok(!Object.hasOwn(ia.NetworkSettings.Networks, 'bridge'), 'server A is on the default bridge');
    // an HTTP GET by nc (this busybox's wget needs files the image lacks); the answer, or an error
    const get = (from: string, host: string, port: number, path = '/') =>
      exec(`cap-${from}`, [
        'sh',
        '-c',
        // stdin kept open a while: Node's HTTP server drops a half-closed connection unanswered
        `(printf 'GET ${path} HTTP/1.0\\r\\n\\r\\n'; sleep 2) | nc -w 3 ${host} ${port}`,
      ]).then((r) => r.out);
    // the probe works: A's httpd answers on its own address
    assert.match(await get(a, netA.IPAddress, 7777), /peer-secret/);
    const peer = await get(b, netA.IPAddress, 7777);
    assert.doesNotMatch(peer, /HTTP\/|peer-secret/, `B reached A's unpublished port: ${peer}`);
    const agent = await get(b, netB.Gateway, httpPort, '/health');
    assert.doesNotMatch(agent, /HTTP\//, `B reached the Agent HTTP API on the gateway: ${agent}`);
    // and the host itself still reaches the Agent there
    const host = await fetch(`http://127.0.0.1:${httpPort}/health`);
    assert.equal(host.status, 200);
  });
});
