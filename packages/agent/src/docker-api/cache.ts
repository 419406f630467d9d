/**
 * The node's container list, kept current from Docker's event stream (issue 11, list speed: the
 * Engine itself takes over a second to list 1,400 containers). A full list at start, then each
 * container event re-reads that one container (`/containers/json?filters={"id":[…]}`, the list's
 * own shape) or drops it (`destroy`); a full resync when the event stream reconnects and every
 * RESYNC_MS. Answered to the Panel as `docker_containers` (only the fields the UI lists).
 */
import { CodedError } from '@cap/protocol';
import Docker from 'dockerode';
import type { Logger } from 'pino';
import { dockerOptions } from '../environment/docker/docker.ts';

export const RESYNC_MS = 5 * 60_000;
/** At most this many containers are kept (beyond it the answer says `truncated`). */
export const CACHE_MAX = 20_000;

export interface CachedContainer {
  Id: string;
  Names: string[];
  Image: string;
  ImageID?: string;
  Command?: string;
  Created: number;
  State: string;
  Status: string;
  Ports: { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }[];
  Labels: Record<string, string>;
  Mounts: { Type?: string; Name?: string; Source?: string; Destination?: string }[];
  NetworkSettings: { Networks: Record<string, { NetworkID?: string }> };
}

function slim(c: Docker.ContainerInfo): CachedContainer {
  return {
    Id: c.Id,
    Names: c.Names,
    Image: c.Image,
    ImageID: c.ImageID,
    Command: c.Command?.slice(0, 512),
    Created: c.Created,
    State: c.State,
    Status: c.Status,
    Ports: (c.Ports ?? []).slice(0, 64),
    Labels: c.Labels ?? {},
    Mounts: (c.Mounts ?? []).slice(0, 64).map((m) => ({
      Type: m.Type,
      ...(m.Name ? { Name: m.Name } : {}),
      Source: m.Source,
      Destination: m.Destination,
    })),
    NetworkSettings: {
      Networks: Object.fromEntries(
        Object.entries(c.NetworkSettings?.Networks ?? {})
          .slice(0, 64)
          .map(([k, n]) => [k, { NetworkID: n.NetworkID }]),
      ),
    },
  };
}

/** Event actions that change what the list shows of a container. */
const REFRESH = new Set([
  'create',
  'start',
  'restart',
  'stop',
  'die',
  'kill',
  'pause',
  'unpause',
  'rename',
  'update',
  'oom',
  'health_status',
]);

export class ContainerCache {
  readonly #docker: Docker;
  readonly #log: Logger;
  readonly #list = new Map<string, CachedContainer>();
  /** per container, bumped by each event: a re-read that an event overtook is dropped */
  readonly #gen = new Map<string, number>();
  #synced: Promise<void> | undefined;
  #syncedAt = 0;
  #stream: NodeJS.ReadableStream | undefined;
  #timer: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;
  #truncated = false;

  constructor(o: { dockerHost: string | undefined; log: Logger }) {
    this.#docker = new Docker(dockerOptions(o.dockerHost));
    this.#log = o.log;
  }

  /** Starts watching (the events first, then the full list, so nothing falls between them). */
  start(): void {
    if (this.#synced || this.#closed) return;
    this.#rewatch();
    this.#timer = setInterval(() => void this.resync().catch(() => undefined), RESYNC_MS);
    this.#timer.unref();
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    clearTimeout(this.#retry);
    (this.#stream as unknown as { destroy?: () => void } | undefined)?.destroy?.();
  }

  /** The list (waits for the first sync). */
  async containers(): Promise<{ containers: CachedContainer[]; syncedAt: string; truncated: boolean }> {
    this.start();
    try {
      await this.#synced;
    } catch (e) {
      throw new CodedError('DOCKER_ERROR', `Docker is unreachable: ${(e as Error).message}`);
    }
    return {
      containers: [...this.#list.values()].sort((a, b) => b.Created - a.Created),
      syncedAt: new Date(this.#syncedAt).toISOString(),
      truncated: this.#truncated,
    };
  }

  #rewatch(): void {
    const p = this.#watch();
    p.catch(() => undefined);
    this.#synced = p;
  }

  async resync(): Promise<void> {
    const all = await this.#docker.listContainers({ all: true });
    this.#list.clear();
    this.#truncated = all.length > CACHE_MAX;
    for (const c of all.slice(0, CACHE_MAX)) this.#list.set(c.Id, slim(c));
    this.#syncedAt = Date.now();
  }

  async #watch(): Promise<void> {
    try {
      const stream = (await this.#docker.getEvents({
        filters: { type: ['container'] },
      })) as NodeJS.ReadableStream;
      this.#stream = stream;
      let buf = '';
      stream.on('data', (b: Buffer) => {
        buf += b.toString('utf8');
        if (buf.length > 1024 * 1024) buf = '';
        let i = buf.indexOf('\n');
        while (i !== -1) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          this.#event(line);
          i = buf.indexOf('\n');
        }
      });
      const again = () => {
        if (this.#closed || this.#stream !== stream) return;
        this.#stream = undefined;
        this.#retry = setTimeout(() => this.#rewatch(), 1000);
        this.#retry.unref();
      };
      stream.on('end', again);
      stream.on('close', again);
      stream.on('error', again);
      // the events are watched: a full list now, then every change on top of it
      await this.resync();
    } catch (e) {
      this.#log.warn({ err: e }, 'container cache: Docker unreachable; retrying');
      if (!this.#closed) {
        this.#retry = setTimeout(() => this.#rewatch(), 2000);
        this.#retry.unref();
      }
      throw e;
    }
  }

  #event(line: string): void {
    let ev: { Type?: unknown; Action?: unknown; id?: unknown; Actor?: { ID?: unknown } };
    try {
      ev = JSON.parse(line);
    } catch {
      return;
    }
    const id = typeof ev.id === 'string' ? ev.id : typeof ev.Actor?.ID === 'string' ? ev.Actor.ID : '';
    if (!/^[0-9a-f]{64}$/.test(id) || typeof ev.Action !== 'string') return;
    const action = ev.Action.split(':')[0] as string;
    const gen = (this.#gen.get(id) ?? 0) + 1;
    this.#gen.set(id, gen);
    if (action === 'destroy') {
      this.#list.delete(id);
      return;
    }
    if (!REFRESH.has(action)) return;
    void this.#refresh(id, gen).catch(() => undefined);
  }

  async #refresh(id: string, gen: number): Promise<void> {
    const [c] = await this.#docker.listContainers({ all: true, filters: { id: [id] } });
    if (this.#gen.get(id) !== gen) return;
    if (this.#gen.size > CACHE_MAX * 2) this.#gen.clear();
    if (c) {
      if (this.#list.has(id) || this.#list.size < CACHE_MAX) this.#list.set(c.Id, slim(c));
    } else this.#list.delete(id);
  }
}
