/**
 * The Docker relay's policy (issue 11; Portainer's "security settings"): what only a Panel owner
 * may ask a node's Engine for. Refused with DOCKER_POLICY_DENIED (403), naming the rule:
 * privileged containers (and `unconfined` security options), host network/PID/IPC/UTS/userns
 * namespaces, bind mounts from outside the node's allow-list (Binds, Mounts, and local volumes
 * whose `device` option binds a host path), devices, added capabilities, the Docker socket
 * mounted, anything about the Agent's own container, privileged execs, devices through an update,
 * swarm services and plugins.
 *
 * The Engine (Go's encoding/json) matches JSON keys to fields without regard to case
 * (`"privileged"`, even `"Privıleged"`-style folds): every object is read through its keys
 * folded the same way, keys that fold alike are refused, and what is forwarded is the body as
 * parsed here, so the Engine reads what was checked.
 */
import path from 'node:path';
import { CodedError } from '@cap/protocol';
import { z } from 'zod';

export interface AgentContainer {
  id: string;
  /** without the leading "/" */
  name: string;
}

export interface PolicyContext {
  /** absolute host paths bind mounts may come from (below or at) */
  bindAllow: readonly string[];
  /** the Agent's own container, when it runs in one */
  agent?: AgentContainer | undefined;
}

const deny = (rule: string, message: string): never => {
  throw new CodedError('DOCKER_POLICY_DENIED', `${message} (policy: ${rule}; only a Panel owner may)`, {
    details: { rule },
  });
};

/** Go's case folding of a JSON key (ASCII and Unicode simple folds: ſ → S, K → K). */
export function foldKey(k: string): string {
  return k.toLowerCase().toUpperCase();
}

/**
 * The body's objects with their keys folded (recursively, arrays too) into Maps-free plain
 * objects made with a null prototype; two keys folding alike are refused.
 */
export function folded(v: unknown, depth = 0): unknown {
  if (depth > 64) throw new CodedError('VALIDATION_FAILED', 'the body is nested too deep');
  if (Array.isArray(v)) return v.map((x) => folded(x, depth + 1));
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = Object.create(null);
  for (const [k, x] of Object.entries(v)) {
    const f = foldKey(k);
    if (Object.hasOwn(out, f))
      throw new CodedError('VALIDATION_FAILED', `the keys "${k}" and another differ only in case`);
    out[f] = folded(x, depth + 1);
  }
  return out;
}

const Strs = z.array(z.string().max(65536)).max(4096).nullish();
const AnyList = z.array(z.unknown()).max(4096).nullish();
const Mode = z.string().max(4096).nullish();

const MountSpec = z
  .object({
    TYPE: z.string().max(64).nullish(),
    SOURCE: z.string().max(4096).nullish(),
    VOLUMEOPTIONS: z
      .object({
        DRIVERCONFIG: z
          .object({ OPTIONS: z.record(z.string(), z.string().max(65536)).nullish() })
          .passthrough()
          .nullish(),
      })
      .passthrough()
      .nullish(),
  })
  .passthrough();

const HostConfig = z
  .object({
    PRIVILEGED: z.boolean().nullish(),
    NETWORKMODE: Mode,
    PIDMODE: Mode,
    IPCMODE: Mode,
    UTSMODE: Mode,
    USERNSMODE: Mode,
    CGROUPNSMODE: Mode,
    BINDS: Strs,
    MOUNTS: z.array(MountSpec).max(4096).nullish(),
    DEVICES: AnyList,
    DEVICEREQUESTS: AnyList,
    DEVICECGROUPRULES: AnyList,
    CAPADD: Strs,
    SECURITYOPT: Strs,
    VOLUMESFROM: Strs,
    LINKS: Strs,
  })
  .passthrough();

const CreateBody = z
  .object({
    HOSTCONFIG: HostConfig.nullish(),
    // a volume declared by the image or here is anonymous (no host path): fine
  })
  .passthrough();

