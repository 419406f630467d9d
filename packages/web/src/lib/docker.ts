/**
 * Pure helpers of the Docker pages: the Engine API's shapes (v1.41, what Docker 20.10 answers, as the
 * Panel's `/api/nodes/:id/docker/*` relays them unchanged), the container filters, the pull-progress
 * aggregation per layer, the log stream's frames and search, stats figures, the prune preview and the
 * create wizard's request body. No React, no fetch: unit-tested with `node --test`.
 */

// ---------- Engine API shapes (only the fields the UI reads) ----------

export interface DockerPort {
  IP?: string;
  PrivatePort: number;
  PublicPort?: number;
  Type: string;
}
export interface DockerMountPoint {
  Type: string;
  Name?: string;
  Source: string;
  Destination: string;
  RW?: boolean;
}
export interface DockerContainer {
  Id: string;
  Names: string[];
  Image: string;
  ImageID: string;
  Command: string;
  Created: number;
  State: string;
  Status: string;
  Ports: DockerPort[];
  Labels: Record<string, string> | null;
  Mounts?: DockerMountPoint[];
  NetworkSettings?: { Networks?: Record<string, { NetworkID?: string }> };
}
/** a container as the lists show it: where it runs added */
export interface NodeContainer extends DockerContainer {
  nodeId: string;
  nodeName: string;
}
export interface DockerImage {
  Id: string;
  RepoTags: string[] | null;
  RepoDigests: string[] | null;
  Created: number;
  Size: number;
  Labels?: Record<string, string> | null;
  Containers?: number;
}
export interface DockerNetwork {
  Id: string;
  Name: string;
  Driver: string;
  Scope: string;
  Internal?: boolean;
  Created?: string;
  IPAM?: { Config?: { Subnet?: string; Gateway?: string }[] };
  Containers?: Record<string, { Name: string; IPv4Address?: string }>;
  Labels?: Record<string, string> | null;
}
export interface DockerVolume {
  Name: string;
  Driver: string;
  Mountpoint: string;
  CreatedAt?: string;
  Labels?: Record<string, string> | null;
  Scope?: string;
  UsageData?: { Size: number; RefCount: number } | null;
}

// ---------- names, labels, managed ----------

export const LABEL_MANAGED = 'ctrl-alt-play.managed';
export const LABEL_SERVER = 'ctrl-alt-play.server';
export const LABEL_NODE = 'ctrl-alt-play.node';

