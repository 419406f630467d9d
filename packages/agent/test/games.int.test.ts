/**
 * Real game servers through the Agent: each built-in template is imported, turned into an
 * eggConfig, created (install in the installer container), started (running from its done line),
 * spoken to through its console, stopped with its own stop command, started again and killed.
 * Images: `bash scripts/images/build.sh games` (cached; this test fails, never skips, without them).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { EggConfig, EventMessage } from '@cap/protocol';
import { importTemplate, templateToEggConfig } from '@cap/protocol/templates/index.ts';
import { docker, type Fixture, fixture, freePort, uid, waitStatus } from './helpers.ts';

interface GameCase {
  game: string;
  overrides: Record<string, string>;
  /** a console command and the server's answer to it (not the TTY's echo of the command) */
  consoleCheck?: { command: string; answer: RegExp };
  /** the exit code of a graceful stop by the template's stop command */
  stopExit: number;
  /** a file the template's config.files rewrote before the start, and what it must now say */
  configCheck: { file: string; expect: (port: number) => RegExp[] };
  /** reads no console on stdin: a console-command stop is ignored, so the kill after the timeout ends it */
  noStdinConsole?: boolean;
}

const CASES: GameCase[] = [
  {
    game: 'openttd',
    overrides: { SERVER_NAME: 'e2e openttd' },
    consoleCheck: { command: 'say "hello-e2e"', answer: /\[All\] [^\r\n]*: hello-e2e/ },
    stopExit: 0,
    configCheck: {
      file: 'openttd.cfg',
      expect: (port) => [new RegExp(`^server_port = ${port}$`, 'm'), /^server_name = e2e openttd$/m],
    },
  },
  {
    game: 'openarena',
    overrides: { SERVER_NAME: 'e2e openarena' },
    consoleCheck: { command: 'say hello-e2e', answer: /console: hello-e2e/ },
    stopExit: 0,
    configCheck: { file: 'baseoa/server.cfg', expect: () => [/^set sv_hostname "e2e openarena"$/m] },
  },
  // its console is the TCP "econ" (remote-console work, later): no stdin check here
  {
    game: 'teeworlds',
    overrides: { SERVER_NAME: 'e2e teeworlds', MAP: 'ctf1' },
    stopExit: 130,
    noStdinConsole: true,
    configCheck: {
      file: 'server.cfg',
      expect: () => [/^sv_name "e2e teeworlds"\nsv_max_clients 8\nsv_map ctf1$/m],
    },
  },
];

const READY_MS = 60_000;