const ExecBody = z.object({ PRIVILEGED: z.boolean().nullish() }).passthrough();
const UpdateBody = z
  .object({ DEVICES: AnyList, DEVICEREQUESTS: AnyList, DEVICECGROUPRULES: AnyList })
  .passthrough();
const VolumeBody = z
  .object({ DRIVEROPTS: z.record(z.string(), z.string().max(65536)).nullish() })
  .passthrough();
const NetworkConnectBody = z.object({ CONTAINER: z.string().max(4096).nullish() }).passthrough();

function parse<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  const r = schema.safeParse(folded(body ?? {}));
  if (!r.success)
    throw new CodedError('VALIDATION_FAILED', `${what}: ${r.error.issues[0]?.message ?? 'invalid'}`);
  return r.data;
}

/** The Docker sockets a bind must never reach (the default paths; /var/run is /run on most hosts). */
const DOCKER_SOCKETS = ['/var/run/docker.sock', '/run/docker.sock'];

function isAgent(ref: string, agent: AgentContainer | undefined): boolean {
  if (!agent || ref === '') return false;
  const r = ref.replace(/^\//, '');
  if (r === agent.name) return true;
  // the Engine resolves any unique prefix of an id
  return /^[0-9a-f]+$/i.test(r) && agent.id.toLowerCase().startsWith(r.toLowerCase());
}

function checkHostPath(src: string, ctx: PolicyContext, what: string): void {
  if (!src.startsWith('/')) deny('bind-mounts', `${what}: a host path must be absolute`);
  const p = path.posix.normalize(src).replace(/(.)\/+$/, '$1');
  for (const sock of DOCKER_SOCKETS)
    if (sock === p || sock.startsWith(p === '/' ? '/' : `${p}/`) || p.endsWith('docker.sock'))
      deny('docker-socket', `${what}: ${p} reaches the Docker socket`);
  const allowed = ctx.bindAllow.some((a) => {
    const base = path.posix.normalize(a).replace(/(.)\/+$/, '$1');
    return p === base || p.startsWith(base === '/' ? '/' : `${base}/`);
  });
  if (!allowed) deny('bind-mounts', `${what}: ${p} is outside this node's bind allow-list`);
}

function checkMode(v: string | null | undefined, field: string, ctx: PolicyContext): void {
  if (!v) return;
  if (v === 'host') deny('host-namespaces', `HostConfig.${field} "host"`);
  const m = /^container:(.*)$/.exec(v);
  if (m && isAgent(m[1] as string, ctx.agent))
    deny('agent-container', `HostConfig.${field} joins the Agent's container`);
}

function checkCreate(body: unknown, ctx: PolicyContext): void {
  const b = parse(CreateBody, body, 'container create');
  const h = b.HOSTCONFIG;
  if (!h) return;
  if (h.PRIVILEGED === true) deny('privileged', 'HostConfig.Privileged');
  for (const o of h.SECURITYOPT ?? [])
    if (/unconfined|label[=:]disable/i.test(o)) deny('privileged', `HostConfig.SecurityOpt "${o}"`);
  checkMode(h.NETWORKMODE, 'NetworkMode', ctx);
  checkMode(h.PIDMODE, 'PidMode', ctx);
  checkMode(h.IPCMODE, 'IpcMode', ctx);
  checkMode(h.UTSMODE, 'UTSMode', ctx);
  checkMode(h.USERNSMODE, 'UsernsMode', ctx);
  checkMode(h.CGROUPNSMODE, 'CgroupnsMode', ctx);
  if (
    (h.DEVICES?.length ?? 0) > 0 ||
    (h.DEVICEREQUESTS?.length ?? 0) > 0 ||
    (h.DEVICECGROUPRULES?.length ?? 0) > 0
  )
    deny('devices', 'HostConfig.Devices, DeviceRequests or DeviceCgroupRules');
  if ((h.CAPADD?.length ?? 0) > 0) deny('capabilities', `HostConfig.CapAdd ${JSON.stringify(h.CAPADD)}`);
  for (const bind of h.BINDS ?? []) {
    // "source:target[:options]"; a source without "/" is a named volume
    const src = bind.split(':')[0] ?? '';
    if (src.startsWith('/') || src.startsWith('.') || src.startsWith('~'))
      checkHostPath(src, ctx, `bind ${src}`);
  }
  for (const m of h.MOUNTS ?? []) {
    const type = (m.TYPE ?? '').toLowerCase();
    if (type === 'bind') checkHostPath(m.SOURCE ?? '', ctx, `mount ${m.SOURCE ?? ''}`);
    else if (type === 'npipe') deny('bind-mounts', 'a named pipe mount');
    checkDriverOpts(m.VOLUMEOPTIONS?.DRIVERCONFIG?.OPTIONS ?? null, ctx);
  }
  for (const v of h.VOLUMESFROM ?? [])
    if (isAgent(v.split(':')[0] ?? '', ctx.agent))
      deny('agent-container', "VolumesFrom the Agent's container");
  for (const l of h.LINKS ?? [])
    if (isAgent(l.split(':')[0] ?? '', ctx.agent)) deny('agent-container', "a link to the Agent's container");
}

/** A local volume's `device` binds that host path (`o=bind`, or a device node for other types). */
function checkDriverOpts(opts: Record<string, string> | null | undefined, ctx: PolicyContext): void {
  if (!opts) return;
  for (const [k, v] of Object.entries(opts))
    if (k.toLowerCase() === 'device') checkHostPath(v, ctx, `a volume's device ${v}`);
}

/**
 * Throws DOCKER_POLICY_DENIED when the request needs an owner. `path` is the Engine path without
 * the version (enginePath), `body` the parsed JSON of the endpoints that are buffered.
 */
export function checkPolicy(
  method: string,
  p: string,
  query: string,
  body: unknown,
  ctx: PolicyContext,
): void {
  const seg = p.split('/').slice(1);
  if (seg[0] === 'containers' && seg[1] !== undefined && !['json', 'create', 'prune'].includes(seg[1]))
    if (isAgent(seg[1], ctx.agent)) deny('agent-container', "the Agent's own container");
  if (method === 'POST' && p === '/containers/create') checkCreate(body, ctx);
  if (method === 'POST' && /^\/containers\/[^/]+\/exec$/.test(p)) {
    if (parse(ExecBody, body, 'exec create').PRIVILEGED === true) deny('privileged', 'a privileged exec');
  }
  if (method === 'POST' && /^\/containers\/[^/]+\/update$/.test(p)) {
    const u = parse(UpdateBody, body, 'container update');
    if (
      (u.DEVICES?.length ?? 0) > 0 ||
      (u.DEVICEREQUESTS?.length ?? 0) > 0 ||
      (u.DEVICECGROUPRULES?.length ?? 0) > 0
    )
      deny('devices', 'devices through an update');
  }
  if (method === 'POST' && p === '/volumes/create')
    checkDriverOpts(parse(VolumeBody, body, 'volume create').DRIVEROPTS, ctx);
  if (method === 'POST' && /^\/networks\/[^/]+\/(connect|disconnect)$/.test(p)) {
    const c = parse(NetworkConnectBody, body, 'network connect').CONTAINER ?? '';
    if (isAgent(c, ctx.agent)) deny('agent-container', "the Agent's own container");
  }
  if (method === 'POST' && p === '/commit') {
    const container = new URLSearchParams(query).get('container') ?? '';
    if (isAgent(container, ctx.agent)) deny('agent-container', "a commit of the Agent's own container");
  }
  if (method === 'POST' && p === '/build') {
    const q = new URLSearchParams(query);
    if ((q.get('networkmode') ?? '') === 'host') deny('host-namespaces', 'a build on the host network');
  }
  if (method !== 'GET' && method !== 'HEAD' && (seg[0] === 'services' || seg[0] === 'plugins'))
    deny('swarm-and-plugins', 'changing swarm services or plugins');
}