/** Docker's names carry a leading slash: `/web` → `web` */
export function containerName(c: Pick<DockerContainer, 'Names' | 'Id'>): string {
  const n = c.Names?.[0];
  return n ? n.replace(/^\//, '') : c.Id.slice(0, 12);
}

const own = (o: Record<string, string> | null | undefined, k: string): string | undefined =>
  o && Object.hasOwn(o, k) ? o[k] : undefined;

/** The Panel's game-server id when the container is one of its own (carries its labels), else null. */
export function managedServerId(c: Pick<DockerContainer, 'Labels'>): string | null {
  const server = own(c.Labels, LABEL_SERVER);
  if (!server) return null;
  return own(c.Labels, LABEL_MANAGED) === 'true' || own(c.Labels, LABEL_NODE) !== undefined ? server : null;
}

export const shortId = (id: string): string => id.replace(/^sha256:/, '').slice(0, 12);

export function formatPorts(ports: readonly DockerPort[] | undefined): string {
  if (!ports?.length) return '';
  const seen = new Set<string>();
  const out: string[] = [];
  for (const p of ports) {
    const s = p.PublicPort
      ? `${p.IP && p.IP !== '0.0.0.0' && p.IP !== '::' ? `${p.IP}:` : ''}${p.PublicPort}→${p.PrivatePort}/${p.Type}`
      : `${p.PrivatePort}/${p.Type}`;
    if (!seen.has(s)) {
      seen.add(s);
      out.push(s);
    }
  }
  return out.join(', ');
}

// ---------- container filters ----------

export interface ContainerFilter {
  /** free text: name, image, id prefix or a label key/value */
  text: string;
  /** substrings, case-insensitive; '' = any */
  name: string;
  image: string;
  /** `key` (present) or `key=value` */
  label: string;
  /** a Docker state ('running', 'exited', 'paused', 'created', 'restarting', 'dead'), '' = any */
  state: string;
  /** a node id, '' = any */
  node: string;
  /** only the Panel's own containers / only foreign ones / both */
  managed: 'any' | 'managed' | 'unmanaged';
}
export const emptyFilter: ContainerFilter = {
  text: '',
  name: '',
  image: '',
  label: '',
  state: '',
  node: '',
  managed: 'any',
};

function labelMatches(labels: Record<string, string> | null, spec: string): boolean {
  const eq = spec.indexOf('=');
  const key = (eq < 0 ? spec : spec.slice(0, eq)).trim();
  if (!key) return true;
  const value = own(labels, key);
  if (value === undefined) return false;
  return eq < 0 ? true : value === spec.slice(eq + 1).trim();
}

/** Whether a container passes every set filter (all of them, AND). */
export function matchContainer(c: NodeContainer, f: ContainerFilter): boolean {
  const name = containerName(c).toLowerCase();
  if (f.name && !name.includes(f.name.trim().toLowerCase())) return false;
  if (f.image && !c.Image.toLowerCase().includes(f.image.trim().toLowerCase())) return false;
  if (f.state && c.State !== f.state) return false;
  if (f.node && c.nodeId !== f.node) return false;
  if (f.label && !labelMatches(c.Labels, f.label)) return false;
  if (f.managed !== 'any' && (managedServerId(c) !== null) !== (f.managed === 'managed')) return false;
  const t = f.text.trim().toLowerCase();
  if (t) {
    const hay = [name, c.Image.toLowerCase(), c.nodeName.toLowerCase()];
    const hit =
      hay.some((h) => h.includes(t)) ||
      c.Id.startsWith(t) ||
      Object.entries(c.Labels ?? {}).some(([k, v]) => `${k}=${v}`.toLowerCase().includes(t));
    if (!hit) return false;
  }
  return true;
}

/** Filter and sort (name, then node) in one pass; stable for the virtual list. */
export function filterContainers(list: readonly NodeContainer[], f: ContainerFilter): NodeContainer[] {
  const out = list.filter((c) => matchContainer(c, f));
  const named = out.map((c) => [containerName(c), c] as const);
  named.sort((a, b) =>
    a[0] < b[0]
      ? -1
      : a[0] > b[0]
        ? 1
        : a[1].nodeName < b[1].nodeName
          ? -1
          : a[1].nodeName > b[1].nodeName
            ? 1
            : 0,
  );
  return named.map(([, c]) => c);
}

/** Counts per state, for the filter's options. */
export function stateCounts(list: readonly DockerContainer[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const c of list) m.set(c.State, (m.get(c.State) ?? 0) + 1);
  return m;
}

/** Which actions make sense in a state (the Engine refuses the others with 304/409). */
export function actionsFor(state: string): Set<'start' | 'stop' | 'restart' | 'kill' | 'pause' | 'unpause'> {
  switch (state) {
    case 'running':
      return new Set(['stop', 'restart', 'kill', 'pause']);
    case 'paused':
      return new Set(['unpause', 'kill', 'stop']);
    case 'restarting':
      return new Set(['stop', 'kill']);
    default:
      return new Set(['start', 'restart']);
  }
}

// ---------- JSON lines (pull progress, events) ----------

/** Splits a stream of text chunks into JSON values, one per line; a line may span chunks. */
export class JsonLines {
  private rest = '';
  push(chunk: string): unknown[] {
    this.rest += chunk;
    const lines = this.rest.split('\n');
    this.rest = lines.pop() ?? '';
    const out: unknown[] = [];
    for (const line of lines) {
      const s = line.trim();
      if (!s) continue;
      try {
        out.push(JSON.parse(s));
      } catch {
        // a line that is not JSON is skipped (the Engine only sends JSON here)
      }
    }
    return out;
  }
  end(): unknown[] {
    const s = this.rest;
    this.rest = '';
    return this.push(`${s}\n`);
  }
}

// ---------- pull progress per layer ----------

export type LayerPhase =
  | 'waiting'
  | 'downloading'
  | 'verifying'
  | 'downloaded'
  | 'extracting'
  | 'complete'
  | 'exists';
export interface LayerProgress {
  id: string;
  phase: LayerPhase;
  /** bytes of the current phase (download or extract) and its total, when the Engine said */
  current: number;
  total: number;
  /** the layer's size as first seen while downloading (extract totals repeat it) */
  size: number;
  status: string;
}
export interface PullState {
  layers: LayerProgress[];
  /** the lines without a layer id: "Pulling from library/x", "Digest: …", "Status: …" */
  messages: string[];
  error: string | null;
  done: boolean;
}
export const emptyPull = (): PullState => ({ layers: [], messages: [], error: null, done: false });

interface PullEvent {
  status?: unknown;
  id?: unknown;
  progressDetail?: { current?: unknown; total?: unknown } | null;
  error?: unknown;
  errorDetail?: { message?: unknown } | null;
}

function phaseOf(status: string, previous: LayerPhase | undefined): LayerPhase | null {
  const s = status.toLowerCase();
  if (s.startsWith('pulling fs layer') || s.startsWith('waiting')) return 'waiting';
  if (s.startsWith('downloading')) return 'downloading';
  if (s.startsWith('verifying checksum')) return 'verifying';
  if (s.startsWith('download complete')) return 'downloaded';
  if (s.startsWith('extracting')) return 'extracting';
  if (s.startsWith('pull complete')) return 'complete';
  if (s.startsWith('already exists')) return 'exists';
  // "Retrying in 3 seconds", "Pushing", "Pushed", "Layer already exists" (push)
  if (s.startsWith('pushing')) return 'downloading';
  if (s.startsWith('pushed') || s.startsWith('layer already exists') || s.startsWith('mounted from'))
    return s.startsWith('pushed') ? 'complete' : 'exists';
  if (s.startsWith('preparing')) return 'waiting';
  return previous ?? null;
}

const finite = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);

