/** The only module that talks to the Docker Engine (through its API, never the CLI). */
import { createRequire } from 'node:module';
import { type Duplex, PassThrough, type Readable } from 'node:stream';
import { CodedError, imageRefProblem, type RegistryAuthConfig, SYSTEM_INFO_MAX_IMAGES } from '@cap/protocol';
import Docker from 'dockerode';
import type { ConsoleLog } from '../environment.ts';
import { LABEL_INSTALL, LABEL_MANAGED, LABEL_NODE, LABEL_SERVER } from './container-spec.ts';

/** The most of a container's log read back at once (see consoleLog). */
export const CONSOLE_LOG_MAX_BYTES = 8 * 1024 * 1024;

/** Docker's multiplexed frames (a container without a TTY) as their payload, in order. */
function demuxed(buf: Buffer): Buffer {
  const out: Buffer[] = [];
  let p = 0;
  while (p + 8 <= buf.length) {
    const len = buf.readUInt32BE(p + 4);
    out.push(buf.subarray(p + 8, Math.min(buf.length, p + 8 + len)));
    p += 8 + len;
  }
  return Buffer.concat(out);
}

const LOG_ENTRY = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d) /;

/**
 * `<RFC 3339 timestamp> <text>\n` entries (the logs API with `timestamps`), the first
 * CONSOLE_LOG_MAX_BYTES kept and the rest counted. A line without a timestamp (a long line's
 * continuation) joins the entry before it.
 */
export function parseConsoleLog(buf: Buffer): ConsoleLog {
  const keep = buf.length > CONSOLE_LOG_MAX_BYTES ? buf.subarray(0, CONSOLE_LOG_MAX_BYTES) : buf;
  let over = 0;
  if (keep !== buf) {
    for (let i = CONSOLE_LOG_MAX_BYTES; i < buf.length; i++) if (buf[i] === 10) over++;
  }
  const text = keep.toString('utf8');
  const entries: ConsoleLog['entries'] = [];
  let p = 0;
  while (p < text.length) {
    const nl = text.indexOf('\n', p);
    const line = nl < 0 ? text.slice(p) : text.slice(p, nl + 1);
    p = nl < 0 ? text.length : nl + 1;
    const m = LOG_ENTRY.exec(line);
    const ms = m ? Date.parse(`${m[1]}${m[3]}`) : Number.NaN;
    if (m && Number.isFinite(ms)) {
      const ns = BigInt(ms) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
      entries.push({ ns, text: line.slice(m[0].length) });
    } else {
      const last = entries.at(-1);
      if (last) last.text += line;
    }
  }
  return { entries, over };
}

export interface ContainerState {
  id: string;
  running: boolean;
  pid: number;
  startedAt: string;
  exitCode: number;
  oomKilled: boolean;
}

export interface ManagedContainer {
  id: string;
  serverId: string;
  running: boolean;
  /** without the leading "/" */
  name?: string;
}

export interface ServersNetwork {
  name: string;
  subnet: string | undefined;
  gateway: string | undefined;
  /** inter-container traffic on (a network made by someone else with the same name) */
  icc: boolean;
}

export interface DockerStatsSample {
  cpuTotalNs: number;
  systemNs: number;
  onlineCpus: number;
  memoryUsed: number;
  memoryLimit: number;
  rx: number;
  tx: number;
}

function statusOf(e: unknown): number | undefined {
  const s = (e as { statusCode?: unknown }).statusCode;
  return typeof s === 'number' ? s : undefined;
}

/** Engine errors to protocol codes. Port conflicts have no error code in the Engine API, only text. */
export function dockerError(e: unknown, what: string): CodedError {
  if (e instanceof CodedError) return e;
  const msg = (e as Error)?.message ?? String(e);
  if (/port is already allocated|address already in use/i.test(msg)) {
    return new CodedError('PORT_CONFLICT', `${what}: a port is already in use`, { cause: e });
  }
  if (/no space left on device|disk quota exceeded/i.test(msg)) {
    return new CodedError('INSUFFICIENT_RESOURCES', `${what}: Docker's disk is full: ${msg.slice(0, 300)}`, {
      cause: e,
    });
  }
  if (statusOf(e) === 404) return new CodedError('CONTAINER_NOT_FOUND', `${what}: not found`, { cause: e });
  return new CodedError('DOCKER_ERROR', `${what}: ${msg.slice(0, 300)}`, { cause: e });
}

