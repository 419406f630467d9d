/**
 * What the fault suite (test/faults/*.int.test.ts, issue 15 item 3) stands on: private copies of
 * the things a case breaks (a dockerd with its own bridge, a PostgreSQL cluster, a nats-server, a network namespace),
 * so a fault never touches the shared Docker Engine, the shared PostgreSQL or another test;
 * Panels and Agents as child processes (`ctrl-alt-play panel|agent`) that can be killed with
 * SIGKILL; a console subscriber that counts numbered lines; a "game" that numbers its output and
 * writes every command it receives to a file, so a command lost or run twice shows.
 *
 * Each case prints one line of figures, `[fault] <case> key=value …`: the goals that are not
 * timing (0 servers stopped, 0 commands lost or run twice, drops counted) are asserted, timing
 * (reconnect ms) is printed.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import WebSocket from 'ws';
import { freePort, type Json, until } from '../../packages/panel/test/helpers.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'packages/cli/bin/ctrl-alt-play.js');
export const BUSYBOX = 'ctrl-alt-play/busybox:latest';
export const ADMIN = { email: 'faults@example.test', password: 'faults-password-1' };

/**
 * The "game": numbers a line every 100 ms (`tick:<n>`), appends a line to boots.log at each start
 * and every command to cmds.log in its folder (the server's directory on the host) and echoes it. Its own output is the counter, so a
 * line missing at a subscriber is a line the chain lost.
 */
export const TICK_STARTUP =
  'echo boot >> boots.log; echo ready; (i=0; while true; do i=$((i+1)); echo tick:$i; sleep 0.1; done) & ' +
  'while read c; do echo "$c" >> cmds.log; echo "got:$c"; done';