/**
 * One event of `POST /images/create` (or a push) applied to the state; returns a new state.
 * Events with an `id` and a layer status are a layer's; others are messages. `error` ends it.
 */
export function applyPullEvent(state: PullState, raw: unknown): PullState {
  if (!raw || typeof raw !== 'object') return state;
  const e = raw as PullEvent;
  if (typeof e.error === 'string' || (e.errorDetail && typeof e.errorDetail.message === 'string')) {
    const msg = typeof e.error === 'string' ? e.error : String(e.errorDetail?.message);
    return { ...state, error: msg, done: true };
  }
  const status = typeof e.status === 'string' ? e.status : '';
  const id = typeof e.id === 'string' ? e.id : '';
  const prev = state.layers.find((l) => l.id === id);
  const phase = id ? phaseOf(status, prev?.phase) : null;
  if (!id || phase === null) {
    // "latest: Pulling from library/busybox" carries the tag as id: a message, not a layer
    const text = id ? `${id}: ${status}` : status;
    return text ? { ...state, messages: [...state.messages, text] } : state;
  }
  const current = finite(e.progressDetail?.current);
  const total = finite(e.progressDetail?.total);
  const size = prev?.size || (phase === 'downloading' ? total : 0);
  const next: LayerProgress = {
    id,
    phase,
    current: phase === 'downloading' || phase === 'extracting' ? current : 0,
    total: phase === 'downloading' || phase === 'extracting' ? total : 0,
    size,
    status,
  };
  const layers = prev ? state.layers.map((l) => (l.id === id ? next : l)) : [...state.layers, next];
  return { ...state, layers };
}