describe('game servers through the Agent (real Docker, local game images)', { concurrency: true }, () => {
  let f: Fixture;

  before(async () => {
    for (const c of CASES) {
      const egg = JSON.parse(
        await readFile(new URL(`../../../templates/builtin/${c.game}.json`, import.meta.url), 'utf8'),
      );
      for (const image of [
        ...Object.values(egg.docker_images as Record<string, string>),
        egg.scripts.installation.container,
      ]) {
        await docker
          .getImage(image)
          .inspect()
          .catch(() => {
            throw new Error(`image ${image} missing: run bash scripts/images/build.sh games`);
          });
      }
    }
    f = await fixture();
    await f.panel.waitConnected();
  });
  after(() => f.cleanup());

  for (const c of CASES) {
    it(c.game, { timeout: 120_000 }, async () => {
      const t0 = performance.now();
      const source = await readFile(
        new URL(`../../../templates/builtin/${c.game}.json`, import.meta.url),
        'utf8',
      );
      const { template } = importTemplate(source, { filename: `${c.game}.json` });
      const port = await freePort();
      const eggConfig: EggConfig = templateToEggConfig(template, {
        name: `e2e ${c.game}`,
        environment: c.overrides,
        system: { ip: '127.0.0.1', port, memoryMiB: 1024 },
        ports: { [String(port)]: { hostPort: port, hostIp: '127.0.0.1' } },
        limits: { memory: 1024 },
        stopTimeout: 20,
      });
      assert.ok(eggConfig.install, 'the template has an install script');
      const id = uid(`${c.game}-`);
      const since = f.panel.received.length;
      const status = (to: string, from: number) => waitStatus(f, id, to, from, READY_MS);
      const lineMatching = (re: RegExp, from: number) =>
        f.panel.waitEvent('server_log', (d) => d.serverId === id && re.test(d.message), {
          since: from,
          timeoutMs: 10_000,
        });

      // create → install in the installer container → offline
      const created = await f.panel.command('create_server', { serverId: id, eggConfig });
      assert.equal(created.success, true, JSON.stringify(created.error));
      assert.equal((created.data as { status: string }).status, 'installing');
      const done = (await f.panel.waitEvent('install_completed', (d) => d.serverId === id, {
        since,
        timeoutMs: READY_MS,
      })) as EventMessage<'install_completed'>;
      const installLines = f.panel
        .events('install_output')
        .filter((e) => e.data.serverId === id)
        .map((e) => e.data.message);
      assert.equal(done.data.success, true, installLines.join('\n'));
      assert.ok(
        installLines.some((l) => /install complete/.test(l)),
        installLines.join('\n'),
      );
      await status('offline', since);
      const installedMs = performance.now();

      // start → running from the template's done line (config files rewritten before)
      const started = await f.panel.command('start_server', {}, { serverId: id });
      assert.equal(started.success, true, JSON.stringify(started.error));
      const running = await status('running', since);
      assert.equal(running.data.reason, 'done pattern matched');
      const readyMs = performance.now();
      const cfg = await readFile(path.join(f.dataDir, 'servers', id, c.configCheck.file), 'utf8');
      for (const re of c.configCheck.expect(port)) assert.match(cfg, re);

      if (c.consoleCheck) {
        const mark = f.panel.received.length;
        const sent = await f.panel.command(
          'send_command',
          { command: c.consoleCheck.command },
          { serverId: id },
        );
        assert.equal(sent.success, true, JSON.stringify(sent.error));
        await lineMatching(c.consoleCheck.answer, mark);
      }

      // graceful stop with the template's own stop command: its exit code, not SIGKILL's 137
      const stopMark = f.panel.received.length;
      const stopped = await f.panel.command('stop_server', {}, { serverId: id });
      assert.equal(stopped.success, true, JSON.stringify(stopped.error));
      const offline = await status('offline', stopMark);
      assert.equal(offline.data.reason, `exit ${c.stopExit}`);
      const stopMs = performance.now();

      // start again → running → kill → delete
      const again = f.panel.received.length;
      assert.equal((await f.panel.command('start_server', {}, { serverId: id })).success, true);
      await status('running', again);
      if (c.noStdinConsole) {
        // a stop it ignores (a console command to a server without a stdin console): killed after the timeout
        const upd = await f.panel.command(
          'update_server',
          { stop: 'quit', stopTimeout: 2 },
          { serverId: id },
        );
        assert.equal(upd.success, true, JSON.stringify(upd.error));
        const t = performance.now();
        const m = f.panel.received.length;
        assert.equal((await f.panel.command('stop_server', {}, { serverId: id })).success, true);
        const killed = await waitStatus(f, id, 'offline', m);
        assert.equal(killed.data.reason, 'exit 137');
        const took = performance.now() - t;
        assert.ok(took >= 1900 && took < 10_000, `stop took ${took} ms`);
      } else {
        assert.equal((await f.panel.command('kill_server', {}, { serverId: id })).success, true);
      }
      const deleted = await f.panel.command('delete_server', {}, { serverId: id });
      assert.equal(deleted.success, true, JSON.stringify(deleted.error));
      const ms = (a: number, b: number) => Math.round(b - a);
      console.log(
        `[games] ${c.game}: install ${ms(t0, installedMs)} ms, ready ${ms(installedMs, readyMs)} ms, ` +
          `graceful stop ${ms(readyMs, stopMs)} ms, total ${ms(t0, performance.now())} ms`,
      );
    });
  }
});