/** `[fault] name k=v …` on stdout (the figures of one case). */
export function figures(name: string, f: Record<string, string | number | boolean>): void {
  const kv = Object.entries(f)
    .map(([k, v]) => `${k}=${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(1) : v}`)
    .join(' ');
  process.stdout.write(`[fault] ${name} ${kv}\n`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until fn holds; the ms it took. */
export async function timeUntil(fn: () => boolean | Promise<boolean>, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  await until(fn, timeoutMs);
  return Date.now() - t0;
}

/** Children still running when this process exits (a crash, an uncaught error) are killed. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** A child process whose output is kept (last 64 KiB) for the error of a failed wait. */
export class Proc {
  readonly child: ChildProcess;
  out = '';
  readonly exited: Promise<number | null>;
  constructor(cmd: string, args: string[], env: Record<string, string>, cwd = ROOT) {
    this.child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer) => {
      this.out = (this.out + d.toString()).slice(-65536);
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    live.add(this.child);
    this.exited = new Promise((r) =>
      this.child.once('exit', (code) => {
        live.delete(this.child);
        r(code);
      }),
    );
  }
  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
  get pid(): number {
    return this.child.pid ?? 0;
  }
  async kill9(): Promise<void> {
    if (!this.alive) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
  /** SIGTERM, then SIGKILL after graceMs */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.alive) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

/** A REST client of a Panel: logs in, every request has a deadline (a hang is a failure, not a wait). */
export class Client {
  cookie = '';
  csrf = '';
  readonly url: string;
  constructor(url: string) {
    this.url = url;
  }
  async login(): Promise<void> {
    const r = await fetch(`${this.url}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(ADMIN),
      signal: AbortSignal.timeout(15_000),
    });
    if (r.status !== 200) throw new Error(`login: ${r.status} ${await r.text()}`);
    this.cookie = (r.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    this.csrf = ((await r.json()) as { csrfToken: string }).csrfToken;
  }
  /** status 0 with `error` set when the request failed or passed its deadline */
  async api(
    method: string,
    p: string,
    body?: unknown,
    timeoutMs = 20_000,
  ): Promise<{ status: number; body: Json; ms: number; error?: string }> {
    const t0 = Date.now();
    const headers: Record<string, string> = { cookie: this.cookie, 'x-csrf-token': this.csrf };
    if (body !== undefined) headers['content-type'] = 'application/json';
    try {
      const r = await fetch(`${this.url}${p}`, {
        method,
        headers,
        signal: AbortSignal.timeout(timeoutMs),
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await r.text();
      let parsed: Json = text;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {}
      return { status: r.status, body: parsed, ms: Date.now() - t0 };
    } catch (e) {
      return { status: 0, body: null, ms: Date.now() - t0, error: (e as Error).name };
    }
  }
  async online(nodeId: string): Promise<boolean> {
    const r = await this.api('GET', `/api/nodes/${nodeId}`, undefined, 5000);
    return r.body?.online === true;
  }
  async node(name: string): Promise<{ id: string; agentSecret: string }> {
    const r = await this.api('POST', '/api/nodes', { name });
    if (r.status !== 201 && r.status !== 200) throw new Error(`node: ${r.status} ${JSON.stringify(r.body)}`);
    return { id: r.body.node.id as string, agentSecret: r.body.agentSecret as string };
  }
  /** a server running TICK_STARTUP (or startup), created and started; its id */
  async tickServer(nodeId: string, name: string, opts: { image?: string; startup?: string } = {}) {
    const r = await this.api(
      'POST',
      '/api/servers?wait=true',
      {
        name,
        nodeId,
        image: opts.image ?? BUSYBOX,
        startup: opts.startup ?? TICK_STARTUP,
        done: 'ready',
        stop: '^C',
        stopTimeout: 2,
        limits: { memory: '64m', cpu: '1' },
      },
      60_000,
    );
    if (r.status !== 201) throw new Error(`create server: ${r.status} ${JSON.stringify(r.body)}`);
    const id = r.body.id as string;
    const s = await this.api('POST', `/api/servers/${id}/power`, { action: 'start' });
    if (s.status !== 202) throw new Error(`start: ${s.status} ${JSON.stringify(s.body)}`);
    await until(async () => (await this.api('GET', `/api/servers/${id}`)).body?.status === 'running', 30_000);
    return id;
  }
  /**
   * A server of a built-in template (a real game: its install runs, then it is started) on a
   * free port of the host; its id once the Panel says running.
   */
  async gameServer(nodeId: string, template: string, environment: Record<string, string>): Promise<string> {
    const tpl = ((await this.api('GET', '/api/templates')).body as Json[]).find(
      (t) => t.name === template && t.builtin,
    );
    if (!tpl) throw new Error(`no built-in template ${template}`);
    const port = await freeWildcardPort();
    const pool = await this.api('POST', `/api/nodes/${nodeId}/allocations`, {
      ip: '0.0.0.0',
      ports: [String(port)],
    });
    if (pool.status !== 201) throw new Error(`allocation: ${pool.status} ${JSON.stringify(pool.body)}`);
    const r = await this.api(
      'POST',
      '/api/servers?wait=true',
      {
        name: template,
        nodeId,
        templateId: tpl.id,
        environment,
        allocationId: pool.body[0].id,
        limits: { memory: 1024 },
      },
      180_000,
    );
    if (r.status !== 201) throw new Error(`create ${template}: ${r.status} ${JSON.stringify(r.body)}`);
    const id = r.body.id as string;
    await until(async () => (await this.status(id)) === 'offline', 180_000);
    const s = await this.api('POST', `/api/servers/${id}/power`, { action: 'start' });
    if (s.status !== 202) throw new Error(`start: ${s.status} ${JSON.stringify(s.body)}`);
    await until(async () => (await this.status(id)) === 'running', 180_000);
    return id;
  }
  async status(serverId: string): Promise<string> {
    return (await this.api('GET', `/api/servers/${serverId}`, undefined, 5000)).body?.status ?? '?';
  }
}

/** A port free on every address of the host (a game server's allocation binds 0.0.0.0). */
async function freeWildcardPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '0.0.0.0', () => r()));
  const a = srv.address();
  await new Promise<void>((r) => srv.close(() => r()));
  if (!a || typeof a === 'string') throw new Error('no port');
  return a.port;
}

/** The base environment of a Panel process. */
export function panelEnv(dataDir: string, port: number, extra: Record<string, string> = {}) {
  return {
    PATH: process.env.PATH ?? '',
    DATA_DIR: dataDir,
    PORT: String(port),
    HOST: '127.0.0.1',
    PANEL_URL: `http://127.0.0.1:${port}`,
    ADMIN_EMAIL: ADMIN.email,
    ADMIN_PASSWORD: ADMIN.password,
    LOG_LEVEL: 'warn',
    PANEL_LOGIN_RATE_PER_MIN: '1000',
    PANEL_AGENT_PING_MS: '1000',
    ...extra,
  };
}

/** `ctrl-alt-play panel` as a child process; resolves once /api/health answers. */
export async function spawnPanel(env: Record<string, string>): Promise<Proc> {
  const p = new Proc(process.execPath, [CLI, 'panel'], env);
  const url = `http://${env.HOST === '0.0.0.0' ? '127.0.0.1' : env.HOST}:${env.PORT}`;
  await until(async () => {
    if (!p.alive) throw new Error(`panel exited: ${p.out}`);
    const r = await fetch(`${url}/api/health`).catch(() => null);
    return r?.status === 200;
  }, 60_000).catch((e) => {
    throw new Error(`${(e as Error).message}; panel output:\n${p.out}`);
  });
  return p;
}

/** The environment of an Agent process for a node. */
export function agentEnv(
  panelUrl: string,
  node: { id: string; agentSecret: string },
  dataDir: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    PANEL_URL: panelUrl,
    NODE_ID: node.id,
    AGENT_SECRET: node.agentSecret,
    AGENT_DATA_DIR: dataDir,
    AGENT_HTTP_PORT: '0',
    AGENT_HTTP_HOST: '127.0.0.1',
    AGENT_SFTP_PORT: '0',
    LOG_LEVEL: 'info',
    ...extra,
  };
}

/** `ctrl-alt-play agent` as a child process, in a network namespace when `netns` is given. */
export function spawnAgent(env: Record<string, string>, opts: { netns?: string } = {}): Proc {
  return opts.netns
    ? new Proc('ip', ['netns', 'exec', opts.netns, process.execPath, CLI, 'agent'], env)
    : new Proc(process.execPath, [CLI, 'agent'], env);
}

/** A temp dir; `rm()` removes it. */
export function tempDir(prefix: string): { dir: string; rm: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, rm: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A dockerd of the test's own (own data root, exec root, pidfile and unix socket; its own bridge
 * (never --bridge=none: that deletes docker0), no iptables; --live-restore so its containers outlive its restart) with the given local images
 * loaded from the shared Engine (`docker save | docker load`, read-only for the shared one).
 */
export async function privateDockerd(tag: string, images: string[]) {
  const base = mkdtempSync(`/tmp/${tag}-`);
  const sock = path.join(base, 'd.sock');
  // A bridge of its own: with --bridge=none dockerd DELETES the host's docker0 at start, which
  // breaks every other test on the shared Engine (seen in this wave). A private bridge leaves it.
  const bridge = `capb${process.pid % 100000}`;
  execFileSync('ip', ['link', 'add', bridge, 'type', 'bridge'], { stdio: 'pipe' });
  execFileSync('ip', ['addr', 'add', `10.252.${1 + (process.pid % 250)}.1/24`, 'dev', bridge], {
    stdio: 'pipe',
  });
  execFileSync('ip', ['link', 'set', bridge, 'up'], { stdio: 'pipe' });
  const args = [
    `--data-root=${base}/data`,
    `--exec-root=${base}/x`,
    `--pidfile=${base}/d.pid`,
    `-H=unix://${sock}`,
    `--bridge=${bridge}`,
    '--iptables=false',
    '--ip6tables=false',
    '--ip-forward=false',
    '--ip-masq=false',
    '--live-restore',
    '--userland-proxy=false',
    `--containerd-namespace=${tag}`,
    `--containerd-plugins-namespace=${tag}-p`,
  ];
  let proc: Proc | undefined;
  const docker = new Docker({ socketPath: sock });
  const up = async () => {
    proc = new Proc('dockerd', args, { PATH: process.env.PATH ?? '' });
    await until(async () => {
      if (!proc?.alive) throw new Error(`dockerd exited: ${proc?.out}`);
      return (
        existsSync(sock) &&
        (await docker
          .ping()
          .then(() => true)
          .catch(() => false))
      );
    }, 60_000);
  };
  await up();
  for (const image of images)
    execFileSync('sh', ['-c', `docker save ${image} | docker -H unix://${sock} load -q`], { stdio: 'pipe' });
  return {
    host: `unix://${sock}`,
    docker,
    /** SIGTERM (live-restore keeps the containers), then up again; ms it was down */
    async restart(downMs = 0): Promise<number> {
      const t0 = Date.now();
      await proc?.stop(30_000);
      await sleep(downMs);
      await up();
      return Date.now() - t0;
    },
    async stop(): Promise<void> {
      const list = await docker.listContainers({ all: true }).catch(() => []);
      await Promise.all(
        list.map((c) =>
          docker
            .getContainer(c.Id)
            .remove({ force: true })
            .catch(() => undefined),
        ),
      );
      await proc?.stop(30_000);
      // overlay mounts of a dead daemon would keep rm from working
      execFileSync('sh', ['-c', `grep -o ' ${base}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l`], {
        stdio: 'pipe',
      });
      rmSync(base, { recursive: true, force: true });
      try {
        execFileSync('ip', ['link', 'del', bridge], { stdio: 'pipe' });
      } catch {}
    },
  };
}

/** A PostgreSQL cluster of the test's own (initdb in a temp dir, its own port, run as postgres). */
export async function privatePostgres(tag: string) {
  const pgbin = execFileSync('sh', ['-c', 'ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1'])
    .toString()
    .trim();
  const base = mkdtempSync(path.join(tmpdir(), `${tag}-`));
  execFileSync('chown', ['postgres:postgres', base]);
  const port = await freePort();
  const su = (cmd: string) =>
    execFileSync('su', ['postgres', '-s', '/bin/sh', '-c', cmd], { stdio: 'pipe', timeout: 60_000 });
  su(`${pgbin}/initdb -D ${base}/db -A trust -U postgres >/dev/null`);
  const start = () =>
    su(
      `${pgbin}/pg_ctl -D ${base}/db -l ${base}/log -o '-p ${port} -k ${base} -c listen_addresses=127.0.0.1 -c fsync=off' -w start >/dev/null`,
    );
  const stop = (mode: 'fast' | 'immediate') =>
    su(`${pgbin}/pg_ctl -D ${base}/db -m ${mode} -w stop >/dev/null`);
  start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    /** the cluster's data directory (its postmaster.pid: the bench counts PostgreSQL's CPU) */
    dataDir: `${base}/db`,
    down: () => stop('fast'),
    up: start,
    async close(): Promise<void> {
      try {
        stop('immediate');
      } catch {}
      rmSync(base, { recursive: true, force: true });
    },
  };
}

/** A nats-server of the test's own on a free loopback port. */
export async function privateNats() {
  const port = await freePort();
  let proc: Proc | undefined;
  const up = async () => {
    proc = new Proc('nats-server', ['-a', '127.0.0.1', '-p', String(port)], { PATH: process.env.PATH ?? '' });
    await until(async () => {
      if (!proc?.alive) throw new Error(`nats-server exited: ${proc?.out}`);
      return /Server is ready/.test(proc.out);
    }, 20_000);
  };
  await up();
  return {
    url: `nats://127.0.0.1:${port}`,
    down: () => proc?.stop() ?? Promise.resolve(),
    up,
    stop: () => proc?.stop() ?? Promise.resolve(),
  };
}

/**
 * A network namespace joined to the host by a veth pair: the host side is `hostIp`, the
 * namespace side `nsIp` (a /30 of 10.251.x.0). `cut()` sets the namespace's end down, `heal()` up.
 */
export function netns(tag: string) {
  const n = 1 + (process.pid % 250);
  const name = `${tag}-${process.pid}`;
  const hostIf = `cf${process.pid % 100000}h`;
  const nsIf = `cf${process.pid % 100000}n`;
  const hostIp = `10.251.${n}.1`;
  const nsIp = `10.251.${n}.2`;
  const ip = (...a: string[]) => execFileSync('ip', a, { stdio: 'pipe' });
  const inNs = (...a: string[]) => ip('netns', 'exec', name, 'ip', ...a);
  ip('netns', 'add', name);
  try {
    ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
    ip('link', 'set', nsIf, 'netns', name);
    ip('addr', 'add', `${hostIp}/30`, 'dev', hostIf);
    ip('link', 'set', hostIf, 'up');
    inNs('addr', 'add', `${nsIp}/30`, 'dev', nsIf);
    inNs('link', 'set', nsIf, 'up');
    inNs('link', 'set', 'lo', 'up');
  } catch (e) {
    try {
      ip('link', 'del', hostIf);
    } catch {}
    ip('netns', 'del', name);
    throw e;
  }
  return {
    name,
    hostIp,
    nsIp,
    cut: () => inNs('link', 'set', nsIf, 'down'),
    heal: () => inNs('link', 'set', nsIf, 'up'),
    remove(): void {
      try {
        ip('link', 'del', hostIf);
      } catch {}
      try {
        ip('netns', 'del', name);
      } catch {}
    },
  };
}

/**
 * A /ws/client subscriber of one server that counts its `tick:<n>` lines: the highest seen,
 * how many distinct, duplicates, and the lines reported dropped (`console_dropped`). Reconnects
 * by itself when its socket closes (a Panel restart), and subscribes again.
 */
export class TickWatcher {
  ws: WebSocket | undefined;
  ticks = new Set<number>();
  /** lines that came twice, not flagged as sent again (a real duplicate) */
  duplicates = 0;
  /**
   * lines the Panel flagged `resent` (sent again after a lost link, perhaps shown already) and
   * numbered at or below the last line seen: dropped as the web console does (ConsoleStore)
   */
  resent = 0;
  /** the number of the last numbered line seen (LinkSeq), across resubscribes */
  #shown: { epoch: string; seq: number } | undefined;
  /** ticks that came after a higher one (lines out of order) */
  outOfOrder = 0;
  dropped = 0;
  lastTickAt = 0;
  firstTick = 0;
  statuses: string[] = [];
  /** the last console lines that are not ticks */
  lines: string[] = [];
  /** what happened to the socket, timed (open, subscribed with its history, close): printed when lines went missing */
  trail: string[] = [];
  /** tick → when it arrived */
  arrived = new Map<number, number>();
  #closed = false;
  #max = 0;
  readonly url: string;
  readonly cookie: string;
  readonly serverId: string;
  constructor(url: string, cookie: string, serverId: string) {
    this.url = url;
    this.cookie = cookie;
    this.serverId = serverId;
  }
  async open(): Promise<void> {
    const ws = new WebSocket(`${this.url.replace(/^http/, 'ws')}/ws/client`, {
      headers: { cookie: this.cookie },
    });
    this.ws = ws;
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString()) as Json;
      if (m.serverId !== undefined && m.serverId !== this.serverId) return;
      if (m.type === 'subscribed') {
        const history = (m.history as string[] | undefined) ?? [];
        this.#note(m.historyEpoch, m.historySeq, history.length);
        const h = history.map((l) => /^tick:(\d+)$/.exec(l)?.[1]).filter(Boolean);
        this.trail.push(
          `${Date.now()} subscribed (history ticks ${h[0] ?? '-'}..${h.at(-1) ?? '-'}, seen up to ${this.#max})`,
        );
        // subscribed again (a moved or reopened socket): the history is what the browser shows
        // in place of its console (store.reset), so a line there that never came live was
        // delivered, once; a line that comes live after it did is then a line twice. The first
        // subscribe's history is before the account starts (the first live tick).
        if (this.#max === 0) for (const l of history) this.#before.add(l);
        else {
          const before = this.viaHistory;
          const taken = this.#takeHistory(history);
          this.trail.push(
            `${Date.now()} taken from the history: ${this.viaHistory - before} (${taken.join(', ')})`,
          );
        }
      }
      if (m.type === 'console') {
        let lines = m.lines as string[];
        // as the web console: flagged re-sends already seen (by number) are dropped, counted apart
        const sh = this.#shown;
        if (m.resent === true && sh && m.epoch === sh.epoch && typeof m.seq === 'number') {
          const first = m.seq - lines.length + 1;
          const skip = Math.max(0, Math.min(lines.length, sh.seq - first + 1));
          if (skip > 0) {
            this.resent += skip;
            this.trail.push(`${Date.now()} resent ${skip} dropped (seen up to ${sh.seq})`);
            lines = lines.slice(skip);
          }
        }
        this.#note(m.epoch, m.seq, (m.lines as string[]).length);
        for (const l of lines) {
          const hit = /^tick:(\d+)$/.exec(l);
          if (!hit) {
            // other lines (a real game's), the last 500
            this.lines.push(l);
            if (this.lines.length > 500) this.lines.shift();
            continue;
          }
          const n = Number(hit[1]);
          if (n < this.#max) this.outOfOrder += 1;
          if (n > this.#max) this.#max = n;
          if (this.ticks.has(n)) this.duplicates += 1;
          else {
            this.ticks.add(n);
            this.arrived.set(n, Date.now());
          }
          if (!this.firstTick) this.firstTick = n;
          this.lastTickAt = Date.now();
        }
      } else if (m.type === 'console_dropped') {
        this.dropped += m.count as number;
        this.trail.push(`${Date.now()} console_dropped ${m.count} (${m.reason})`);
      } else if (m.type === 'status') this.statuses.push(m.status as string);
    });
    ws.on('close', (code, reason) => {
      this.trail.push(`${Date.now()} closed ${code} ${reason.toString()} (seen up to ${this.#max})`);
      if (!this.#closed) setTimeout(() => void this.open().catch(() => undefined), 200);
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => {
        this.trail.push(`${Date.now()} open`);
        resolve();
      });
      ws.once('error', reject);
    });
    ws.send(JSON.stringify({ type: 'subscribe', serverId: this.serverId }));
  }
  #note(epoch: unknown, seq: unknown, n: number): void {
    if (typeof epoch !== 'string' || typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < n) return;
    const sh = this.#shown;
    if (!sh || sh.epoch !== epoch || sh.seq < seq) this.#shown = { epoch, seq };
  }
  /** ticks between the first and the highest seen that never arrived */
  get missing(): number {
    if (this.ticks.size === 0) return 0;
    const max = Math.max(...this.ticks);
    return max - this.firstTick + 1 - this.ticks.size;
  }
  get max(): number {
    return this.#max;
  }
  /** lines delivered only in a `subscribed` history (after a resubscribe), not live */
  viaHistory = 0;
  /** the non-tick lines a resubscribe's history delivered */
  historyLines = new Set<string>();
  /** the first subscribe's history (before the account starts: not lines a resubscribe delivers) */
  #before = new Set<string>();
  #takeHistory(history: readonly string[]): string[] {
    const taken: string[] = [];
    for (const l of history) {
      const hit = /^tick:(\d+)$/.exec(l);
      if (!hit) {
        if (!this.#before.has(l) && !this.lines.includes(l) && !this.historyLines.has(l)) {
          this.historyLines.add(l);
          this.viaHistory += 1;
          taken.push(l);
        }
        continue;
      }
      const n = Number(hit[1]);
      if (n < this.firstTick || this.ticks.has(n)) continue;
      this.ticks.add(n);
      this.arrived.set(n, Date.now());
      this.viaHistory += 1;
      taken.push(l);
      if (n > this.#max) this.#max = n;
      this.lastTickAt = Date.now();
    }
    return taken;
  }
  /** the ticks between the first and the highest seen that never arrived, each with the arrival times of its neighbours */
  gaps(): string[] {
    const out: string[] = [];
    for (let n = this.firstTick; n <= this.#max; n++)
      if (!this.ticks.has(n))
        out.push(
          `tick:${n} (tick:${n - 1} at ${this.arrived.get(n - 1) ?? '-'}, tick:${n + 1} at ${this.arrived.get(n + 1) ?? '-'})`,
        );
    return out;
  }
  /** ms until a tick arrives that was not there at the call */
  async nextTick(timeoutMs: number): Promise<number> {
    const since = Date.now();
    return timeUntil(() => this.lastTickAt > since, timeoutMs);
  }
  close(): void {
    this.#closed = true;
    this.ws?.close();
  }
}

/**
 * The console's account of one watched game: every line it printed between the first tick seen
 * and the last is either delivered or reported dropped (`console_dropped`), exactly. The lines
 * printed are the ticks and, for each accepted command, its TTY echo and the game's `got:`
 * answer; `unaccounted` is printed − delivered − reported (0 when nothing is lost uncounted; less
 * than 0 when more was reported than lost).
 */
export function lineAccount(watcher: TickWatcher, ledger: CommandLedger) {
  const accepted = ledger.sent.filter((c) => c.status === 202).map((c) => c.cmd);
  const seen = new Set([...watcher.lines, ...watcher.historyLines].map((l) => l.trim()));
  let othersPrinted = 0;
  let othersSeen = 0;
  const missing = watcher.gaps();
  for (const cmd of accepted)
    for (const line of [cmd, `got:${cmd}`]) {
      othersPrinted++;
      if (seen.has(line)) othersSeen++;
      else missing.push(line);
    }
  const ticksPrinted = watcher.max ? watcher.max - watcher.firstTick + 1 : 0;
  const printed = ticksPrinted + othersPrinted;
  const delivered = watcher.ticks.size + othersSeen;
  return {
    printed,
    delivered,
    dropped: watcher.dropped,
    unaccounted: printed - delivered - watcher.dropped,
    outOfOrder: watcher.outOfOrder,
    duplicates: watcher.duplicates,
    /** of the delivered, those only in a resubscribe's history (not live) */
    inHistory: watcher.viaHistory,
    /** which lines never came (ticks with their neighbours' arrival times, commands' lines) */
    missing,
  };
}

/**
 * Commands through POST /api/servers/:id/command, each unique, checked against the game's
 * cmds.log afterwards: every accepted one ran once, none ran twice, a refused one never ran.
 */
export class CommandLedger {
  sent: { cmd: string; status: number; code?: string; at: number; ms: number }[] = [];
  /** names are taken when a command is sent (sends may overlap: each name once) */
  #n = 0;
  readonly client: Client;
  readonly serverId: string;
  readonly prefix: string;
  constructor(client: Client, serverId: string, prefix: string) {
    this.client = client;
    this.serverId = serverId;
    this.prefix = prefix;
  }
  async send(): Promise<{ status: number; code?: string }> {
    const cmd = `${this.prefix}-${++this.#n}`;
    const at = Date.now();
    const r = await this.client.api(
      'POST',
      `/api/servers/${this.serverId}/command`,
      { command: cmd },
      15_000,
    );
    const e = {
      cmd,
      status: r.status,
      ...(typeof r.body?.code === 'string' ? { code: r.body.code as string } : {}),
      at,
      ms: r.ms,
    };
    this.sent.push(e);
    return e;
  }
  /** the tally against the log the game wrote */
  check(logFile: string) {
    const ran = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').filter(Boolean) : [];
    const times = new Map<string, number>();
    for (const c of ran) times.set(c, (times.get(c) ?? 0) + 1);
    const accepted = this.sent.filter((s) => s.status === 202);
    const refused = this.sent.filter((s) => s.status !== 202);
    return {
      sent: this.sent.length,
      accepted: accepted.length,
      refused: refused.length,
      refusedCodes: [...new Set(refused.map((s) => s.code ?? String(s.status)))].join(','),
      lost: accepted.filter((s) => !times.has(s.cmd)).length,
      twice: [...times.values()].filter((n) => n > 1).length,
      // refused for sure (not a timeout, where the Agent may have had it) and yet ran
      refusedButRan: refused.filter((s) => s.status !== 504 && s.status !== 0 && times.has(s.cmd)).length,
    };
  }
}

/** Removes every container of a node (a case's clean-up; errors ignored). */
export async function removeNodeContainers(docker: Docker, nodeId: string): Promise<void> {
  if (!nodeId) return;
  const list = await docker
    .listContainers({ all: true, filters: { label: [`ctrl-alt-play.node=${nodeId}`] } })
    .catch(() => []);
  await Promise.all(
    list.map((c) =>
      docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined),
    ),
  );
}

/**
 * The ticks the watched game itself printed between two instants (ms since the epoch), read from
 * the Engine's own log of its container (the node's one container; `docker logs --timestamps`,
 * same host clock): the ground truth a subscriber's ticks are checked against. TICK_STARTUP is a
 * shell loop (`echo; sleep 0.1`), so about 10 a second, fewer under load (each `sleep` forks).
 */
export async function printedTicks(
  docker: Docker,
  nodeId: string,
  fromMs: number,
  toMs: number,
): Promise<number[]> {
  const list = await docker.listContainers({
    all: true,
    filters: { label: [`ctrl-alt-play.node=${nodeId}`] },
  });
  if (list.length !== 1)
    throw new Error(`printedTicks: ${list.length} containers of node ${nodeId}, expected 1`);
  const id = (list[0] as { Id: string }).Id;
  // the game runs with a TTY: the log is the raw stream, no multiplexing header
  const raw = (await docker.getContainer(id).logs({
    stdout: true,
    stderr: true,
    timestamps: true,
    follow: false,
    since: Math.floor(fromMs / 1000) - 1,
  })) as unknown as Buffer;
  const out: number[] = [];
  for (const line of raw.toString('utf8').split('\n')) {
    const hit = /^(\S+) tick:(\d+)\r?$/.exec(line);
    if (!hit) continue;
    const at = Date.parse(hit[1] as string);
    if (Number.isFinite(at) && at >= fromMs && at < toMs) out.push(Number(hit[2]));
  }
  return out;
}

/** Lines of a file in a server's folder (0 when it is not there). */
export function fileLines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

/** Id and start time of each server's container: compare before and after a fault. */
export async function containerStarts(docker: Docker, serverIds: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const id of serverIds) {
    const list = await docker.listContainers({ filters: { label: [`ctrl-alt-play.server=${id}`] } });
    for (const c of list) {
      const s = await docker.getContainer(c.Id).inspect();
      out.set(id, `${c.Id}@${s.State.StartedAt}@${s.State.Running}`);
    }
  }
  return out;
}