/** 0..1 of a layer: download is the first half, extraction the second (as the CLI's bars go). */
export function layerFraction(l: LayerProgress): number {
  const part = (c: number, t: number) => (t > 0 ? Math.min(1, c / t) : 0);
  switch (l.phase) {
    case 'waiting':
      return 0;
    case 'downloading':
      return 0.5 * part(l.current, l.total);
    case 'verifying':
    case 'downloaded':
      return 0.5;
    case 'extracting':
      return 0.5 + 0.5 * part(l.current, l.total);
    case 'complete':
    case 'exists':
      return 1;
  }
}

/**
 * The whole pull's 0..1, weighted by layer size when known (a layer of unknown size counts as the
 * mean of the known ones, or 1 when none is known yet).
 */
export function pullFraction(s: PullState): number {
  if (s.layers.length === 0) return s.done && !s.error ? 1 : 0;
  const known = s.layers.filter((l) => l.size > 0);
  const mean = known.length ? known.reduce((a, l) => a + l.size, 0) / known.length : 1;
  let sum = 0;
  let weight = 0;
  for (const l of s.layers) {
    const w = l.phase === 'exists' ? 0 : l.size > 0 ? l.size : mean;
    sum += w * layerFraction(l);
    weight += w;
  }
  return weight > 0 ? sum / weight : 1;
}

// ---------- logs: the multiplexed stream, lines, search ----------

export interface LogChunk {
  stream: 'stdout' | 'stderr';
  data: Uint8Array;
}

/**
 * The Engine's log/attach framing for containers without a TTY: 8-byte headers (stream type, 3 zero
 * bytes, big-endian length) then the payload; frames may be split across chunks. With a TTY the
 * bytes are raw: `raw: true` passes them through as stdout.
 */
export class LogDemuxer {
  private buf = new Uint8Array(0);
  private readonly raw: boolean;
  constructor(raw: boolean) {
    this.raw = raw;
  }
  push(chunk: Uint8Array): LogChunk[] {
    if (this.raw) return chunk.length ? [{ stream: 'stdout', data: chunk }] : [];
    const joined = new Uint8Array(this.buf.length + chunk.length);
    joined.set(this.buf, 0);
    joined.set(chunk, this.buf.length);
    const out: LogChunk[] = [];
    let at = 0;
    while (joined.length - at >= 8) {
      const type = joined[at] ?? 1;
      const len =
        (((joined[at + 4] ?? 0) << 24) >>> 0) +
        ((joined[at + 5] ?? 0) << 16) +
        ((joined[at + 6] ?? 0) << 8) +
        (joined[at + 7] ?? 0);
      if (joined.length - at - 8 < len) break;
      out.push({ stream: type === 2 ? 'stderr' : 'stdout', data: joined.slice(at + 8, at + 8 + len) });
      at += 8 + len;
    }
    this.buf = joined.slice(at);
    return out;
  }
}

export interface LogLine {
  stream: 'stdout' | 'stderr';
  /** RFC 3339 with nanoseconds as the Engine sends it with `timestamps=1`, else null */
  time: string | null;
  text: string;
}

const TS = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})) ?/;

/** Turns decoded chunks into lines (a line may span chunks); keeps the partial last line per stream. */
export class LogLines {
  private partial = new Map<'stdout' | 'stderr', string>();
  private readonly timestamps: boolean;
  constructor(timestamps: boolean) {
    this.timestamps = timestamps;
  }
  push(stream: 'stdout' | 'stderr', text: string): LogLine[] {
    const all = (this.partial.get(stream) ?? '') + text;
    const parts = all.split('\n');
    this.partial.set(stream, parts.pop() ?? '');
    return parts.map((p) => this.line(stream, p.replace(/\r$/, '')));
  }
  flush(): LogLine[] {
    const out: LogLine[] = [];
    for (const [stream, rest] of this.partial) if (rest) out.push(this.line(stream, rest));
    this.partial.clear();
    return out;
  }
  private line(stream: 'stdout' | 'stderr', s: string): LogLine {
    if (!this.timestamps) return { stream, time: null, text: s };
    const m = TS.exec(s);
    return m ? { stream, time: m[1] ?? null, text: s.slice(m[0].length) } : { stream, time: null, text: s };
  }
}

