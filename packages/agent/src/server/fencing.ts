/**
 * Fencing (issue 16 failover): the servers of this node the Panel failed over to another node.
 * The Panel sends the whole list (`fence_servers`) on every connect, before anything else; it is
 * kept in `<dataDir>/fenced.json` so an Agent restart without the Panel still knows it. A fenced
 * server is never started here: no power action, no crash restart, no start after the Agent's
 * downtime. Its container goes; its files are moved to `<dataDir>/fenced/<server>-<ts>` (with its
 * definition beside them as `<server>-<ts>.json`), never deleted.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type FencedServer, FenceServersPayload } from '@cap/protocol';
import type { Logger } from 'pino';

export class FenceStore {
  readonly #file: string;
  readonly dir: string;
  readonly #log: Logger;
  #fenced = new Map<string, FencedServer>();
  #writes: Promise<void> = Promise.resolve();
  /** resolves when the Panel sent its first list after this Agent started */
  readonly listed: Promise<void>;
  #markListed: () => void = () => undefined;

  constructor(dataDir: string, log: Logger) {
    this.#file = path.resolve(dataDir, 'fenced.json');
    this.dir = path.resolve(dataDir, 'fenced');
    this.#log = log;
    this.listed = new Promise((resolve) => {
      this.#markListed = resolve;
    });
  }

  async load(): Promise<void> {
    try {
      const parsed = FenceServersPayload.safeParse({
        servers: JSON.parse(await readFile(this.#file, 'utf8')),
      });
      if (parsed.success) this.#fenced = new Map(parsed.data.servers.map((f) => [f.serverId, f]));
      else this.#log.error('unreadable fenced.json, ignored');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.#log.error({ err: e }, 'fenced.json not read');
    }
  }

  has(serverId: string): boolean {
    return this.#fenced.has(serverId);
  }

  ids(): string[] {
    return [...this.#fenced.keys()];
  }

  /** The Panel's list replaces ours (a fence it lifted is gone), written to disk before it is used. */
  async replace(list: readonly FencedServer[]): Promise<void> {
    this.#fenced = new Map(list.map((f) => [f.serverId, f]));
    const body = JSON.stringify([...this.#fenced.values()], null, 2);
    const write = async () => {
      const tmp = `${this.#file}.tmp`;
      await writeFile(tmp, body, { mode: 0o600 });
      await rename(tmp, this.#file);
    };
    const next = this.#writes.then(write);
    this.#writes = next.catch(() => undefined);
    await next;
    this.#markListed();
  }

  /**
   * Moves a server's folder (and its definition file) aside; returns where the folder went, or
   * null when it had none. Never deletes.
   */
  async moveAside(serverId: string, serverDir: string, definitionFile: string): Promise<string | null> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const ts = new Date().toISOString().replace(/[:.]/g, '-');
    const dest = path.join(this.dir, `${serverId}-${ts}`);
    let moved: string | null = null;
    try {
      await rename(serverDir, dest);
      moved = dest;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    try {
      await rename(definitionFile, `${dest}.json`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    return moved;
  }
}
