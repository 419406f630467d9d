// End-to-end check of the local game images (scripts/images) with their built-in templates
// (templates/builtin): each server is installed and run the way the Agent runs it (the egg's
// install script in its install container, then STARTUP in the environment, the image's own
// entrypoint, a TTY, stdin open, ports published on 127.0.0.1), reaches its done line, answers
// on its console and its published port, and stops gracefully with the egg's stop command.
// The images are built beforehand by scripts/test.sh (scripts/images/build.sh).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { applyConfigFiles } from '@cap/agent/config-files/index.ts';
import { CAP_DROP, DEFAULT_PIDS_LIMIT } from '@cap/agent/environment/docker/container-spec.ts';
import { fillStartup, importTemplate, parseStop, validateVariables } from '@cap/protocol/templates/index.ts';
import Docker from 'dockerode';
import { freePort } from '../packages/agent/test/helpers.ts';

const docker = new Docker();
const runId = randomBytes(4).toString('hex');
const testLabel = 'ctrl-alt-play.test';
const labels = { [testLabel]: `game-images-${runId}` };
const serverName = `cap-gi ${runId}`;
const DONE_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;

type Variable = {
  name: string;
  description: string;
  env_variable: string;
  default_value: string;
  user_viewable: boolean;
  user_editable: boolean;
  rules: string;
  field_type: string;
};
type Egg = {
  meta: { version: string; update_url: string | null };
  name: string;
  description: string;
  docker_images: Record<string, string>;
  startup: string;
  config: { files: string; startup: string; logs: string; stop: string };
  scripts: { installation: { script: string; container: string; entrypoint: string } };
  variables: Variable[];
};

function loadEgg(game: string): Egg {
  return JSON.parse(
    readFileSync(new URL(`../templates/builtin/${game}.json`, import.meta.url), 'utf8'),
  ) as Egg;
}

const SYSTEM_VARS = new Set(['SERVER_PORT', 'SERVER_IP', 'SERVER_MEMORY']);