/**
 * The lines matching a search: plain text, case-insensitive; `/re/flags` is a regular expression
 * (an invalid one matches nothing and says why).
 */
export function searchLogs(
  lines: readonly LogLine[],
  query: string,
): { lines: LogLine[]; error: string | null } {
  const q = query.trim();
  if (!q) return { lines: [...lines], error: null };
  const re = /^\/(.+)\/([a-z]*)$/.exec(q);
  if (re) {
    let rx: RegExp;
    try {
      rx = new RegExp(re[1] ?? '', (re[2] ?? '').replace(/[gy]/g, ''));
    } catch (e) {
      return { lines: [], error: (e as Error).message };
    }
    return { lines: lines.filter((l) => rx.test(l.text)), error: null };
  }
  const lower = q.toLowerCase();
  return { lines: lines.filter((l) => l.text.toLowerCase().includes(lower)), error: null };
}

/** What a download of the log holds: one line each, the timestamp first when there is one. */
export function logsAsText(lines: readonly LogLine[]): string {
  return lines.map((l) => (l.time ? `${l.time} ${l.text}` : l.text)).join('\n') + (lines.length ? '\n' : '');
}

// ---------- stats ----------

export interface StatsSample {
  cpu: number;
  memUsed: number;
  memLimit: number;
  rx: number;
  tx: number;
  blkRead: number;
  blkWrite: number;
  pids: number;
}
interface RawStats {
  cpu_stats?: {
    cpu_usage?: { total_usage?: number; percpu_usage?: number[] };
    system_cpu_usage?: number;
    online_cpus?: number;
  };
  precpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number };
  memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number> };
  networks?: Record<string, { rx_bytes?: number; tx_bytes?: number }>;
  blkio_stats?: { io_service_bytes_recursive?: { op: string; value: number }[] | null };
  pids_stats?: { current?: number };
}

/** The figures `docker stats` shows, from one `GET /containers/{id}/stats` object. */
export function statsFrom(raw: unknown): StatsSample {
  const s = (raw ?? {}) as RawStats;
  const cpuDelta =
    finite(s.cpu_stats?.cpu_usage?.total_usage) - finite(s.precpu_stats?.cpu_usage?.total_usage);
  const sysDelta = finite(s.cpu_stats?.system_cpu_usage) - finite(s.precpu_stats?.system_cpu_usage);
  const cpus = finite(s.cpu_stats?.online_cpus) || s.cpu_stats?.cpu_usage?.percpu_usage?.length || 1;
  const cpu = sysDelta > 0 && cpuDelta > 0 ? (cpuDelta / sysDelta) * cpus * 100 : 0;
  const st = s.memory_stats?.stats ?? {};
  // cgroup v2: inactive_file; v1: total_inactive_file (what the CLI subtracts)
  const cache = Object.hasOwn(st, 'inactive_file')
    ? finite(st['inactive_file'])
    : Object.hasOwn(st, 'total_inactive_file')
      ? finite(st['total_inactive_file'])
      : 0;
  const usage = finite(s.memory_stats?.usage);
  let rx = 0;
  let tx = 0;
  for (const n of Object.values(s.networks ?? {})) {
    rx += finite(n.rx_bytes);
    tx += finite(n.tx_bytes);
  }
  let blkRead = 0;
  let blkWrite = 0;
  for (const e of s.blkio_stats?.io_service_bytes_recursive ?? []) {
    const op = e.op.toLowerCase();
    if (op === 'read') blkRead += finite(e.value);
    else if (op === 'write') blkWrite += finite(e.value);
  }
  return {
    cpu,
    memUsed: Math.max(0, usage - cache),
    memLimit: finite(s.memory_stats?.limit),
    rx,
    tx,
    blkRead,
    blkWrite,
    pids: finite(s.pids_stats?.current),
  };
}

// ---------- images in use, dangling ----------

export function isDangling(img: DockerImage): boolean {
  return !img.RepoTags?.length || img.RepoTags.every((t) => t === '<none>:<none>');
}

