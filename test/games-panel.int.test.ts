/**
 * End to end through the Panel with the real Agent and Docker Engine, for each built-in game:
 * create from its template (install in the installer container) → start → running from its done
 * line → a console command through the Panel takes visible effect → graceful stop with the
 * template's stop command → start again → reinstall (output relayed to admins) → delete.
 * Images: `bash scripts/images/build.sh games` (cached). Fails, never skips, without them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { freePort } from '../packages/agent/test/helpers.ts';
import type { Json, Session, TestPanel } from '../packages/panel/test/helpers.ts';
import { type Stack, startStack } from './harness.ts';

interface GameCase {
  name: string;
  overrides: Record<string, string>;
  configFile: string;
  configExpect: (port: number) => RegExp;
  consoleCheck?: { command: string; answer: RegExp };
  /** reads no console on stdin: a console-command stop is ignored, so the kill after the timeout ends it */
  noStdinConsole?: boolean;
}

const CASES: GameCase[] = [
  {
    name: 'OpenTTD',
    overrides: { SERVER_NAME: 'panel e2e openttd' },
    configFile: 'openttd.cfg',
    configExpect: (port) => new RegExp(`^server_port = ${port}$`, 'm'),
    consoleCheck: { command: 'say "hello-panel"', answer: /\[All\] [^\r\n]*: hello-panel/ },
  },
  {
    name: 'OpenArena',
    overrides: { SERVER_NAME: 'panel e2e openarena' },
    configFile: 'baseoa/server.cfg',
    configExpect: () => /^set sv_hostname "panel e2e openarena"$/m,
    consoleCheck: { command: 'say hello-panel', answer: /console: hello-panel/ },
  },
  // its console is the TCP "econ", off here (no ECON_PASSWORD): test/remote-consoles.int.test.ts
  {
    name: 'Teeworlds',
    overrides: { SERVER_NAME: 'panel e2e teeworlds', MAP: 'ctf1' },
    configFile: 'server.cfg',
    configExpect: () => /^sv_name "panel e2e teeworlds"$/m,
    noStdinConsole: true,
  },
];

const READY_MS = 90_000;
/** the Agent's default stop timeout is 30 s: a stop well under it was not a kill */
const GRACEFUL_MS = 20_000;