/** The first host address of an IPv4 subnet ("172.17.0.0/16" → "172.17.0.1"). */
export function firstHost(subnet: string | undefined): string | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(subnet ?? '');
  if (!m) return undefined;
  const bits = Number(m[5]);
  if (bits > 30) return undefined;
  const ip = m.slice(1, 5).reduce((acc, o) => acc * 256 + Number(o), 0);
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  const host = ((ip & mask) >>> 0) + 1;
  return [24, 16, 8, 0].map((sh) => (host >>> sh) & 255).join('.');
}

/**
 * docker-modem follows HTTP redirects itself (a copy of an old follow-redirects), and the request
 * it makes for one has no 'error' listener: a redirect the Engine answers for a path it cleans
 * (`/images/../../../etc/json` → 301) became a request to a host named `etc` whose failure killed
 * the process. The Engine API never redirects, so none is followed: the first request's answer
 * (the 301) is the error the caller gets.
 */
function noRedirects(): void {
  const fromDockerode = createRequire(createRequire(import.meta.url).resolve('dockerode'));
  (fromDockerode('docker-modem/lib/http.js') as { maxRedirects: number }).maxRedirects = 0;
}
noRedirects();

/** A refused image reference, before it reaches the Engine (its path is built from it). */
function checkImage(image: string): void {
  const problem = imageRefProblem(image);
  if (problem) throw new CodedError('CONFIG_INVALID', `image reference ${problem}`);
}

/** The longest pull-progress line kept (the Engine's are short; a runaway one is not buffered). */
const MAX_PROGRESS_LINE = 64 * 1024;

/**
 * Reads a pull's progress stream to its end. The Engine reports a failed pull inside the stream
 * (`{"error": "..."}`, HTTP 200), which docker-modem's followProgress passes off as a success.
 */
function pullOutcome(stream: NodeJS.ReadableStream): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let buf = '';
    let failure: string | null = null;
    let settled = false;
    const finish = (err: Error | null) => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else if (failure !== null) reject(new Error(failure));
      else resolve();
    };
    const line = (l: string) => {
      if (failure !== null || l.trim() === '') return;
      try {
        const o = JSON.parse(l) as { error?: unknown; errorDetail?: { message?: unknown } };
        const msg = o.errorDetail?.message ?? o.error;
        if (typeof msg === 'string' && msg !== '') failure = msg;
      } catch {
        // not JSON: not progress, ignored
      }
    };
    stream.on('data', (chunk: Buffer | string) => {
      buf += chunk.toString();
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        line(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
      }
      if (buf.length > MAX_PROGRESS_LINE) buf = '';
    });
    stream.on('error', (e: Error) => finish(e));
    stream.on('end', () => {
      line(buf);
      finish(null);
    });
    stream.on('close', () => finish(null));
  });
}

/** What the Engine said, without dockerode's "(HTTP code N) …" wrapping where it has the JSON. */
function engineMessage(e: unknown): string {
  const json = (e as { json?: { message?: unknown } })?.json;
  const msg = typeof json?.message === 'string' ? json.message : ((e as Error)?.message ?? String(e));
  return msg.replace(/\s+/g, ' ').trim().slice(0, 300);
}

export function dockerOptions(dockerHost: string | undefined): Docker.DockerOptions {
  if (!dockerHost) return { socketPath: '/var/run/docker.sock' };
  if (dockerHost.startsWith('/')) return { socketPath: dockerHost };
  const u = new URL(dockerHost);
  if (u.protocol === 'unix:') return { socketPath: u.pathname };
  return {
    host: u.hostname,
    port: Number(u.port || 2375),
    protocol: u.protocol === 'https:' ? 'https' : 'http',
  };
}