/** How many containers (any state) use each image id. */
export function imageUse(containers: readonly DockerContainer[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const c of containers) m.set(c.ImageID, (m.get(c.ImageID) ?? 0) + 1);
  return m;
}

// ---------- prune preview ----------

const BUILTIN_NETWORKS = new Set(['bridge', 'host', 'none']);
export interface PrunePreview {
  containers: DockerContainer[];
  images: DockerImage[];
  networks: DockerNetwork[];
  volumes: DockerVolume[];
  /** bytes the images and volumes free, as far as the lists say */
  bytes: number;
}

/**
 * What `POST /{containers,images,networks,volumes}/prune` would remove, from the lists (the Engine
 * API v1.41 rules): stopped containers (exited, created, dead); images that are dangling (or, with
 * `allImages`, every image no container uses) and that no container uses; networks no container is
 * on, except bridge/host/none; local volumes no container mounts (with API 1.41 named ones too).
 * Containers pruned free their images/networks/volumes only on the next prune, as the Engine does.
 */
export function prunePreview(
  lists: {
    containers: readonly DockerContainer[];
    images: readonly DockerImage[];
    networks: readonly DockerNetwork[];
    volumes: readonly DockerVolume[];
  },
  allImages = false,
): PrunePreview {
  const containers = lists.containers.filter(
    (c) => c.State === 'exited' || c.State === 'created' || c.State === 'dead',
  );
  const usedImages = new Set(lists.containers.map((c) => c.ImageID));
  const images = lists.images.filter((i) => !usedImages.has(i.Id) && (allImages || isDangling(i)));
  const usedNets = new Set<string>();
  for (const c of lists.containers)
    for (const [name, n] of Object.entries(c.NetworkSettings?.Networks ?? {})) {
      usedNets.add(name);
      if (n.NetworkID) usedNets.add(n.NetworkID);
    }
  const networks = lists.networks.filter(
    (n) =>
      !BUILTIN_NETWORKS.has(n.Name) && !usedNets.has(n.Name) && !usedNets.has(n.Id) && n.Scope !== 'swarm',
  );
  const usedVolumes = new Set<string>();
  for (const c of lists.containers)
    for (const m of c.Mounts ?? []) if (m.Type === 'volume' && m.Name) usedVolumes.add(m.Name);
  const volumes = lists.volumes.filter((v) => v.Driver === 'local' && !usedVolumes.has(v.Name));
  const bytes =
    images.reduce((a, i) => a + finite(i.Size), 0) +
    volumes.reduce((a, v) => a + finite(v.UsageData?.Size), 0);
  return { containers, images, networks, volumes, bytes };
}

// ---------- the create wizard ----------

/**
 * A command line split into arguments as a POSIX shell would for plain words and quotes (no
 * variables, globs or escapes beyond `\x`): `sh -c "echo hi"` → ['sh', '-c', 'echo hi']. A JSON array
 * is taken as it is. Unbalanced quotes are an error.
 */
export function splitCommand(input: string): string[] {
  const s = input.trim();
  if (!s) return [];
  if (s.startsWith('[')) {
    const v: unknown = JSON.parse(s);
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
      throw new Error('a JSON array of strings');
    return v as string[];
  }
  const out: string[] = [];
  let cur = '';
  let has = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i] as string;
    if (quote) {
      if (ch === quote) quote = null;
      else if (ch === '\\' && quote === '"' && i + 1 < s.length) cur += s[++i];
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      has = true;
    } else if (ch === '\\' && i + 1 < s.length) {
      cur += s[++i];
      has = true;
    } else if (/\s/.test(ch)) {
      if (has || cur) out.push(cur);
      cur = '';
      has = false;
    } else cur += ch;
  }
  if (quote) throw new Error(`unbalanced ${quote}`);
  if (has || cur) out.push(cur);
  return out;
}