/** How many servers' containers are not the same running container as before. */
export function stoppedCount(before: Map<string, string>, after: Map<string, string>): number {
  let n = 0;
  for (const [id, v] of before) if (after.get(id) !== v) n++;
  return n;
}

/**
 * The pino lines of a process that are not request logs, from now on, kept whole (its `out`
 * keeps only the last 64 KiB, which request logs at `info` fill in seconds): `times(msg)` are
 * the `time`s of the lines with that msg, `tail()` the last lines.
 */
export function logLines(proc: Proc) {
  const lines: string[] = [];
  let rest = '';
  const take = (d: Buffer) => {
    const parts = (rest + d.toString()).split('\n');
    rest = parts.pop() ?? '';
    for (const l of parts)
      if (!l.includes('"msg":"incoming request"') && !l.includes('"msg":"request completed"')) lines.push(l);
  };
  proc.child.stdout?.on('data', take);
  proc.child.stderr?.on('data', take);
  return {
    lines,
    times(msg: string): number[] {
      const out: number[] = [];
      for (const l of lines) {
        if (!l.includes(`"msg":"${msg}"`)) continue;
        const m = /"time":(\d+)/.exec(l);
        if (m) out.push(Number(m[1]));
      }
      return out;
    },
    tail(n = 40): string {
      return lines.slice(-n).join('\n');
    },
  };
}

