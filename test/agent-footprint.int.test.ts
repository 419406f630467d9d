/**
 * What keeps an idle Agent lean (issue 14 item 5; bench/agent-rss.ts measures it), checked so it
 * cannot creep back:
 *  - its bundle (scripts/build-dist.ts, esbuild's metafile) holds no code of the modules the
 *    Agent never uses (dockerode's SSH transport and BuildKit/gRPC stack: stand-ins that throw),
 *    and holds none of the modules loaded only when used (Fastify for the HTTP API, ssh2 for SFTP,
 *    prom-client for a scrape, gamedig for a player query): they are bundles of their own
 *    (dist/agent-lazy), reached from its entry only through dynamic imports;
 *  - the single executable loads each of them from its SEA assets when its feature is used;
 *  - an Agent run as `ctrl-alt-play agent`, registered with a real Panel, SFTP on, idle, has
 *    loaded none of them (a module loader hook records every module it loads).
 * Its resident memory is measured by bench/agent-rss.ts, not asserted here: the figures move by
 * several MiB with the machine's load and page cache (docs/deploy.md, Memory).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  freePort,
  type Session,
  startTestPanel,
  type TestPanel,
  until,
} from '../packages/panel/test/helpers.ts';

const root = path.resolve(import.meta.dirname, '..');

/** Modules an idle Agent must not have loaded (a package name, as it appears in node_modules/). */
const LAZY = ['fastify', 'ssh2', 'prom-client', 'gamedig'];
/**
 * Modules the Agent's code imports statically but uses only for a feature (archives, zip, YAML,
 * TOML): islands too, whose stand-ins in the main bundle load them on their first use.
 */
const DEFERRED = [
  'tar',
  'yauzl',
  'yazl',
  'ignore',
  'yaml',
  'smol-toml',
  'tar-fs',
  '@balena/dockerignore',
  'thread-stream',
];
/** Modules the Agent never uses: not even in its bundle. */
const NEVER = ['@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs'];

interface Metafile {
  inputs: Record<string, { imports: { path: string; kind: string; external?: boolean }[] }>;
}

const pkgOf = (file: string): string | undefined =>
  /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(file)?.[1];