export interface PortRow {
  host: string;
  container: string;
  protocol: 'tcp' | 'udp';
  hostIp: string;
}
export interface MountRow {
  /** 'volume': a named volume (created when missing); 'bind': a host path */
  type: 'volume' | 'bind';
  source: string;
  target: string;
  readOnly: boolean;
}
export interface KeyValue {
  key: string;
  value: string;
}
export interface CreateForm {
  image: string;
  name: string;
  command: string;
  entrypoint: string;
  env: KeyValue[];
  ports: PortRow[];
  mounts: MountRow[];
  network: string;
  restart: 'no' | 'always' | 'unless-stopped' | 'on-failure';
  maxRetries: string;
  memoryMiB: string;
  cpus: string;
  labels: KeyValue[];
  tty: boolean;
  start: boolean;
}
export const emptyCreateForm = (): CreateForm => ({
  image: '',
  name: '',
  command: '',
  entrypoint: '',
  env: [],
  ports: [],
  mounts: [],
  network: '',
  restart: 'no',
  maxRetries: '',
  memoryMiB: '',
  cpus: '',
  labels: [],
  tty: false,
  start: true,
});

export interface CreateRequest {
  /** the `name` query parameter ('' = let the Engine pick) */
  name: string;
  body: Record<string, unknown>;
}
export type CreateErrors = Partial<
  Record<
    keyof CreateForm | `ports.${number}` | `mounts.${number}` | `env.${number}` | `labels.${number}`,
    string
  >
>;

const NAME_RE = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const ENV_KEY = /^[^=\s]+$/;

function port(v: string): number | null {
  if (!/^\d{1,5}$/.test(v.trim())) return null;
  const n = Number(v.trim());
  return n >= 1 && n <= 65535 ? n : null;
}

/**
 * The wizard's form checked and turned into `POST /containers/create?name=…` with its body (the
 * Engine API v1.41 ContainerConfig + HostConfig). Errors per field; `request` is null when any.
 */