/** A minimal ustar archive holding one file, for putArchive (as Wings mounts install.sh). */
function tarOneFile(path: string, content: string, mode: number): Buffer {
  const body = Buffer.from(content, 'utf8');
  const header = Buffer.alloc(512);
  const put = (value: string, offset: number, length: number) => header.write(value, offset, length, 'utf8');
  const octal = (n: number, length: number) => n.toString(8).padStart(length - 1, '0');
  put(path, 0, 100);
  put(octal(mode, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(body.length, 12), 124, 12);
  put(octal(Math.floor(Date.now() / 1000), 12), 136, 12);
  put('        ', 148, 8);
  put('0', 156, 1);
  put('ustar\u000000', 257, 8);
  let sum = 0;
  for (const byte of header) sum += byte;
  put(`${octal(sum, 7)}\u0000`, 148, 8);
  const pad = Buffer.alloc((512 - (body.length % 512)) % 512);
  return Buffer.concat([header, body, pad, Buffer.alloc(1024)]);
}

/** Collects a TTY stream's text and resolves waiters when a pattern shows up. */
class Console {
  text = '';
  private waiters: { re: RegExp; resolve: () => void }[] = [];
  readonly stream: Duplex;
  constructor(stream: Duplex) {
    this.stream = stream;
    stream.on('data', (chunk: Buffer) => {
      this.text += chunk.toString('utf8');
      this.waiters = this.waiters.filter((w) => {
        if (!w.re.test(this.text)) return true;
        w.resolve();
        return false;
      });
    });
  }
  waitFor(re: RegExp, ms: number, what: string): Promise<void> {
    if (re.test(this.text)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(`timed out after ${ms} ms waiting for ${what}; output tail:\n${this.text.slice(-2000)}`),
        );
      }, ms);
      this.waiters.push({
        re,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }
  write(line: string): void {
    this.stream.write(`${line}\n`);
  }
}

function escapeRegExp(s: string): RegExp {
  return new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const created: { containers: string[]; dirs: string[] } = { containers: [], dirs: [] };

/** Removes a server directory; the game wrote into it as uid 1000, so without root it is emptied from a container. */
async function removeDir(dir: string): Promise<void> {
  try {
    await rm(dir, { recursive: true, force: true });
  } catch {
    const c = await docker.createContainer({
      Image: 'ctrl-alt-play/debian:latest',
      Cmd: ['find', '/d', '-mindepth', '1', '-delete'],
      Labels: labels,
      HostConfig: { Binds: [`${dir}:/d`] },
    });
    await c.start();
    await c.wait();
    await c.remove({ force: true });
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs the egg's install script the way Wings does: script at /mnt/install, data at /mnt/server. */
async function install(game: string, egg: Egg, dir: string, env: string[]): Promise<string> {
  const inst = egg.scripts.installation;
  const name = `cap-gi-install-${game}-${runId}`;
  const c = await docker.createContainer({
    name,
    Image: inst.container,
    Cmd: [inst.entrypoint, '/mnt/install/install.sh'],
    Env: env,
    Labels: labels,
    HostConfig: { Binds: [`${dir}:/mnt/server`] },
  });
  created.containers.push(name);
  await c.putArchive(tarOneFile('mnt/install/install.sh', inst.script.replace(/\r\n/g, '\n'), 0o755), {
    path: '/',
  });
  await c.start();
  const res = (await withTimeout(c.wait(), 60_000, `${game} install`)) as { StatusCode: number };
  const logs = (await c.logs({ stdout: true, stderr: true })).toString('utf8');
  assert.equal(res.StatusCode, 0, `${game} install failed:\n${logs}`);
  await c.remove({ force: true });
  return logs;
}

type GameCase = {
  game: string;
  /** Ports the server listens on besides SERVER_PORT, by variable: protocol. */
  extraPorts: Record<string, 'tcp' | 'udp'>;
  mainProtocols: ('tcp' | 'udp')[];
  overrides: Record<string, string>;
  /**
   * true: STARTUP arrives filled in, as the Agent sends it; false: with its {{VAR}}s, as Wings
   * sends it, for the image's entrypoint to turn into ${VAR}s. The cases cover both.
   */
  fillStartup: boolean;
  /** Console command and the server's answer to it (not the TTY's echo of the command). */
  consoleCheck?: { command: string; answer: RegExp };
  /** Lines the server prints by the done line (settings that took effect). */
  outputChecks?: RegExp[];
  /** Talks to the server over its published port(s). */
  probe: (ports: Record<string, number>, env: Record<string, string>) => Promise<void>;
  exitCode: number;
};

function udpRequest(port: number, payload: Buffer, ms: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      sock.close();
      reject(new Error(`no UDP answer on 127.0.0.1:${port}`));
    }, ms);
    sock.on('message', (msg) => {
      clearTimeout(timer);
      sock.close();
      resolve(msg);
    });
    sock.send(payload, port, '127.0.0.1');
  });
}

/** A TCP line dialog: waits for each step's pattern, then sends its line; returns all text read. */
function tcpDialog(port: number, steps: { expect: RegExp; send?: string }[], ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    let step = 0;
    const sock = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`TCP dialog on ${port} stalled at step ${step}: ${JSON.stringify(text)}`));
    }, ms);
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.on('data', (chunk) => {
      text += chunk.toString('utf8');
      while (step < steps.length && steps[step]!.expect.test(text)) {
        const send = steps[step]!.send;
        step++;
        if (send !== undefined) sock.write(`${send}\n`);
      }
      if (step === steps.length) {
        clearTimeout(timer);
        sock.end();
        resolve(text);
      }
    });
  });
}