describe('game servers through the Panel (real Agent, real Docker)', { concurrency: true }, () => {
  let stack: Stack;
  let panel: TestPanel;
  let owner: Session;
  let nodeId: string;
  const created: string[] = [];
  const api = (m: string, p: string, b?: unknown) => panel.api(owner, m, p, b);

  before(async () => {
    const docker = new Docker();
    for (const image of [
      'ctrl-alt-play/openttd:latest',
      'ctrl-alt-play/openarena:latest',
      'ctrl-alt-play/teeworlds:latest',
      'ctrl-alt-play/debian:latest',
    ]) {
      await docker
        .getImage(image)
        .inspect()
        .catch(() => {
          throw new Error(`image ${image} missing: run bash scripts/images/build.sh games`);
        });
    }
    stack = await startStack('games-panel');
    ({ panel, owner, nodeId } = stack);
  });
  after(async () => {
    for (const id of created) await api('DELETE', `/api/servers/${id}?force=true`).catch(() => undefined);
    await stack?.stop();
  });

  const statusOf = async (id: string) => (await api('GET', `/api/servers/${id}`)).body.status as string;
  const waitStatus = async (id: string, want: string, timeoutMs = READY_MS) => {
    const t = Date.now();
    for (;;) {
      const s = await statusOf(id);
      if (s === want) return;
      if (s === 'install_failed' && want !== s) throw new Error(`${id}: install failed`);
      if (Date.now() - t > timeoutMs) throw new Error(`${id}: still ${s}, wanted ${want}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  for (const c of CASES) {
    it(c.name, { timeout: 300_000 }, async () => {
      const t0 = performance.now();
      const templates = (await api('GET', '/api/templates')).body as Json[];
      const tpl = templates.find((t) => t.name === c.name && t.builtin);
      assert.ok(tpl, `built-in template ${c.name}`);
      const port = await freePort('0.0.0.0');
      const pool = await api('POST', `/api/nodes/${nodeId}/allocations`, {
        ip: '0.0.0.0',
        ports: [String(port)],
      });
      assert.equal(pool.status, 201, JSON.stringify(pool.body));

      // create from the template → the install runs in the installer container → offline
      const res = await api('POST', '/api/servers?wait=true', {
        name: `e2e ${c.name}`,
        nodeId,
        templateId: tpl.id,
        environment: c.overrides,
        allocationId: pool.body[0].id,
        limits: { memory: 1024 },
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      const id = res.body.id as string;
      created.push(id);
      assert.equal(res.body.allocation.port, port);
      await waitStatus(id, 'offline');
      const installedMs = performance.now();

      const ws = await panel.clientSocket(owner);
      try {
        ws.send({ type: 'subscribe', serverId: id });
        await ws.next((m) => m.type === 'subscribed');

        // start → running from the done line; config files rewritten with the allocation's port
        assert.equal((await api('POST', `/api/servers/${id}/power`, { action: 'start' })).status, 202);
        await ws.next((m) => m.type === 'status' && m.status === 'running', READY_MS);
        const readyMs = performance.now();
        const cfg = await api(
          'GET',
          `/api/servers/${id}/files/content?path=${encodeURIComponent(c.configFile)}`,
        );
        assert.equal(cfg.status, 200, JSON.stringify(cfg.body));
        assert.match(cfg.body.content, c.configExpect(port));

        if (c.consoleCheck) {
          const cmd = await api('POST', `/api/servers/${id}/command`, { command: c.consoleCheck.command });
          assert.equal(cmd.status, 202, JSON.stringify(cmd.body));
          const answer = c.consoleCheck.answer;
          await ws.next((m) => m.type === 'console' && m.lines.some((l: string) => answer.test(l)), 15_000);
        }

        // graceful stop by the template's stop command (no crash, well under the kill timeout)
        const stopT = performance.now();
        assert.equal((await api('POST', `/api/servers/${id}/power`, { action: 'stop' })).status, 202);
        await ws.next((m) => m.type === 'status' && m.status === 'offline', GRACEFUL_MS);
        const stopMs = performance.now() - stopT;
        assert.ok(!ws.messages.some((m) => m.type === 'crashed'), 'a graceful stop is not a crash');

        // start again
        assert.equal((await api('POST', `/api/servers/${id}/power`, { action: 'start' })).status, 202);
        await ws.next((m) => m.type === 'status' && m.status === 'running', READY_MS);

        let killNote = '';
        if (c.noStdinConsole) {
          // a stop it ignores (a console command, no stdin console): killed after the timeout
          const upd = await api('PATCH', `/api/servers/${id}?wait=true`, { stop: 'quit', stopTimeout: 2 });
          assert.equal(upd.status, 200, JSON.stringify(upd.body));
          assert.equal(upd.body.stopTimeout, 2);
          if ((await statusOf(id)) !== 'running')
            await ws.next((m) => m.type === 'status' && m.status === 'running', READY_MS);
          const t = performance.now();
          assert.equal((await api('POST', `/api/servers/${id}/power`, { action: 'stop' })).status, 202);
          await waitStatus(id, 'offline', 15_000);
          const took = performance.now() - t;
          assert.ok(took >= 1900 && took < 15_000, `the kill came after ${took} ms`);
          killNote = `, ignored stop killed after ${Math.round(took)} ms (stopTimeout 2 s)`;
          assert.equal((await api('POST', `/api/servers/${id}/power`, { action: 'start' })).status, 202);
          await waitStatus(id, 'running');
        }

        // reinstall: stopped, installer run again, its output relayed, back to offline
        assert.equal((await api('POST', `/api/servers/${id}/reinstall`)).status, 202);
        const done = await ws.next((m) => m.type === 'install_completed', READY_MS);
        assert.equal(done.success, true);
        const output = ws.messages
          .filter((m) => m.type === 'install_output')
          .flatMap((m) => m.lines as string[]);
        assert.ok(
          output.some((l) => /install complete/.test(l)),
          output.join('\n'),
        );
        await waitStatus(id, 'offline');
        const ms = (n: number) => Math.round(n);
        console.log(
          `[panel-games] ${c.name}: create+install ${ms(installedMs - t0)} ms, ready ${ms(readyMs - installedMs)} ms, ` +
            `graceful stop ${ms(stopMs)} ms${killNote}, total ${ms(performance.now() - t0)} ms`,
        );
      } finally {
        ws.close();
      }
      assert.equal((await api('DELETE', `/api/servers/${id}`)).status, 204);
      created.splice(created.indexOf(id), 1);
    });
  }
});