export function buildCreateRequest(f: CreateForm): { request: CreateRequest | null; errors: CreateErrors } {
  const errors: CreateErrors = {};
  if (!f.image.trim()) errors.image = 'Pick or type an image';
  if (f.name && (!NAME_RE.test(f.name) || f.name.length > 128))
    errors.name = 'Letters, digits, _ . - (starting with a letter or digit), at most 128';
  let cmd: string[] = [];
  let entrypoint: string[] = [];
  try {
    cmd = splitCommand(f.command);
  } catch (e) {
    errors.command = `Cannot split the command: ${(e as Error).message}`;
  }
  try {
    entrypoint = splitCommand(f.entrypoint);
  } catch (e) {
    errors.entrypoint = `Cannot split the entrypoint: ${(e as Error).message}`;
  }
  const env: string[] = [];
  f.env.forEach((kv, i) => {
    if (!kv.key && !kv.value) return;
    if (!ENV_KEY.test(kv.key)) errors[`env.${i}`] = 'A name without = or spaces';
    else env.push(`${kv.key}=${kv.value}`);
  });
  const labels: Record<string, string> = {};
  f.labels.forEach((kv, i) => {
    if (!kv.key && !kv.value) return;
    if (!kv.key.trim()) errors[`labels.${i}`] = 'A label needs a key';
    else labels[kv.key.trim()] = kv.value;
  });
  const exposed: Record<string, Record<string, never>> = {};
  const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  f.ports.forEach((p, i) => {
    if (!p.container && !p.host) return;
    const c = port(p.container);
    const h = p.host.trim() ? port(p.host) : 0;
    if (c === null || h === null) {
      errors[`ports.${i}`] = 'Ports are 1–65535';
      return;
    }
    const key = `${c}/${p.protocol}`;
    exposed[key] = {};
    const list = bindings[key] ?? [];
    list.push({ HostIp: p.hostIp.trim(), HostPort: h ? String(h) : '' });
    bindings[key] = list;
  });
  const mounts: Record<string, unknown>[] = [];
  f.mounts.forEach((m, i) => {
    if (!m.source && !m.target) return;
    if (!m.target.startsWith('/')) errors[`mounts.${i}`] = 'The container path is absolute';
    else if (m.type === 'bind' && !m.source.startsWith('/'))
      errors[`mounts.${i}`] = 'A bind mount needs an absolute host path';
    else if (m.type === 'volume' && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(m.source))
      errors[`mounts.${i}`] = 'A volume name';
    else mounts.push({ Type: m.type, Source: m.source, Target: m.target, ReadOnly: m.readOnly });
  });
  let memory = 0;
  if (f.memoryMiB.trim()) {
    const n = Number(f.memoryMiB);
    if (!Number.isFinite(n) || n < 6 || n > 16 * 1024 * 1024)
      errors.memoryMiB = 'At least 6 MiB (the Engine’s minimum)';
    else memory = Math.round(n * 1024 * 1024);
  }
  let nanoCpus = 0;
  if (f.cpus.trim()) {
    const n = Number(f.cpus);
    if (!Number.isFinite(n) || n <= 0 || n > 1024) errors.cpus = 'A number of CPUs such as 0.5 or 2';
    else nanoCpus = Math.round(n * 1e9);
  }
  let retries = 0;
  if (f.restart === 'on-failure' && f.maxRetries.trim()) {
    const n = Number(f.maxRetries);
    if (!Number.isInteger(n) || n < 0 || n > 1000) errors.maxRetries = '0–1000';
    else retries = n;
  }
  if (Object.keys(errors).length) return { request: null, errors };
  const hostConfig: Record<string, unknown> = {
    RestartPolicy: { Name: f.restart === 'no' ? '' : f.restart, MaximumRetryCount: retries },
  };
  if (Object.keys(bindings).length) hostConfig['PortBindings'] = bindings;
  if (mounts.length) hostConfig['Mounts'] = mounts;
  if (f.network) hostConfig['NetworkMode'] = f.network;
  if (memory) hostConfig['Memory'] = memory;
  if (nanoCpus) hostConfig['NanoCpus'] = nanoCpus;
  const body: Record<string, unknown> = { Image: f.image.trim(), HostConfig: hostConfig };
  if (cmd.length) body['Cmd'] = cmd;
  if (entrypoint.length) body['Entrypoint'] = entrypoint;
  if (env.length) body['Env'] = env;
  if (Object.keys(exposed).length) body['ExposedPorts'] = exposed;
  if (Object.keys(labels).length) body['Labels'] = labels;
  if (f.tty) {
    body['Tty'] = true;
    body['OpenStdin'] = true;
  }
  return { request: { name: f.name.replace(/^\//, ''), body }, errors };
}

// ---------- events ----------

export interface DockerEvent {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
  timeNano?: number;
}

/** One line of the events stream as people read it: `container start web (busybox)`. */
export function describeEvent(e: DockerEvent): string {
  const attrs = e.Actor?.Attributes ?? {};
  const name = own(attrs, 'name') ?? shortId(e.Actor?.ID ?? '');
  const image = own(attrs, 'image');
  return `${e.Type ?? '?'} ${e.Action ?? '?'} ${name}${image && image !== name ? ` (${image})` : ''}`;
}

/**
 * `ref` (name[:tag]) moved to registry `host`: its own registry part (a first component with
 * `.`/`:` or `localhost`) replaced; Docker Hub (`docker.io`) is no prefix. For pushing a local
 * image to a chosen registry.
 */
export function retarget(ref: string, host: string): string {
  const slash = ref.indexOf('/');
  const first = slash < 0 ? '' : ref.slice(0, slash);
  const rest =
    first && (first.includes('.') || first.includes(':') || first === 'localhost')
      ? ref.slice(slash + 1)
      : ref;
  return host === 'docker.io' ? rest : `${host}/${rest}`;
}

/** `ref` split into the push path's name and its tag (default `latest`). */
export function splitTag(ref: string): { name: string; tag: string } {
  const colon = ref.lastIndexOf(':');
  const hasTag = colon > ref.lastIndexOf('/');
  return hasTag ? { name: ref.slice(0, colon), tag: ref.slice(colon + 1) } : { name: ref, tag: 'latest' };
}