const cases: GameCase[] = [
  {
    game: 'openttd',
    // The admin port only listens with a password, on the port config.files wrote into openttd.cfg.
    extraPorts: { ADMIN_PORT: 'tcp' },
    mainProtocols: ['tcp', 'udp'],
    overrides: { SERVER_NAME: serverName, ADMIN_PASSWORD: `admin-${runId}` },
    fillStartup: true,
    consoleCheck: { command: 'say "hello-test"', answer: /\[All\] [^\r\n]*: hello-test/ },
    probe: async (ports) => {
      // The game port and the admin port accept TCP connections through their published ports.
      for (const port of [ports['SERVER_PORT']!, ports['ADMIN_PORT']!]) {
        await new Promise<void>((resolve, reject) => {
          const sock = net.connect(port, '127.0.0.1', () => {
            sock.destroy();
            resolve();
          });
          sock.on('error', reject);
        });
      }
    },
    exitCode: 0,
  },
  {
    game: 'openarena',
    extraPorts: {},
    mainProtocols: ['udp'],
    overrides: { SERVER_NAME: serverName },
    fillStartup: true,
    consoleCheck: { command: 'say hello-test', answer: /console: hello-test/ },
    probe: async (ports) => {
      // Quake 3 out-of-band status query on the published UDP port.
      const oob = Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xff]), Buffer.from('getstatus\n')]);
      const answer = await udpRequest(ports['SERVER_PORT']!, oob, 5000);
      assert.match(answer.toString('latin1'), /statusResponse/);
      assert.match(answer.toString('latin1'), /mapname\\oa_dm1/);
      // sv_hostname comes from the variable, through config.files (`file` parser).
      assert.ok(answer.toString('latin1').includes(`sv_hostname\\${serverName}`), answer.toString('latin1'));
    },
    exitCode: 0,
  },
  {
    game: 'teeworlds',
    extraPorts: { ECON_PORT: 'tcp' },
    mainProtocols: ['udp'],
    overrides: { SERVER_NAME: serverName, MAP: 'ctf1', ECON_PASSWORD: `econ-${runId}` },
    fillStartup: false,
    probe: async (ports, env) => {
      // No stdin console: econ (TCP line console) on its own published port instead.
      const text = await tcpDialog(
        ports['ECON_PORT']!,
        [
          { expect: /Enter password:/, send: env['ECON_PASSWORD']! },
          { expect: /Authentication successful/, send: 'status' },
        ],
        5000,
      );
      assert.match(text, /Authentication successful/);
    },
    // server.cfg as config.files rewrote it (`file` parser).
    outputChecks: [new RegExp(`server name is '${serverName}'`), /maps\/ctf1\.map/],
    exitCode: 130,
  },
];

before(async () => {
  // Fails (never skips) when the engine or an image is missing, or an image is older than its
  // recipe (build.sh --check builds nothing and fails if anything would be built).
  await docker.ping();
  const buildScript = fileURLToPath(new URL('../scripts/images/build.sh', import.meta.url));
  await promisify(execFile)('bash', [buildScript, '--check', ...cases.map((c) => c.game)]).catch(
    (e: { stdout?: string }) => {
      throw new Error(`game images missing or stale; run scripts/images/build.sh games\n${e.stdout ?? ''}`);
    },
  );
  for (const c of cases) {
    const egg = loadEgg(c.game);
    for (const image of [...Object.values(egg.docker_images), egg.scripts.installation.container]) {
      await docker.getImage(image).inspect();
    }
  }
});

after(async () => {
  for (const name of created.containers) {
    await docker
      .getContainer(name)
      .remove({ force: true })
      .catch(() => undefined);
  }
  for (const dir of created.dirs) await removeDir(dir).catch(() => undefined);
});