/** The `time` of the last pino line with that msg in a process's output. */
export function logTime(out: string, msg: string): number | undefined {
  let t: number | undefined;
  for (const line of out.split('\n')) {
    if (!line.includes(`"msg":"${msg}"`)) continue;
    const m = /"time":(\d+)/.exec(line);
    if (m) t = Number(m[1]);
  }
  return t;
}

/**
 * A Panel process and an Agent process for one node, on the given Docker Engine: what most cases
 * stand on. `restartAgent()`/`restartPanel()` start them again on the same data (the Panel on the
 * same port); `stop()` removes the node's containers and every temp dir.
 */
export async function faultStack(
  tag: string,
  opts: {
    panelEnv?: Record<string, string>;
    agentEnv?: Record<string, string>;
    docker?: Docker;
    /** the Agent's PANEL_URL host (the Panel listens on 0.0.0.0 then) */
    panelHost?: string;
    netns?: string;
  } = {},
) {
  const docker = opts.docker ?? new Docker({ socketPath: '/var/run/docker.sock' });
  const panelDir = tempDir(`${tag}-panel-`);
  const agentDir = tempDir(`${tag}-agent-`);
  const port = await freePort();
  const env = panelEnv(panelDir.dir, port, {
    ...(opts.panelHost ? { HOST: '0.0.0.0', PANEL_URL: `http://${opts.panelHost}:${port}` } : {}),
    ...opts.panelEnv,
  });
  let panel = await spawnPanel(env);
  const client = new Client(`http://127.0.0.1:${port}`);
  let agent: Proc | undefined;
  let nodeId = '';
  const stack = {
    client,
    port,
    agentDir: agentDir.dir,
    docker,
    get panel() {
      return panel;
    },
    get agent() {
      return agent;
    },
    nodeId: '',
    node: { id: '', agentSecret: '' },
    /** a server's folder on the host (where the game writes cmds.log) */
    serverDir: (serverId: string) => path.join(agentDir.dir, 'servers', serverId),
    /**
     * starts the Agent (again): ms until the Panel lists the node online, in total and from the
     * Agent's `agent started` log line (its process start on a loaded machine is most of the total)
     */
    async startAgent(timeoutMs = 60_000): Promise<{ totalMs: number; linkMs: number }> {
      const t0 = Date.now();
      agent = spawnAgent(
        agentEnv(`http://${opts.panelHost ?? '127.0.0.1'}:${port}`, stack.node, agentDir.dir, {
          AGENT_CONTAINER_PREFIX: `${tag}-`,
          ...(opts.panelHost ? { AGENT_ALLOW_INSECURE: '1' } : {}),
          ...opts.agentEnv,
        }),
        opts.netns ? { netns: opts.netns } : {},
      );
      const a = agent;
      await until(async () => {
        if (!a.alive) throw new Error(`agent exited: ${a.out}`);
        return client.online(nodeId);
      }, timeoutMs).catch((e) => {
        throw new Error(`${(e as Error).message}; agent output:\n${a.out.slice(-4000)}`);
      });
      const now = Date.now();
      return { totalMs: now - t0, linkMs: now - (logTime(a.out, 'agent started') ?? t0) };
    },
    /** the Panel started again on the same data and port; ms until /api/health answers */
    async startPanel(): Promise<number> {
      const t0 = Date.now();
      panel = await spawnPanel(env);
      await client.login();
      return Date.now() - t0;
    },
    async stop(): Promise<void> {
      await agent?.stop().catch(() => undefined);
      await removeNodeContainers(docker, nodeId);
      await panel.stop().catch(() => undefined);
      agentDir.rm();
      panelDir.rm();
    },
  };
  try {
    await client.login();
    stack.node = await client.node(`${tag}-node`);
    nodeId = stack.node.id;
    stack.nodeId = nodeId;
    await stack.startAgent();
  } catch (e) {
    await stack.stop();
    throw e;
  }
  return stack;
}