export class DockerEnvironment {
  readonly docker: Docker;

  constructor(dockerHost: string | undefined) {
    this.docker = new Docker(dockerOptions(dockerHost));
  }

  async version(): Promise<string> {
    const v = await this.docker.version();
    return v.Version;
  }

  /** The image references (repo:tag) the engine holds, sorted, at most SYSTEM_INFO_MAX_IMAGES. */
  async imageTags(): Promise<string[]> {
    const list = await this.docker.listImages();
    const tags = new Set<string>();
    for (const i of list) for (const t of i.RepoTags ?? []) if (t !== '<none>:<none>') tags.add(t);
    return [...tags].sort().slice(0, SYSTEM_INFO_MAX_IMAGES);
  }

  async reachable(): Promise<{ reachable: boolean; version: string | null }> {
    try {
      return { reachable: true, version: await this.version() };
    } catch {
      return { reachable: false, version: null };
    }
  }

  async info(): Promise<{ cpus: number; memTotal: number; version: string; cgroupVersion: string }> {
    const i = (await this.docker.info()) as {
      NCPU: number;
      MemTotal: number;
      ServerVersion: string;
      CgroupVersion?: string;
    };
    return {
      cpus: i.NCPU,
      memTotal: i.MemTotal,
      version: i.ServerVersion,
      cgroupVersion: i.CgroupVersion ?? '1',
    };
  }

  /** The image's entrypoint (null when it has none); pulls the image when it is not here. */
  async imageEntrypoint(image: string): Promise<string[] | null> {
    checkImage(image);
    const inspect = async (): Promise<string[] | null | undefined> => {
      try {
        const info = await this.docker.getImage(image).inspect();
        const ep = info.Config?.Entrypoint as string[] | string | null | undefined;
        if (!ep) return null;
        return Array.isArray(ep) ? ep : [ep];
      } catch (e) {
        if (statusOf(e) !== 404) throw dockerError(e, `image ${image}`);
        return undefined;
      }
    };
    const here = await inspect();
    if (here !== undefined) return here;
    await this.pull(image);
    const pulled = await inspect();
    if (pulled === undefined)
      throw new CodedError('DOCKER_ERROR', `image ${image} is not present after its pull`);
    return pulled;
  }

  /** Whether the image is here (never pulls). */
  async hasImage(image: string): Promise<boolean> {
    checkImage(image);
    try {
      await this.docker.getImage(image).inspect();
      return true;
    } catch (e) {
      if (statusOf(e) === 404) return false;
      throw dockerError(e, `image ${image}`);
    }
  }

  /** `auth`: credentials for this pull only (never kept). */
  async pull(image: string, auth?: RegistryAuthConfig): Promise<void> {
    checkImage(image);
    try {
      await pullOutcome(await this.docker.pull(image, auth ? { authconfig: auth } : {}));
    } catch (e) {
      throw new CodedError(
        'DOCKER_ERROR',
        `image ${image} is not present and could not be pulled: ${engineMessage(e)}`,
        { cause: e },
      );
    }
  }

  /** The image a container runs (its ID) and that image's RepoDigests; null: no such container. */
  async containerImage(containerId: string): Promise<{ imageId: string; digests: string[] } | null> {
    let imageId: string;
    try {
      imageId = (await this.docker.getContainer(containerId).inspect()).Image;
    } catch (e) {
      if (statusOf(e) === 404) return null;
      throw dockerError(e, 'inspect container');
    }
    return { imageId, digests: (await this.imageInfo(imageId))?.digests ?? [] };
  }