describe("the Agent's footprint", () => {
  it('its bundle has none of the modules it never uses, and reaches the lazy ones only by dynamic import', () => {
    execFileSync(process.execPath, [path.join(root, 'scripts/build-dist.ts'), 'agent'], {
      cwd: root,
      stdio: 'pipe',
    });
    const meta = JSON.parse(readFileSync(path.join(root, 'dist/agent.meta.json'), 'utf8')) as Metafile;
    const files = Object.keys(meta.inputs);
    for (const never of NEVER) {
      const inBundle = files.filter((f) => pkgOf(f) === never);
      assert.deepEqual(inBundle, [], `${never} is in the Agent's bundle`);
    }
    // docker-modem's SSH transport gets the stand-in, not ssh2
    const sshJs = files.find((f) => f.endsWith('node_modules/docker-modem/lib/ssh.js'));
    assert.ok(sshJs, 'docker-modem/lib/ssh.js in the bundle (dockerode is)');
    const sshImports = meta.inputs[sshJs]?.imports.map((i) => i.path) ?? [];
    assert.ok(sshImports.includes('agent-unused:ssh2'), `docker-modem's ssh2: ${sshImports.join(', ')}`);

    // everything the entry reaches without a dynamic import (a require() counts: it may run at load)
    const entry = files.find((f) => f.endsWith('packages/cli/src/entry/agent.ts'));
    assert.ok(entry, 'the entry in the metafile');
    const eager = new Set<string>([entry]);
    const queue = [entry];
    for (let f = queue.pop(); f !== undefined; f = queue.pop())
      for (const i of meta.inputs[f]?.imports ?? [])
        if (i.kind !== 'dynamic-import' && !i.external && !eager.has(i.path) && i.path in meta.inputs) {
          eager.add(i.path);
          queue.push(i.path);
        }
    assert.ok(
      [...eager].some((f) => pkgOf(f) === 'dockerode'),
      'the walk follows static imports (dockerode is one)',
    );
    // the lazily loaded packages are bundles of their own (dist/agent-lazy/), loaded through a
    // stand-in module in the main bundle (scripts/build-dist.ts, agentIslands)
    const islands = JSON.parse(readFileSync(path.join(root, 'dist/agent-lazy.meta.json'), 'utf8')) as Record<
      string,
      Metafile
    >;
    for (const lazy of LAZY) {
      const reached = [...eager].filter((f) => pkgOf(f) === lazy || f === `agent-island:${lazy}`);
      assert.deepEqual(reached, [], `${lazy} is reached from the entry without a dynamic import`);
      assert.ok(`agent-island:${lazy}` in meta.inputs, `${lazy}'s stand-in is in the main bundle`);
      assert.deepEqual(
        files.filter((f) => pkgOf(f) === lazy).slice(0, 3),
        [],
        `${lazy}'s code is in the main bundle (it has its own)`,
      );
      assert.ok(
        Object.keys(islands[lazy]?.inputs ?? {}).some((f) => pkgOf(f) === lazy),
        `${lazy} is in dist/agent-lazy (for when it is used)`,
      );
    }
    for (const deferred of DEFERRED) {
      assert.ok(`agent-island:${deferred}` in meta.inputs, `${deferred}'s stand-in is in the main bundle`);
      assert.deepEqual(
        files.filter((f) => pkgOf(f) === deferred).slice(0, 3),
        [],
        `${deferred}'s code is in the main bundle (it has its own)`,
      );
      assert.ok(
        Object.keys(islands[deferred]?.inputs ?? {}).some((f) => pkgOf(f) === deferred),
        `${deferred} is in dist/agent-lazy (for when it is used)`,
      );
    }
    // what the main bundle holds is what an idle Agent's heap copies whole (the main script's
    // source): the lazily loaded packages were 60 % of it (3.2 MB with them, 1.26 MB without),
    // the deferred ones 0.3 MB of the rest (0.97 MB without them)
    const mainBytes = statSync(path.join(root, 'dist/agent.cjs')).size;
    console.log(`[footprint] dist/agent.cjs ${(mainBytes / 1e6).toFixed(2)} MB`);
    assert.ok(mainBytes < 1_500_000, `dist/agent.cjs is ${mainBytes} bytes: something large became eager`);
  });

  it('its single executable loads each lazily loaded package when its feature is used', async () => {
    // the executable carries them as SEA assets; this builds it (cached) and drives each one
    execFileSync(
      process.execPath,
      [path.join(root, 'scripts/build-dist.ts'), 'bin', '--arch', process.arch],
      {
        cwd: root,
        stdio: 'pipe',
      },
    );
    const dir = mkdtempSync(path.join(tmpdir(), 'cap-footprint-bin-'));
    const [httpPort, sftpPort] = [await freePort(), await freePort()];
    const apiKey = 'footprint-api-key-0123456789abcdef';
    const metricsToken = 'footprint-metrics-0123456789';
    let out = '';
    // no Panel (its URL refuses): the HTTP API, /metrics and SFTP answer all the same
    const bin = spawn(path.join(root, `dist/bin/ctrl-alt-play-agent-linux-${process.arch}`), [], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env['PATH'] ?? '',
        PANEL_URL: `http://127.0.0.1:${await freePort()}`,
        NODE_ID: '00000000-0000-4000-8000-000000000014',
        AGENT_SECRET: 'footprint-secret-0123456789abcdefghij',
        AGENT_DATA_DIR: path.join(dir, 'agent'),
        AGENT_HTTP_HOST: '127.0.0.1',
        AGENT_HTTP_PORT: String(httpPort),
        AGENT_API_KEY: apiKey,
        AGENT_METRICS_TOKEN: metricsToken,
        AGENT_SFTP_HOST: '127.0.0.1',
        AGENT_SFTP_PORT: String(sftpPort),
      },
    });
    bin.stdout?.on('data', (d) => (out += d));
    bin.stderr?.on('data', (d) => (out += d));
    try {
      await until(() => out.includes('sftp listening') && out.includes('agent started'), 30_000).catch(() => {
        throw new Error(`the executable did not start; its output:\n${out}`);
      });
      const base = `http://127.0.0.1:${httpPort}`;
      // Fastify (the HTTP API, with a key): its own not-found answer
      const nf = await fetch(`${base}/footprint-nowhere`, { headers: { 'x-api-key': apiKey } });
      assert.equal(nf.status, 404);
      assert.match(await nf.text(), /Route GET:\/footprint-nowhere not found/);
      // prom-client (a scrape)
      const m = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } });
      assert.equal(m.status, 200);
      assert.match(await m.text(), /# TYPE cap_agent_panel_link_up gauge/);
      // ssh2 (SFTP): a real handshake, then a refused login (no Panel to check it with)
      const { default: ssh2 } = await import('ssh2');
      const refused = await new Promise<string>((resolve, reject) => {
        const c = new ssh2.Client();
        c.on('ready', () => {
          c.end();
          reject(new Error('logged in without a Panel'));
        });
        c.on('error', (e) => resolve(e.message));
        c.connect({
          host: '127.0.0.1',
          port: sftpPort,
          username: 'nobody.x',
          password: 'nope',
          readyTimeout: 10_000,
        });
      });
      assert.match(refused, /authentication methods failed/i);
      assert.ok(!out.includes('not in the Agent'), `a stand-in was called:\n${out}`);
    } finally {
      if (bin.exitCode === null && bin.signalCode === null) {
        const exited = new Promise((r) => bin.once('exit', r));
        bin.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    }
    // gamedig needs a game to ask; its bundle loads like the others (the same loader) and holds it
    const gd = execFileSync(
      process.execPath,
      ['-p', `Object.keys(require(${JSON.stringify(path.join(root, 'dist/agent-lazy/gamedig.cjs'))}))`],
      { encoding: 'utf8' },
    );
    assert.match(gd, /GameDig/);
  });

  it('its SFTP handshakes without WebAssembly too (an executable built with --jitless)', async () => {
    // ssh2's island resolves its crypto init without WebAssembly and then offers no
    // chacha20-poly1305 (scripts/build-dist.ts, ssh2WithoutWasm): what --jitless/--lite-mode need
    const flags = JSON.parse(
      readFileSync(path.join(root, 'packages/cli/src/entry/agent-exec-argv.json'), 'utf8'),
    ) as string[];
    const out = path.join(root, '.cache/agent-levers/footprint-jitless');
    execFileSync(
      process.execPath,
      [
        path.join(root, 'scripts/build-dist.ts'),
        'bin',
        '--arch',
        process.arch,
        '--exec-argv',
        [...flags, '--jitless'].join(' '),
        '--out',
        out,
      ],
      { cwd: root, stdio: 'pipe' },
    );
    const dir = mkdtempSync(path.join(tmpdir(), 'cap-footprint-jitless-'));
    const sftpPort = await freePort();
    let log = '';
    const bin = spawn(path.join(out, `ctrl-alt-play-agent-linux-${process.arch}`), [], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env['PATH'] ?? '',
        PANEL_URL: `http://127.0.0.1:${await freePort()}`,
        NODE_ID: '00000000-0000-4000-8000-000000000015',
        AGENT_SECRET: 'footprint-secret-0123456789abcdefghij',
        AGENT_DATA_DIR: path.join(dir, 'agent'),
        AGENT_HTTP_PORT: '0',
        AGENT_SFTP_HOST: '127.0.0.1',
        AGENT_SFTP_PORT: String(sftpPort),
      },
    });
    bin.stdout?.on('data', (d) => (log += d));
    bin.stderr?.on('data', (d) => (log += d));
    try {
      await until(() => log.includes('sftp listening'), 30_000).catch(() => {
        throw new Error(`the executable did not start; its output:\n${log}`);
      });
      const { default: ssh2 } = await import('ssh2');
      const attempt = (cipher?: import('ssh2').CipherAlgorithm[]) =>
        new Promise<string>((resolve) => {
          const c = new ssh2.Client();
          c.on('ready', () => {
            c.end();
            resolve('logged in');
          });
          c.on('error', (e) => resolve(e.message));
          c.connect({
            host: '127.0.0.1',
            port: sftpPort,
            username: 'nobody.x',
            password: 'nope',
            readyTimeout: 10_000,
            ...(cipher ? { algorithms: { cipher } } : {}),
          });
        });
      // a whole handshake (keys exchanged, then the login refused: no Panel to ask)
      assert.match(await attempt(), /authentication methods failed/i);
      assert.match(await attempt(['chacha20-poly1305@openssh.com']), /no matching .*cipher/i);
      assert.equal(bin.exitCode, null, `the executable exited:\n${log}`);
    } finally {
      if (bin.exitCode === null && bin.signalCode === null) {
        const exited = new Promise((r) => bin.once('exit', r));
        bin.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('an idle Agent, registered, SFTP on', () => {
    let panel: TestPanel;
    let owner: Session;
    let child: ChildProcess | undefined;
    const dir = mkdtempSync(path.join(tmpdir(), 'cap-footprint-'));
    const loadedFile = path.join(dir, 'loaded.txt');
    let out = '';

    before(async () => {
      panel = await startTestPanel({ PANEL_AGENT_PING_MS: '1000' });
      owner = await panel.login();
    });

    after(async () => {
      if (child && child.exitCode === null) {
        const exited = new Promise((r) => child?.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await panel?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('has loaded none of the modules loaded only when used', async () => {
      const hook = path.join(dir, 'hook.mjs');
      writeFileSync(
        hook,
        `import { registerHooks } from 'node:module';
import { appendFileSync } from 'node:fs';
registerHooks({
  resolve(specifier, context, next) {
    appendFileSync(${JSON.stringify(loadedFile)}, 'import ' + specifier + ' ' + context.parentURL + '\\n');
    return next(specifier, context);
  },
  load(url, context, next) {
    appendFileSync(${JSON.stringify(loadedFile)}, 'load ' + url + '\\n');
    return next(url, context);
  },
});
`,
      );
      writeFileSync(loadedFile, '');
      const node = await panel.createNode(owner, 'footprint');
      const sftpPort = await freePort();
      child = spawn(
        process.execPath,
        ['--import', hook, path.join(root, 'packages/cli/bin/ctrl-alt-play.js'), 'agent'],
        {
          cwd: dir,
          stdio: 'pipe',
          env: {
            PATH: process.env['PATH'] ?? '',
            PANEL_URL: panel.url,
            NODE_ID: node.id,
            AGENT_SECRET: node.agentSecret,
            AGENT_DATA_DIR: path.join(dir, 'agent'),
            AGENT_HTTP_PORT: '0',
            AGENT_SFTP_PORT: String(sftpPort),
            AGENT_SFTP_HOST: '127.0.0.1',
          },
        },
      );
      child.stdout?.on('data', (d) => (out += d));
      child.stderr?.on('data', (d) => (out += d));
      await until(
        async () => (await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body?.online === true,
        30_000,
      ).catch((e) => {
        throw new Error(`${(e as Error).message}; agent output:\n${out}`);
      });
      await until(() => out.includes('sftp listening'), 10_000).catch(() => {
        throw new Error(`SFTP did not start; agent output:\n${out}`);
      });
      // a ping or two, a stats round: what an idle Agent does
      await new Promise((r) => setTimeout(r, 3000));
      const lines = readFileSync(loadedFile, 'utf8').split('\n').filter(Boolean);
      const loaded = lines.filter((l) => l.startsWith('load ')).map((l) => l.slice(5));
      assert.ok(
        loaded.some((u) => pkgOf(u) === 'dockerode'),
        `the hook sees packages (dockerode): ${loaded.length} modules`,
      );
      // what the Agent's own code imported (from source dockerode's modem loads ssh2 for itself;
      // the bundle gives it a stand-in, checked above)
      const ours = lines
        .filter((l) => l.startsWith('import '))
        .map((l) => l.split(' '))
        .filter(([, , parent]) => parent?.includes('/packages/') && !parent.includes('/node_modules/'))
        .map(([, specifier]) => specifier ?? '');
      assert.ok(ours.includes('dockerode'), `the hook sees the Agent's imports: ${ours.length}`);
      for (const lazy of LAZY) {
        const hits = ours.filter((sp) => sp === lazy || sp.startsWith(`${lazy}/`));
        assert.deepEqual(hits, [], `${lazy} imported by an idle Agent`);
      }
      for (const lazy of ['fastify', 'prom-client']) {
        const hits = loaded.filter((u) => pkgOf(u) === lazy);
        assert.deepEqual(hits.slice(0, 3), [], `${lazy} loaded by an idle Agent (${hits.length} files)`);
      }
    });

    it('run from its bundle, has loaded none of its islands', async () => {
      // `node dist/agent.cjs`: each island is a file of dist/agent-lazy/, required on first use
      execFileSync(process.execPath, [path.join(root, 'scripts/build-dist.ts'), 'agent'], {
        cwd: root,
        stdio: 'pipe',
      });
      const hook = path.join(dir, 'hook.mjs');
      const bundleLoaded = path.join(dir, 'loaded-bundle.txt');
      writeFileSync(
        hook,
        `import { registerHooks } from 'node:module';
import { appendFileSync } from 'node:fs';
registerHooks({
  load(url, context, next) {
    appendFileSync(${JSON.stringify(bundleLoaded)}, url + '\\n');
    return next(url, context);
  },
});
`,
      );
      writeFileSync(bundleLoaded, '');
      const node = await panel.createNode(owner, 'footprint-bundle');
      let bundleOut = '';
      const bundle = spawn(process.execPath, ['--import', hook, path.join(root, 'dist/agent.cjs')], {
        cwd: dir,
        stdio: 'pipe',
        env: {
          PATH: process.env['PATH'] ?? '',
          PANEL_URL: panel.url,
          NODE_ID: node.id,
          AGENT_SECRET: node.agentSecret,
          AGENT_DATA_DIR: path.join(dir, 'agent-bundle'),
          AGENT_HTTP_PORT: '0',
          AGENT_SFTP_PORT: String(await freePort()),
          AGENT_SFTP_HOST: '127.0.0.1',
        },
      });
      bundle.stdout?.on('data', (d) => (bundleOut += d));
      bundle.stderr?.on('data', (d) => (bundleOut += d));
      try {
        await until(
          async () => (await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body?.online === true,
          30_000,
        ).catch((e) => {
          throw new Error(`${(e as Error).message}; agent output:\n${bundleOut}`);
        });
        await until(() => bundleOut.includes('sftp listening'), 10_000).catch(() => {
          throw new Error(`SFTP did not start; agent output:\n${bundleOut}`);
        });
        await new Promise((r) => setTimeout(r, 3000));
        const urls = readFileSync(bundleLoaded, 'utf8').split('\n').filter(Boolean);
        assert.ok(
          urls.some((u) => u.endsWith('/dist/agent.cjs')),
          `the hook sees what is required: ${urls.length} modules`,
        );
        const islands = urls.filter((u) => u.includes('/dist/agent-lazy/'));
        assert.deepEqual(islands, [], 'islands loaded by an idle Agent run from its bundle');
      } finally {
        if (bundle.exitCode === null) {
          const exited = new Promise((r) => bundle.once('exit', r));
          bundle.kill('SIGTERM');
          await exited;
        }
      }
    });
  });
});