/**
 * A TCP forwarder of the test's own on a free loopback port (a load balancer in front of
 * replicas, or one replica's road to PostgreSQL). `retarget` sends new connections elsewhere;
 * `cut` turns it into a black hole (existing connections stay open and their bytes are dropped,
 * new ones are accepted and never forwarded, and a side that closes is not told to the other: a
 * partition, not a refusal); `heal` forwards again (new connections only; what was held through
 * the cut is closed); `reset` closes every connection it holds.
 */
export async function tcpProxy(targetPort: number) {
  const port = await freePort();
  let target = targetPort;
  let cut = false;
  const held = new Set<Socket>();
  const server = createServer((c) => {
    held.add(c);
    c.on('close', () => held.delete(c));
    c.on('error', () => c.destroy());
    if (cut) return; // accepted, never answered
    const u = netConnect(target, '127.0.0.1');
    held.add(u);
    // through a cut, an end on one side never reaches the other (a FIN lost in the partition):
    // the far side keeps its end of the connection (PostgreSQL its session) until `heal`
    u.on('close', () => {
      held.delete(u);
      if (!cut) c.destroy();
    });
    c.on('close', () => {
      if (!cut) u.destroy();
    });
    u.on('error', () => u.destroy());
    c.on('data', (d) => {
      if (!cut) u.write(d);
    });
    u.on('data', (d) => {
      if (!cut) c.write(d);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    retarget(p: number): void {
      target = p;
    },
    cut(): void {
      cut = true;
    },
    /** forwards again; what was held through the cut is closed (its byte stream lost bytes) */
    heal(): void {
      for (const sock of held) sock.destroy();
      cut = false;
    },
    reset(): void {
      for (const sock of held) sock.destroy();
    },
    async close(): Promise<void> {
      for (const sock of held) sock.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A load balancer of the test's own in front of replicas (a `tcpProxy`): new connections go to
 * the first replica whose `/readyz` answers 200, checked every `checkMs`; it stays on the one it
 * has while that one is ready. `switches` lists when it moved (ms since the epoch, to which port).
 */
export async function balancer(ports: number[], checkMs = 100) {
  const first = ports[0];
  if (first === undefined) throw new Error('no replica to balance');
  const proxy = await tcpProxy(first);
  let current = first;
  let stopped = false;
  const switches: { port: number; at: number }[] = [];
  const ready = async (p: number) => {
    try {
      const r = await fetch(`http://127.0.0.1:${p}/readyz`, { signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      return r.status === 200;
    } catch {
      return false;
    }
  };
  const loop = (async () => {
    while (!stopped) {
      if (!(await ready(current)))
        for (const p of ports)
          if (p !== current && (await ready(p))) {
            current = p;
            proxy.retarget(p);
            switches.push({ port: p, at: Date.now() });
            break;
          }
      await sleep(checkMs);
    }
  })();
  return {
    port: proxy.port,
    switches,
    get target() {
      return current;
    },
    async close(): Promise<void> {
      stopped = true;
      await loop;
      await proxy.close();
    },
  };
}

/** The process id in a leader session's `application_name` (`cap-<pid>-<id>:leader`, app.ts). */
function leaderPid(app: string): number | null {
  const m = /^cap-(\d+)-[0-9a-f]+:leader$/.exec(app);
  return m ? Number(m[1]) : null;
}

/** The replica (its process id) whose leader session holds the advisory lock of a periodic job, if any. */
export async function leaderOf(db: PgQuery, job: string, prefix = 'cap'): Promise<number | null> {
  const r = await db.query(
    `SELECT a.application_name AS app FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
        AND l.classid::text::bigint = ((hashtextextended($1, 0) >> 32) & 4294967295)
        AND l.objid::text::bigint = (hashtextextended($1, 0) & 4294967295)`,
    [`${prefix}:${job}`],
  );
  const app = r.rows[0]?.['app'];
  return typeof app === 'string' ? leaderPid(app) : null;
}

/** How many job locks each replica's leader session holds (process id → count). */
export async function locksHeld(db: PgQuery): Promise<Map<number, number>> {
  const r = await db.query(
    `SELECT a.application_name AS app, count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted GROUP BY a.application_name`,
  );
  const out = new Map<number, number>();
  for (const row of r.rows) {
    const pid = leaderPid(String(row['app']));
    if (pid !== null) out.set(pid, Number(row['n']));
  }
  return out;
}

/** What the lock queries need of a PostgreSQL client (pg's Client). */
export interface PgQuery {
  query(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
}

/** The 1-minute load average, as the figures print it. */
export async function loadAvg(): Promise<string> {
  return (await import('node:os')).loadavg()[0]?.toFixed(1) ?? '?';
}

/** `/readyz` of one replica, straight (not through a balancer): its status, error code and registry id. */
export async function readiness(
  url: string,
  timeoutMs = 2000,
): Promise<{ status: number; code?: string; replicaId?: string }> {
  try {
    const r = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(timeoutMs) });
    const body = (await r.json().catch(() => ({}))) as { code?: string; replicaId?: string };
    return {
      status: r.status,
      ...(body.code ? { code: body.code } : {}),
      ...(body.replicaId ? { replicaId: body.replicaId } : {}),
    };
  } catch {
    return { status: 0 };
  }
}

/**
 * What the two-replica cases stand on (issue 15): a private PostgreSQL (`road`: with a
 * `tcpProxy` in front of it to cut, `roadUrl` the database through it) and a private NATS
 * (`natsRoad`: likewise, `natsRoadUrl` the broker through it), a
 * query client on the database (`db`), and, as the case asks, a load balancer over the replicas'
 * ports (`balance`), the replicas (`panel`: spawned with the shared environment, the database
 * and NATS, and stopped at `stop`) and an Agent (`agent`, its containers removed at `stop`).
 * `stop` undoes all of it, whatever was made.
 */
export async function replicaStack(tag: string, opts: { road?: boolean; natsRoad?: boolean } = {}) {
  const docker = new Docker({ socketPath: '/var/run/docker.sock' });
  const made: { stop(): Promise<void> }[] = [];
  const panels: Proc[] = [];
  const dirs: { rm(): void }[] = [];
  const agents: { proc: Proc; nodeId: string }[] = [];
  let lb: Awaited<ReturnType<typeof balancer>> | undefined;
  let road: Awaited<ReturnType<typeof tcpProxy>> | undefined;
  let natsRoad: Awaited<ReturnType<typeof tcpProxy>> | undefined;
  let db: import('pg').Client | undefined;
  const stop = async (): Promise<void> => {
    road?.heal();
    natsRoad?.heal();
    for (const a of agents) {
      await a.proc.stop().catch(() => undefined);
      await removeNodeContainers(docker, a.nodeId);
    }
    for (const p of panels) await p.stop().catch(() => undefined);
    await lb?.close();
    await road?.close();
    await natsRoad?.close();
    await db?.end().catch(() => undefined);
    for (const m of made.reverse()) await m.stop().catch(() => undefined);
    for (const d of dirs) d.rm();
  };
  try {
    const pgc = await privatePostgres(tag);
    made.push({ stop: () => pgc.close() });
    const nats = await privateNats();
    made.push(nats);
    road = opts.road ? await tcpProxy(Number(new URL(pgc.url).port)) : undefined;
    const roadUrl = new URL(pgc.url);
    if (road) roadUrl.port = String(road.port);
    natsRoad = opts.natsRoad ? await tcpProxy(Number(new URL(nats.url).port)) : undefined;
    const nr = natsRoad;
    const { default: pg } = await import('pg');
    db = new pg.Client({ connectionString: pgc.url });
    await db.connect();
    const q = db;
    const r = road;
    const dir = (suffix: string) => {
      const d = tempDir(`${tag}-${suffix}`);
      dirs.push(d);
      return d.dir;
    };
    const agentDir = dir('agent-');
    return {
      docker,
      pg: pgc,
      nats,
      /** a query client on the database (straight, never through the road) */
      db: q,
      /** the road to PostgreSQL to cut (with `road: true`) */
      get road() {
        if (!r) throw new Error('replicaStack: no road (road: true)');
        return r;
      },
      /** the database's URL through the road (straight without one) */
      roadUrl: roadUrl.toString(),
      /** the road to the broker to cut (with `natsRoad: true`) */
      get natsRoad() {
        if (!nr) throw new Error('replicaStack: no NATS road (natsRoad: true)');
        return nr;
      },
      /** the broker's URL through its road (straight without one) */
      natsRoadUrl: nr ? `nats://127.0.0.1:${nr.port}` : nats.url,
      /** the Agent's data folder (its servers' folders: `servers/<id>`) */
      agentDir,
      /** a data folder of the test's (removed at `stop`): replicas may share one or have their own */
      dir,
      /** two free ports for replicas A and B, their URLs, and a load balancer over them (closed at `stop`) */
      async balanced() {
        const [aPort, bPort] = [await freePort(), await freePort()];
        lb = await balancer([aPort, bPort]);
        return {
          aPort,
          bPort,
          aUrl: `http://127.0.0.1:${aPort}`,
          bUrl: `http://127.0.0.1:${bPort}`,
          lb,
          lbUrl: `http://127.0.0.1:${lb.port}`,
        };
      },
      /**
       * A replica on `port` with data in `dataDir`: PANEL_NATS_URL and DATABASE_URL (straight
       * unless `env` says) set, then `env`; its log lines (`logLines`) with it.
       */
      async panel(dataDir: string, port: number, env: Record<string, string> = {}) {
        const p = await spawnPanel(
          panelEnv(dataDir, port, { PANEL_NATS_URL: nats.url, DATABASE_URL: pgc.url, ...env }),
        );
        panels.push(p);
        return { proc: p, url: `http://127.0.0.1:${port}`, log: logLines(p) };
      },
      /**
       * The Agent of `node`, linked to `panelUrl`, its containers named `<tag>-…` (removed at
       * `stop`), its data in `agentDir`; a second Agent gets a `name`: its own folder and prefix.
       */
      agent(panelUrl: string, node: { id: string; agentSecret: string }, name?: string) {
        const proc = spawnAgent(
          agentEnv(panelUrl, node, name ? dir(`agent-${name}-`) : agentDir, {
            AGENT_CONTAINER_PREFIX: name ? `${tag}-${name}-` : `${tag}-`,
          }),
        );
        agents.push({ proc, nodeId: node.id });
        return proc;
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** An hourly schedule on the server that sends `flt-scheduled` to its console (201 checked): its id. */
export async function hourlySchedule(client: Client, serverId: string, name: string): Promise<string> {
  const created = await client.api('POST', `/api/servers/${serverId}/schedules`, {
    name,
    intervalSeconds: 3600,
    tasks: [{ action: 'command', command: 'flt-scheduled' }],
  });
  if (created.status !== 201)
    throw new Error(`schedule not created: ${created.status} ${JSON.stringify(created.body)}`);
  return created.body.id as string;
}
