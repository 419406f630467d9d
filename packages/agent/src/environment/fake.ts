/**
 * An in-memory Environment for unit tests of the server logic (power, console, the locks): no
 * runtime, instances that "run" until the test ends them (`exit`) or a signal does, a console
 * the test writes the game's output into (`print`; an installer's: its `output`) and reads the
 * commands sent to it from (`stdin`), and a hold on starts (`holdStart`) to catch an action in
 * the middle.
 */
import { Duplex, PassThrough, type Readable } from 'node:stream';
import type { EggConfig, Signal } from '@cap/protocol';
import type { Environment, InstanceState, NodeInstance, PortBinding, UsageReader } from './environment.ts';

export interface FakeInstance {
  id: string;
  serverId: string;
  kind: 'server' | 'staged' | 'installer';
  egg: EggConfig;
  state: InstanceState;
  /** lines written to its console (commands, stop commands) */
  stdin: string[];
  /** signals it received, in order */
  signals: string[];
  consoles: Duplex[];
  /** what `logs` gives (an installer's output): the test writes into it and ends it */
  output: PassThrough;
  waiters: ((code: number) => void)[];
}

export class FakeEnvironment implements Environment {
  readonly instances = new Map<string, FakeInstance>();
  /** what each signal does to a running instance: an exit code, or null (ignored) */
  onSignal: (signal: string, instance: FakeInstance) => number | null = (s) => (s === 'SIGKILL' ? 137 : 0);
  #next = 0;
  #held = new Map<string, { reached: () => void; released: Promise<void> }>();

  #byName(serverId: string, kind: FakeInstance['kind']): FakeInstance | undefined {
    for (const i of this.instances.values()) if (i.serverId === serverId && i.kind === kind) return i;
    return undefined;
  }

  /** The server's current instance. */
  of(serverId: string): FakeInstance | undefined {
    return this.#byName(serverId, 'server');
  }

  /** The next start of `serverId`'s instance waits until `release()`; `reached` resolves when it does. */
  holdStart(serverId: string): { reached: Promise<void>; release: () => void } {
    let reached!: () => void;
    let release!: () => void;
    const r = new Promise<void>((res) => {
      reached = res;
    });
    const released = new Promise<void>((res) => {
      release = res;
    });
    this.#held.set(serverId, { reached, released });
    return { reached: r, release };
  }

  /** The game's output. */
  print(serverId: string, text: string): void {
    for (const c of this.of(serverId)?.consoles ?? []) if (!c.destroyed) c.push(text);
  }

  /** The process ends with `code` (a crash when nobody asked for it). */
  exit(id: string, code: number): void {
    const i = this.instances.get(id);
    if (!i?.state.running) return;
    i.state = { ...i.state, running: false, pid: 0, exitCode: code };
    for (const w of i.waiters.splice(0)) w(code);
  }

  async version(): Promise<string> {
    return 'fake';
  }

  async listServers(): Promise<NodeInstance[]> {
    return [...this.instances.values()]
      .filter((i) => i.kind !== 'installer')
      .map((i) => ({
        id: i.id,
        serverId: i.serverId,
        running: i.state.running,
        staged: i.kind === 'staged',
      }));
  }

  async listInstallers(): Promise<NodeInstance[]> {
    return [...this.instances.values()]
      .filter((i) => i.kind === 'installer')
      .map((i) => ({ id: i.id, serverId: i.serverId, running: i.state.running, staged: false }));
  }

  #make(serverId: string, egg: EggConfig, kind: FakeInstance['kind']): string {
    const id = `fake${++this.#next}`;
    this.instances.set(id, {
      id,
      serverId,
      kind,
      egg,
      state: { id, running: false, pid: 0, startedAt: '', exitCode: 0, oomKilled: false },
      stdin: [],
      signals: [],
      consoles: [],
      output: new PassThrough(),
      waiters: [],
    });
    return id;
  }

  async create(serverId: string, egg: EggConfig, _dir: string, opts: { staged?: boolean } = {}) {
    return this.#make(serverId, egg, opts.staged ? 'staged' : 'server');
  }

  async promote(_serverId: string, id: string): Promise<void> {
    const i = this.instances.get(id);
    if (i) i.kind = 'server';
  }

  async removeStaged(serverId: string): Promise<void> {
    const i = this.#byName(serverId, 'staged');
    if (i) await this.remove(i.id);
  }

  async find(serverId: string): Promise<InstanceState | null> {
    return this.of(serverId)?.state ?? null;
  }

  async inspect(id: string): Promise<InstanceState | null> {
    return this.instances.get(id)?.state ?? null;
  }

  async start(id: string): Promise<void> {
    const i = this.instances.get(id);
    if (!i) throw new Error(`no instance ${id}`);
    const held = this.#held.get(i.serverId);
    if (held) {
      this.#held.delete(i.serverId);
      held.reached();
      await held.released;
    }
    if (i.state.running) return;
    i.state = { ...i.state, running: true, pid: 1000 + this.#next, startedAt: new Date().toISOString() };
  }

  async signal(id: string, signal: Signal | 'SIGKILL'): Promise<void> {
    const i = this.instances.get(id);
    if (!i?.state.running) return;
    i.signals.push(signal);
    const code = this.onSignal(signal, i);
    if (code !== null) this.exit(id, code);
  }

  wait(id: string, abort?: AbortSignal): Promise<number> {
    const i = this.instances.get(id);
    if (!i) return Promise.reject(new Error(`no instance ${id}`));
    if (!i.state.running) return Promise.resolve(i.state.exitCode);
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(new Error('aborted'));
      abort?.addEventListener('abort', onAbort, { once: true });
      i.waiters.push((code) => {
        abort?.removeEventListener('abort', onAbort);
        resolve(code);
      });
    });
  }

  async attach(id: string): Promise<Duplex> {
    const i = this.instances.get(id);
    if (!i) throw new Error(`no instance ${id}`);
    const stream = new Duplex({
      read() {},
      write(chunk: Buffer | string, _enc, cb) {
        i.stdin.push(chunk.toString());
        cb();
      },
    });
    i.consoles.push(stream);
    return stream;
  }

  async remove(id: string): Promise<void> {
    this.exit(id, 137);
    this.instances.delete(id);
  }

  async removeServer(serverId: string, id: string | null): Promise<void> {
    const i = id ? this.instances.get(id) : this.of(serverId);
    if (i) await this.remove(i.id);
  }

  async usage(): Promise<UsageReader> {
    return {
      sample: async () => ({ cpuNs: 0, memoryUsed: 0, memoryLimit: 1024 ** 3, rx: 0, tx: 0 }),
      close: () => undefined,
    };
  }

  async createInstaller(serverId: string, egg: EggConfig): Promise<string> {
    return this.#make(serverId, egg, 'installer');
  }

  /** The server's installer instance. */
  installerOf(serverId: string): FakeInstance | undefined {
    return this.#byName(serverId, 'installer');
  }

  async logs(id: string): Promise<Readable> {
    const i = this.instances.get(id);
    if (!i) throw new Error(`no instance ${id}`);
    return i.output;
  }

  async hostGateway(): Promise<string | undefined> {
    return undefined;
  }

  async takenPort(): Promise<PortBinding | null> {
    return null;
  }
}