  /** An image's ID and RepoDigests by reference or ID; null when it is not here. */
  async imageInfo(ref: string): Promise<{ id: string; digests: string[] } | null> {
    if (!ref.startsWith('sha256:')) checkImage(ref);
    try {
      const i = await this.docker.getImage(ref).inspect();
      return { id: i.Id, digests: (i.RepoDigests ?? []).slice(0, 64) };
    } catch (e) {
      if (statusOf(e) === 404) return null;
      throw dockerError(e, `image ${ref}`);
    }
  }

  /** The registry's manifest digest for the reference (`GET /distribution/{name}/json`). */
  async remoteDigest(ref: string, registryAuth?: string): Promise<string> {
    checkImage(ref);
    try {
      const d = (await this.docker
        .getImage(ref)
        .distribution(registryAuth ? { authconfig: { base64: registryAuth } } : {})) as {
        Descriptor?: { digest?: unknown };
      };
      const digest = d.Descriptor?.digest;
      if (typeof digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(digest))
        throw new Error('the registry answered no manifest digest');
      return digest;
    } catch (e) {
      throw new CodedError('DOCKER_ERROR', `registry of ${ref}: ${engineMessage(e)}`, { cause: e });
    }
  }

  /**
   * Pulls the reference, calling `onEvent` with each progress entry of the Engine's stream;
   * a failure inside the stream rejects (see pullOutcome).
   */
  async pullWithProgress(
    ref: string,
    onEvent: (e: { id?: string; status?: string; current?: number; total?: number }) => void,
    registryAuth?: string,
  ): Promise<void> {
    checkImage(ref);
    try {
      const stream = await this.docker.pull(
        ref,
        registryAuth ? { authconfig: { base64: registryAuth } } : {},
      );
      const tee = new PassThrough();
      let buf = '';
      tee.on('data', (chunk: Buffer) => {
        buf += chunk.toString();
        let nl = buf.indexOf('\n');
        while (nl >= 0) {
          const l = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          nl = buf.indexOf('\n');
          try {
            const o = JSON.parse(l) as {
              id?: unknown;
              status?: unknown;
              progressDetail?: { current?: unknown; total?: unknown } | null;
            };
            const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);
            onEvent({
              ...(typeof o.id === 'string' ? { id: o.id.slice(0, 128) } : {}),
              ...(typeof o.status === 'string' ? { status: o.status.slice(0, 256) } : {}),
              current: num(o.progressDetail?.current),
              total: num(o.progressDetail?.total),
            });
          } catch {
            // not JSON: not progress
          }
        }
        if (buf.length > MAX_PROGRESS_LINE) buf = '';
      });
      (stream as NodeJS.ReadableStream).pipe(tee);
      await pullOutcome(stream);
    } catch (e) {
      throw new CodedError('DOCKER_ERROR', `pull of ${ref} failed: ${engineMessage(e)}`, { cause: e });
    }
  }

  /** Tags an image (by ID or reference) as `repo:tag`. */
  async tagImage(image: string, repo: string, tag: string): Promise<void> {
    checkImage(`${repo}:${tag}`);
    try {
      await this.docker.getImage(image).tag({ repo, tag });
    } catch (e) {
      throw dockerError(e, `tag image ${repo}:${tag}`);
    }
  }

  async create(spec: Docker.ContainerCreateOptions): Promise<string> {
    if (spec.Image !== undefined) checkImage(spec.Image);
    try {
      const c = await this.docker.createContainer(spec);
      return c.id;
    } catch (e) {
      if (statusOf(e) === 409)
        throw new CodedError('SERVER_EXISTS', `container ${spec.name} exists`, { cause: e });
      throw dockerError(e, 'create container');
    }
  }

  async rename(id: string, name: string): Promise<void> {
    try {
      await this.docker.getContainer(id).rename({ name });
    } catch (e) {
      throw dockerError(e, 'rename container');
    }
  }

  async remove(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: true, v: true });
    } catch (e) {
      if (statusOf(e) !== 404) throw dockerError(e, 'remove container');
    }
  }

  async inspect(id: string): Promise<ContainerState | null> {
    try {
      const i = await this.docker.getContainer(id).inspect();
      return {
        id: i.Id,
        running: i.State.Running,
        pid: i.State.Pid,
        startedAt: i.State.StartedAt,
        exitCode: i.State.ExitCode,
        oomKilled: i.State.OOMKilled,
      };
    } catch (e) {
      if (statusOf(e) === 404) return null;
      throw dockerError(e, 'inspect container');
    }
  }

  /** Console: a hijacked raw stream (the container has a TTY, so output is not multiplexed). */
  async attach(id: string): Promise<Duplex> {
    try {
      const s = await this.docker.getContainer(id).attach({
        stream: true,
        stdin: true,
        stdout: true,
        stderr: true,
        hijack: true,
      });
      // never an unhandled 'error' between here and the console's own listener
      (s as unknown as Duplex).on('error', () => undefined);
      return s as unknown as Duplex;
    } catch (e) {
      throw dockerError(e, 'attach');
    }
  }

  /**
   * The container's log from `sinceMs` up to now (not followed), with Docker's timestamp of each
   * entry: what the game printed while no console was attached (the Agent down, the Engine
   * restarting). At most CONSOLE_LOG_MAX_BYTES of text kept; the entries past it are counted.
   * Null when the container keeps no log the API can read (a logging driver without reading).
   */
  async consoleLog(id: string, sinceMs: number): Promise<ConsoleLog | null> {
    let raw: Readable;
    let tty: boolean;
    try {
      const c = this.docker.getContainer(id);
      tty = (await c.inspect()).Config?.Tty !== false;
      const ms = Math.max(0, Math.floor(sinceMs));
      raw = (await c.logs({
        follow: false,
        stdout: true,
        stderr: true,
        timestamps: true,
        since:
          `${Math.floor(ms / 1000)}.${String((ms % 1000) * 1_000_000).padStart(9, '0')}` as unknown as number,
      })) as unknown as Readable;
    } catch (e) {
      if (statusOf(e) === 501 || statusOf(e) === 400) return null;
      throw dockerError(e, 'read the console log');
    }
    // dockerode gives a non-followed log as one Buffer
    if (Buffer.isBuffer(raw)) return parseConsoleLog(tty ? raw : demuxed(raw));
    let text: Readable = raw;
    if (!tty) {
      const out = new PassThrough();
      this.docker.modem.demuxStream(raw, out, out);
      raw.on('end', () => out.end());
      text = out;
    }
    const parts: Buffer[] = [];
    let bytes = 0;
    let over = 0;
    await new Promise<void>((resolve, reject) => {
      text.on('data', (c: Buffer) => {
        if (bytes < CONSOLE_LOG_MAX_BYTES) {
          parts.push(c);
          bytes += c.length;
        } else for (const b of c) if (b === 10) over++;
      });
      text.on('end', () => resolve());
      raw.on('error', reject);
      text.on('error', reject);
    });
    const log = parseConsoleLog(Buffer.concat(parts));
    log.over += over;
    return log;
  }

  async start(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).start();
    } catch (e) {
      if (statusOf(e) === 304) return; // already started
      throw dockerError(e, 'start container');
    }
  }

  async kill(id: string, signal: string): Promise<void> {
    try {
      await this.docker.getContainer(id).kill({ signal });
    } catch (e) {
      const s = statusOf(e);
      if (s === 409 || s === 404) return; // not running (any more): nothing to signal
      throw dockerError(e, 'signal container');
    }
  }

  /**
   * Resolves when the container is not running, with its exit code; rejects when the connection
   * to the Engine drops meanwhile (a dockerd restart). dockerode's own wait never settles then:
   * docker-modem listens for neither `error` nor `close` on the body, so it is read here.
   */
  async wait(id: string, signal?: AbortSignal): Promise<number> {
    const modem = this.docker.modem as unknown as {
      dial(opts: object, cb: (err: unknown, res: NodeJS.ReadableStream & { destroy(): void }) => void): void;
    };
    const res = await new Promise<NodeJS.ReadableStream & { destroy(): void }>((resolve, reject) =>
      modem.dial(
        {
          path: `/containers/${encodeURIComponent(id)}/wait?`,
          method: 'POST',
          isStream: true,
          ...(signal ? { abortSignal: signal } : {}),
          statusCodes: { 200: true, 400: 'bad parameter', 404: 'no such container', 500: 'server error' },
          options: { condition: 'not-running' },
        },
        (err, r) => (err ? reject(dockerError(err, 'wait for container')) : resolve(r)),
      ),
    );
    return new Promise<number>((resolve, reject) => {
      let body = '';
      let ended = false;
      const onAbort = () => res.destroy();
      signal?.addEventListener('abort', onAbort, { once: true });
      res.on('data', (c: Buffer | string) => {
        body += c.toString();
      });
      res.on('end', () => {
        ended = true;
        signal?.removeEventListener('abort', onAbort);
        const code = (JSON.parse(body || '{}') as { StatusCode?: unknown }).StatusCode;
        if (typeof code === 'number') resolve(code);
        else reject(new CodedError('DOCKER_ERROR', 'wait for container: no exit code in the answer'));
      });
      res.on('error', (e: unknown) => reject(dockerError(e, 'wait for container')));
      res.on('close', () => {
        signal?.removeEventListener('abort', onAbort);
        if (!ended)
          reject(new CodedError('DOCKER_ERROR', 'wait for container: lost the connection to Docker'));
      });
    });
  }

  async listManaged(nodeId: string): Promise<ManagedContainer[]> {
    const list = await this.docker.listContainers({
      all: true,
      filters: { label: [`${LABEL_MANAGED}=true`, `${LABEL_NODE}=${nodeId}`] },
    });
    return list.map((c) => ({
      id: c.Id,
      serverId: c.Labels[LABEL_SERVER] ?? '',
      running: c.State === 'running',
      name: (c.Names?.[0] ?? '').replace(/^\//, ''),
    }));
  }

  /** Installer containers of this node (label ctrl-alt-play.install=<serverId>). */
  async listInstallers(nodeId: string): Promise<ManagedContainer[]> {
    const list = await this.docker.listContainers({
      all: true,
      filters: { label: [LABEL_INSTALL, `${LABEL_NODE}=${nodeId}`] },
    });
    return list.map((c) => ({
      id: c.Id,
      serverId: c.Labels[LABEL_INSTALL] ?? '',
      running: c.State === 'running',
    }));
  }

  /**
   * The output of a container without a TTY, stdout and stderr merged into one stream, followed
   * until it exits. `tail: 0` skips what was printed before (a reattach).
   */
  async follow(id: string, opts: { tail?: number } = {}): Promise<Readable> {
    try {
      const raw = (await this.docker.getContainer(id).logs({
        follow: true,
        stdout: true,
        stderr: true,
        ...(opts.tail === undefined ? {} : { tail: opts.tail }),
      })) as unknown as Readable;
      const out = new PassThrough();
      this.docker.modem.demuxStream(raw, out, out);
      raw.on('end', () => out.end());
      raw.on('error', (e) => out.destroy(e));
      out.on('close', () => raw.destroy());
      return out;
    } catch (e) {
      throw dockerError(e, 'follow logs');
    }
  }

  #network: Promise<ServersNetwork> | undefined;
  #networkName = 'bridge';

  /**
   * The bridge the node's game servers are on, created when missing: one of the Agent's own,
   * with inter-container traffic off (Docker's default bridge lets every container reach every
   * other's ports). Memoised; a failure (Engine down) is tried again at the next call.
   */
  serversNetwork(name: string): Promise<ServersNetwork> {
    this.#networkName = name;
    this.#network ??= this.#ensureNetwork(name).catch((e) => {
      this.#network = undefined;
      throw dockerError(e, `network ${name}`);
    });
    return this.#network;
  }

  async #ensureNetwork(name: string): Promise<ServersNetwork> {
    const read = async (): Promise<ServersNetwork | null> => {
      try {
        const n = (await this.docker.getNetwork(name).inspect()) as {
          Name: string;
          Options?: Record<string, string>;
          IPAM?: { Config?: { Gateway?: string; Subnet?: string }[] };
        };
        const configs = n.IPAM?.Config ?? [];
        const subnet = configs.find((c) => c.Subnet && !c.Subnet.includes(':'))?.Subnet;
        return {
          name: n.Name,
          subnet,
          gateway: configs.find((c) => c.Gateway && !c.Gateway.includes(':'))?.Gateway ?? firstHost(subnet),
          icc: n.Options?.['com.docker.network.bridge.enable_icc'] !== 'false',
        };
      } catch (e) {
        if (statusOf(e) === 404) return null;
        throw e;
      }
    };
    const found = await read();
    if (found) return found;
    try {
      await this.docker.createNetwork({
        Name: name,
        Driver: 'bridge',
        CheckDuplicate: true,
        Options: { 'com.docker.network.bridge.enable_icc': 'false' },
        Labels: { [LABEL_MANAGED]: 'true' },
      });
    } catch (e) {
      if (statusOf(e) !== 409) throw e; // 409: another Agent on this host made it meanwhile
    }
    const made = await read();
    if (!made) throw new Error('network vanished after its creation');
    return made;
  }

  #gateway: Promise<string | undefined> | undefined;

  /**
   * The servers' network's gateway: how a container reaches this host (Wings'
   * config.docker.interface); the default bridge's before that network is known.
   */
  bridgeGateway(): Promise<string | undefined> {
    if (this.#network) return this.#network.then((n) => n.gateway).catch(() => undefined);
    this.#gateway ??= this.docker
      .getNetwork(this.#networkName)
      .inspect()
      .then((n: { IPAM?: { Config?: { Gateway?: string; Subnet?: string }[] } }) => {
        const configs = n.IPAM?.Config ?? [];
        // the default bridge often states only its subnet: docker0 then has its first address
        return configs.find((c) => c.Gateway)?.Gateway ?? firstHost(configs.find((c) => c.Subnet)?.Subnet);
      })
      .catch(() => {
        this.#gateway = undefined; // try again next time
        return undefined;
      });
    return this.#gateway;
  }

  /** Fallback when cgroup files are not readable: one sample from the Engine (slow: it waits a cycle). */
  async statsOnce(id: string): Promise<DockerStatsSample | null> {
    try {
      const s = (await this.docker.getContainer(id).stats({ stream: false })) as unknown as RawStats;
      return fromRawStats(s);
    } catch {
      return null;
    }
  }

  /** One long-lived stats stream (used only by the benchmark, to compare). */
  async statsStream(id: string): Promise<NodeJS.ReadableStream> {
    const s = (await this.docker
      .getContainer(id)
      .stats({ stream: true })) as unknown as NodeJS.ReadableStream;
    s.on('error', () => undefined); // the reader adds its own; none may be fatal before that
    return s;
  }
}

export interface RawStats {
  cpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number; online_cpus?: number };
  memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number> };
  networks?: Record<string, { rx_bytes: number; tx_bytes: number }>;
}

export function fromRawStats(s: RawStats): DockerStatsSample {
  let rx = 0;
  let tx = 0;
  for (const n of Object.values(s.networks ?? {})) {
    rx += n.rx_bytes;
    tx += n.tx_bytes;
  }
  const ms = s.memory_stats ?? {};
  const inactive = ms.stats?.total_inactive_file ?? ms.stats?.inactive_file ?? 0;
  return {
    cpuTotalNs: s.cpu_stats?.cpu_usage?.total_usage ?? 0,
    systemNs: s.cpu_stats?.system_cpu_usage ?? 0,
    onlineCpus: s.cpu_stats?.online_cpus ?? 1,
    memoryUsed: Math.max(0, (ms.usage ?? 0) - inactive),
    memoryLimit: ms.limit ?? 0,
    rx,
    tx,
  };
}