describe('built-in templates are PTDL_v2 eggs', () => {
  for (const { game, overrides } of cases) {
    test(game, () => {
      const egg = loadEgg(game);
      // The project's own importer takes them without a warning, and the defaults (plus the
      // values this test sets) pass the variables' rules.
      const { template, warnings } = importTemplate(JSON.stringify(egg), { filename: `${game}.json` });
      assert.deepEqual(warnings, []);
      const values = Object.fromEntries(template.variables.map((v) => [v.envVariable, v.defaultValue]));
      assert.deepEqual(validateVariables(template.variables, values).errors, {});
      assert.deepEqual(validateVariables(template.variables, { ...values, ...overrides }).errors, {});
      assert.equal(egg.meta.version, 'PTDL_v2');
      assert.equal(typeof egg.docker_images, 'object');
      assert.ok(Object.values(egg.docker_images).every((img) => img.startsWith('ctrl-alt-play/')));
      for (const key of ['files', 'startup', 'logs'] as const) {
        assert.equal(typeof egg.config[key], 'string', `config.${key} is a JSON string`);
        JSON.parse(egg.config[key]);
      }
      const done = (JSON.parse(egg.config.startup) as { done: unknown }).done;
      assert.ok(typeof done === 'string' && done.length > 0);
      assert.ok(egg.config.stop.length > 0);
      assert.match(egg.startup, /\{\{SERVER_PORT\}\}/);
      const declared = new Set(egg.variables.map((v) => v.env_variable));
      for (const m of egg.startup.matchAll(/\{\{([A-Za-z0-9_]+)\}\}/g)) {
        assert.ok(declared.has(m[1]!) || SYSTEM_VARS.has(m[1]!), `startup uses undeclared {{${m[1]}}}`);
      }
      const files = JSON.parse(egg.config.files) as Record<
        string,
        { parser: string; find: Record<string, string> }
      >;
      for (const [file, spec] of Object.entries(files)) {
        assert.ok(['file', 'ini', 'properties', 'json', 'yaml', 'xml'].includes(spec.parser), file);
        for (const value of Object.values(spec.find)) {
          for (const m of value.matchAll(/\{\{server\.build\.env\.([A-Za-z0-9_]+)\}\}/g)) {
            assert.ok(declared.has(m[1]!), `${file} uses undeclared env ${m[1]}`);
          }
        }
      }
      const inst = egg.scripts.installation;
      assert.ok(inst.script.startsWith('#!') && inst.container.length > 0 && inst.entrypoint.length > 0);
      for (const v of egg.variables) {
        assert.equal(typeof v.default_value, 'string');
        assert.equal(typeof v.rules, 'string');
        assert.match(v.env_variable, /^[A-Z][A-Z0-9_]*$/);
        const rules = v.rules.split('|');
        if (rules.includes('required')) assert.notEqual(v.default_value, '', `${v.env_variable} default`);
        if (rules.includes('integer')) assert.match(v.default_value, /^\d+$/);
        const regex = rules.find((r) => r.startsWith('regex:'));
        if (regex) {
          const body = regex.slice('regex:/'.length, regex.lastIndexOf('/'));
          assert.match(v.default_value, new RegExp(body), `${v.env_variable} default vs its regex`);
        }
      }
    });
  }
});

describe('game images are Pterodactyl-style', () => {
  for (const { game } of cases) {
    test(game, async () => {
      const image = Object.values(loadEgg(game).docker_images)[0]!;
      const info = await docker.getImage(image).inspect();
      assert.equal(info.Config.User, 'container');
      assert.equal(info.Config.WorkingDir, '/home/container');
      assert.ok(info.Config.Entrypoint?.includes('/entrypoint.sh'), String(info.Config.Entrypoint));
      assert.match(info.Config.Labels?.['ctrl-alt-play.recipe'] ?? '', /^[0-9a-f]{16}$/);
    });
  }
});

describe('game servers run from their images and templates', () => {
  for (const c of cases) {
    test(c.game, { timeout: 90_000 }, async () => {
      const egg = loadEgg(c.game);
      const image = Object.values(egg.docker_images)[0]!;
      const { template } = importTemplate(JSON.stringify(egg), { filename: `${c.game}.json` });
      // The server's files live in a host directory bind-mounted at /home/container, as the Agent does it.
      const dir = await mkdtemp(join(tmpdir(), `cap-gi-${c.game}-`));
      created.dirs.push(dir);

      // Environment as the Agent builds it: variable defaults, overrides, allocations.
      const ports: Record<string, number> = { SERVER_PORT: await freePort() };
      for (const key of Object.keys(c.extraPorts)) ports[key] = await freePort();
      const env: Record<string, string> = {};
      for (const v of egg.variables) env[v.env_variable] = v.default_value;
      Object.assign(env, c.overrides);
      for (const [key, port] of Object.entries(ports)) env[key] = String(port);
      Object.assign(env, { SERVER_IP: '0.0.0.0', SERVER_MEMORY: '1024', TZ: 'UTC' });
      env['STARTUP'] = c.fillStartup ? fillStartup(egg.startup, env) : egg.startup;
      const envList = Object.entries(env).map(([k, v]) => `${k}=${v}`);

      const installLog = await install(c.game, egg, dir, envList);
      assert.match(installLog, /install complete/);
      // The Agent's pre-start step: config.files rewrites the installed config from the variables.
      const results = await applyConfigFiles(dir, template.config.files, {
        serverPort: ports['SERVER_PORT']!,
        serverIp: '0.0.0.0',
        memoryMiB: 1024,
        environment: env,
      });
      assert.ok(results.length > 0);
      for (const r of results) assert.ok(r.ok && r.changed, JSON.stringify(r));

      const exposed: Record<string, object> = {};
      const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
      const publish = (port: number, proto: 'tcp' | 'udp') => {
        exposed[`${port}/${proto}`] = {};
        bindings[`${port}/${proto}`] = [{ HostIp: '127.0.0.1', HostPort: String(port) }];
      };
      for (const proto of c.mainProtocols) publish(ports['SERVER_PORT']!, proto);
      for (const [key, proto] of Object.entries(c.extraPorts)) publish(ports[key]!, proto);

      const name = `cap-gi-${c.game}-${runId}`;
      const container = await docker.createContainer({
        name,
        Image: image,
        Env: envList,
        Tty: true,
        OpenStdin: true,
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        Labels: labels,
        ExposedPorts: exposed,
        HostConfig: {
          PortBindings: bindings,
          Binds: [`${dir}:/home/container`],
          Memory: 1024 * 1024 * 1024,
          // The Agent's hardening (container-spec.ts): the images must run under it.
          CapDrop: CAP_DROP,
          SecurityOpt: ['no-new-privileges'],
          PidsLimit: DEFAULT_PIDS_LIMIT,
          Tmpfs: { '/tmp': 'rw,exec,nosuid,size=100m' },
          Init: false,
        },
      });
      created.containers.push(name);
      const stream = (await container.attach({
        stream: true,
        stdin: true,
        stdout: true,
        stderr: true,
        hijack: true,
      })) as unknown as Duplex;
      const con = new Console(stream);
      const t0 = performance.now();
      await container.start();

      const done = (JSON.parse(egg.config.startup) as { done: string }).done;
      await con.waitFor(escapeRegExp(done), DONE_TIMEOUT_MS, `${c.game} done line "${done}"`);
      const readyMs = Math.round(performance.now() - t0);
      // The entrypoint echoes the command it runs: placeholders become shell variables.
      const echoed = con.text.match(/:\/home\/container\$ ([^\r\n]*)/)?.[1] ?? '';
      if (c.fillStartup) assert.ok(echoed.includes(String(ports['SERVER_PORT'])), echoed);
      else assert.ok(/\$\{SERVER_PORT\}/.test(echoed) && !echoed.includes('{{'), echoed);

      for (const re of c.outputChecks ?? []) assert.match(con.text, re);

      if (c.consoleCheck) {
        const mark = con.text.length;
        con.write(c.consoleCheck.command);
        await con.waitFor(c.consoleCheck.answer, 5000, `${c.game} console answer`);
        assert.ok(c.consoleCheck.answer.test(con.text.slice(mark)));
      }
      await c.probe(ports, env);

      // Graceful stop as the Agent does it: a signal (^C = SIGINT) or a console command.
      const stop = egg.config.stop;
      const action = parseStop(stop);
      assert.notEqual(action.type === 'signal' && action.signal, 'SIGKILL', 'a graceful stop');
      const t1 = performance.now();
      const exited = container.wait() as Promise<{ StatusCode: number }>;
      if (action.type === 'signal') await container.kill({ signal: action.signal });
      else con.write(action.command);
      const res = await withTimeout(exited, STOP_TIMEOUT_MS, `${c.game} stop via ${stop}`);
      const stopMs = Math.round(performance.now() - t1);
      assert.equal(res.StatusCode, c.exitCode, `${c.game} exit code; output tail:\n${con.text.slice(-1500)}`);
      const state = (await container.inspect()).State;
      assert.equal(state.OOMKilled, false);
      stream.destroy();
      await container.remove({ force: true });
      console.log(`[game-images] ${c.game}: ready in ${readyMs} ms, stopped by ${stop} in ${stopMs} ms`);
    });
  }
});
