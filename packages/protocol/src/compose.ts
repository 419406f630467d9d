/**
 * Compose stacks (issue 11; docs/contracts.md "Compose stacks"): a stated subset of the
 * compose-spec, parsed here (YAML 1.2, zod) into a plan of Docker Engine API bodies. The Panel
 * runs the Docker relay's policy over exactly these bodies and sends the plan to the Agent, which
 * creates them through the Engine API (no external docker-compose: the Agent ships as one
 * executable and as an image, and Debian's docker-compose 1.29 is Python and EOL upstream).
 *
 * A key outside the subset is REFUSED (STACK_UNSUPPORTED, `details.keys` lists every one), never
 * ignored. Containers, networks and volumes carry Compose's own labels
 * (com.docker.compose.project/service/container-number/config-hash/oneoff, network, volume), so
 * `docker-compose -p <name> ps` and other tools recognise them.
 */
import { createHash } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { CodedError } from './errors.ts';
import {
  COMPOSE_LABELS,
  STACK_MAX_BYTES,
  StackName,
  type StackNetworkPlan,
  type StackPlan,
  type StackServicePlan,
  type StackVolumePlan,
} from './stacks.ts';

const Key = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'a name: [A-Za-z0-9][A-Za-z0-9_.-]*');
const Str = z.string().max(65536);
const Scalar = z.union([Str, z.number().finite(), z.boolean()]);
const StrList = z.array(Str).max(4096);
const Command = z.union([Str, StrList]);
const KeyValues = z.union([
  z.record(z.string().min(1).max(4096), Scalar.nullable()),
  z.array(z.string().max(65536)).max(4096),
]);
const Duration = z.union([
  z.string().regex(/^(\d+(\.\d+)?(us|ms|s|m|h))+$/, 'a duration (1m30s)'),
  z.number(),
]);
const Bytes = z.union([z.string().regex(/^\d+(\.\d+)?\s*[bkmgBKMG]?[bB]?$/, 'a size (512m)'), z.number()]);

const PortLong = z.strictObject({
  target: z.number().int().min(1).max(65535),
  published: z.union([z.number().int().min(0).max(65535), z.string().regex(/^\d{1,5}$/)]).optional(),
  protocol: z.enum(['tcp', 'udp', 'sctp']).optional(),
  host_ip: z.string().max(64).optional(),
});
const VolumeLong = z.strictObject({
  type: z.enum(['volume', 'bind']),
  source: z.string().min(1).max(4096),
  target: z.string().min(1).max(4096),
  read_only: z.boolean().optional(),
});

const Service = z.strictObject({
  image: z.string().min(1).max(512),
  command: Command.optional(),
  entrypoint: Command.optional(),
  environment: KeyValues.optional(),
  labels: KeyValues.optional(),
  ports: z
    .array(z.union([z.string().max(128), z.number().int(), PortLong]))
    .max(1024)
    .optional(),
  volumes: z
    .array(z.union([z.string().max(8192), VolumeLong]))
    .max(256)
    .optional(),
  networks: z
    .union([
      z.array(Key).max(64),
      z.record(Key, z.strictObject({ aliases: z.array(Key).max(64).optional() }).nullable()),
    ])
    .optional(),
  network_mode: z.string().max(256).optional(),
  restart: z
    .string()
    .regex(
      /^(no|always|unless-stopped|on-failure(:\d{1,4})?)$/,
      'no, always, unless-stopped or on-failure[:N]',
    )
    .optional(),
  depends_on: z
    .union([
      z.array(Key).max(256),
      z.record(Key, z.strictObject({ condition: z.literal('service_started').optional() })),
    ])
    .optional(),
  healthcheck: z
    .strictObject({
      test: z.union([Str, StrList]).optional(),
      interval: Duration.optional(),
      timeout: Duration.optional(),
      retries: z.number().int().min(0).max(1000).optional(),
      start_period: Duration.optional(),
      disable: z.boolean().optional(),
    })
    .optional(),
  deploy: z
    .strictObject({
      resources: z
        .strictObject({
          limits: z
            .strictObject({
              cpus: z.union([z.number().min(0.01).max(1024), z.string().regex(/^\d+(\.\d+)?$/)]).optional(),
              memory: Bytes.optional(),
            })
            .optional(),
        })
        .optional(),
    })
    .optional(),
  privileged: z.boolean().optional(),
  cap_add: z.array(z.string().max(64)).max(64).optional(),
  cap_drop: z.array(z.string().max(64)).max(64).optional(),
  user: z.string().max(256).optional(),
  working_dir: z.string().max(4096).optional(),
  hostname: z.string().max(253).optional(),
  tty: z.boolean().optional(),
  stdin_open: z.boolean().optional(),
  stop_signal: z.string().max(32).optional(),
});

const Labels = KeyValues.optional();
const TopNetwork = z
  .strictObject({
    driver: z.enum(['bridge', 'overlay', 'macvlan', 'ipvlan', 'none']).optional(),
    internal: z.boolean().optional(),
    labels: Labels,
    external: z.boolean().optional(),
    name: z.string().max(128).optional(),
  })
  .nullable();
const TopVolume = z
  .strictObject({
    driver: z.string().max(128).optional(),
    driver_opts: z.record(z.string().max(256), Scalar).optional(),
    labels: Labels,
    external: z.boolean().optional(),
    name: z.string().max(255).optional(),
  })
  .nullable();

const Compose = z
  .strictObject({
    /** obsolete in the spec; accepted and unused */
    version: z.union([z.string().max(16), z.number()]).optional(),
    name: z.string().max(63).optional(),
    services: z.record(Key, Service),
    networks: z.record(Key, TopNetwork).optional(),
    volumes: z.record(Key, TopVolume).optional(),
  })
  // extension fields (`x-…`) are the spec's way to carry what no tool reads
  .catchall(z.unknown());

const invalid = (message: string): never => {
  throw new CodedError('VALIDATION_FAILED', message);
};

function unrecognized(issues: readonly z.core.$ZodIssue[]): string[] {
  const out: string[] = [];
  const walk = (list: readonly z.core.$ZodIssue[], prefix: (string | number | symbol)[]) => {
    for (const i of list) {
      const at = [...prefix, ...i.path];
      if (i.code === 'unrecognized_keys') for (const k of i.keys) out.push([...at, k].map(String).join('.'));
      if (i.code === 'invalid_union') for (const e of i.errors) walk(e, at);
    }
  };
  walk(issues, []);
  return [...new Set(out)].sort();
}

/** "K=V" lists and maps alike; YAML scalars become strings (as Compose does). */
function keyValues(v: z.infer<typeof KeyValues> | undefined, what: string): [string, string | null][] {
  if (!v) return [];
  if (Array.isArray(v))
    return v.map((s) => {
      const i = s.indexOf('=');
      if (i === 0) invalid(`${what}: "${s}" has no name`);
      return i < 0 ? [s, null] : [s.slice(0, i), s.slice(i + 1)];
    });
  return Object.entries(v).map(([k, x]) => [k, x === null ? null : String(x)]);
}

/** A command string split the way a POSIX shell splits words (quotes, backslashes; no expansion). */
export function splitWords(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let has = false;
  let q: '"' | "'" | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (q === "'") {
      if (c === "'") q = null;
      else cur += c;
    } else if (q === '"') {
      if (c === '"') q = null;
      else if (c === '\\' && i + 1 < s.length && '"\\$`'.includes(s[i + 1] as string)) cur += s[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      q = c;
      has = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      has = true;
    } else if (/\s/.test(c)) {
      if (has || cur) out.push(cur);
      cur = '';
      has = false;
    } else cur += c;
  }
  if (q) invalid(`unterminated quote in "${s.slice(0, 80)}"`);
  if (has || cur) out.push(cur);
  return out;
}

const cmd = (v: string | string[] | undefined) =>
  v === undefined ? undefined : typeof v === 'string' ? splitWords(v) : v;

function nanos(d: string | number | undefined): number | undefined {
  if (d === undefined) return undefined;
  if (typeof d === 'number') return Math.round(d * 1e9);
  const unit: Record<string, number> = { us: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  let n = 0;
  for (const m of d.matchAll(/(\d+(?:\.\d+)?)(us|ms|s|m|h)/g))
    n += Number(m[1]) * (unit[m[2] as string] ?? 0);
  return Math.round(n);
}

function bytes(b: string | number | undefined): number | undefined {
  if (b === undefined) return undefined;
  if (typeof b === 'number') return b;
  const m = /^(\d+(?:\.\d+)?)\s*([bkmg]?)b?$/i.exec(b);
  const mult: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
  return Math.round(Number(m?.[1] ?? 0) * (mult[(m?.[2] ?? '').toLowerCase()] ?? 1));
}

/** Compose's short port syntax: [[ip:]published:]target[/proto]; ranges are not in the subset. */
function port(p: string | number | z.infer<typeof PortLong>): {
  key: string;
  ip: string;
  published: string;
} {
  if (typeof p === 'object') {
    const proto = p.protocol ?? 'tcp';
    return {
      key: `${p.target}/${proto}`,
      ip: p.host_ip ?? '',
      published: p.published === undefined ? '' : String(p.published),
    };
  }
  const s = String(p);
  const m = /^(?:(?:\[?([0-9a-fA-F.:]+?)\]?:)?(\d{1,5})?:)?(\d{1,5})(?:\/(tcp|udp|sctp))?$/.exec(s);
  if (!m)
    return invalid(`ports: "${s}" is not [[ip:]published:]target[/protocol] (ranges are not supported)`);
  const target = Number(m[3]);
  if (target < 1 || target > 65535 || Number(m[2] ?? 0) > 65535) invalid(`ports: "${s}" is out of range`);
  return { key: `${target}/${m[4] ?? 'tcp'}`, ip: m[1] ?? '', published: m[2] ?? '' };
}

/** Sorted keys all the way down: the config hash must not depend on key order. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v).sort()) out[k] = canonical((v as Record<string, unknown>)[k]);
  return out;
}

function order(services: Map<string, string[]>): string[] {
  const out: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (s: string, path: string[]) => {
    const st = state.get(s);
    if (st === 'done') return;
    if (st === 'visiting') invalid(`depends_on has a cycle: ${[...path, s].join(' → ')}`);
    state.set(s, 'visiting');
    for (const d of services.get(s) ?? []) {
      if (!services.has(d)) invalid(`services.${s}.depends_on: no service "${d}"`);
      visit(d, [...path, s]);
    }
    state.set(s, 'done');
    out.push(s);
  };
  for (const s of [...services.keys()].sort()) visit(s, []);
  return out;
}

/**
 * The compose text → the plan. VALIDATION_FAILED for what is not compose (bad YAML, wrong types,
 * unknown references, cycles), STACK_UNSUPPORTED listing every key outside the subset.
 */
export function planStack(project: string, text: string): StackPlan {
  if (new TextEncoder().encode(text).length > STACK_MAX_BYTES)
    throw new CodedError('PAYLOAD_TOO_LARGE', `a compose file is at most ${STACK_MAX_BYTES} bytes`);
  const name = StackName.safeParse(project);
  if (!name.success) invalid(name.error.issues[0]?.message ?? 'a stack name');
  let doc: unknown;
  try {
    // aliases are capped (a billion-laughs file is refused, not expanded)
    doc = parseYaml(text, { maxAliasCount: 100, uniqueKeys: true, merge: true });
  } catch (e) {
    invalid(`the compose file is not YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  const top =
    doc !== null && typeof doc === 'object' && !Array.isArray(doc)
      ? Object.keys(doc).filter(
          (k) => !['version', 'name', 'services', 'networks', 'volumes'].includes(k) && !k.startsWith('x-'),
        )
      : [];
  const r = Compose.safeParse(doc);
  const keys = [...new Set([...top, ...(r.success ? [] : unrecognized(r.error.issues))])].sort();
  if (keys.length > 0)
    throw new CodedError(
      'STACK_UNSUPPORTED',
      `not in the supported compose subset (refused, not ignored): ${keys.join(', ')}`,
      { details: { keys } },
    );
  if (!r.success) {
    const i = r.error.issues[0];
    invalid(`compose ${i?.path.join('.') || 'file'}: ${i?.message ?? 'invalid'}`);
  }
  const c = (r as { data: z.infer<typeof Compose> }).data;
  if (c.name !== undefined && c.name !== project)
    invalid(`the file's name "${c.name}" is not the stack's name "${project}"`);
  const services = Object.entries(c.services);
  if (services.length === 0) invalid('a stack has at least one service');

  const projectLabel = { [COMPOSE_LABELS.project]: project };
  const networks = new Map<string, z.infer<typeof StackNetworkPlan>>();
  const addNetwork = (key: string, def: z.infer<typeof TopNetwork> | undefined) => {
    const external = def?.external === true;
    const nname = def?.name ?? (external ? key : `${project}_${key}`);
    networks.set(key, {
      key,
      name: nname,
      external,
      create: {
        Name: nname,
        Driver: def?.driver ?? 'bridge',
        Internal: def?.internal ?? false,
        CheckDuplicate: true,
        Labels: {
          ...Object.fromEntries(keyValues(def?.labels, `networks.${key}.labels`)),
          ...projectLabel,
          [COMPOSE_LABELS.network]: key,
        },
      },
    });
  };
  for (const [k, def] of Object.entries(c.networks ?? {})) addNetwork(k, def);
  const volumes = new Map<string, z.infer<typeof StackVolumePlan>>();
  for (const [key, def] of Object.entries(c.volumes ?? {})) {
    const external = def?.external === true;
    const vname = def?.name ?? (external ? key : `${project}_${key}`);
    volumes.set(key, {
      key,
      name: vname,
      external,
      create: {
        Name: vname,
        Driver: def?.driver ?? 'local',
        DriverOpts: Object.fromEntries(
          Object.entries(def?.driver_opts ?? {}).map(([k, v]) => [k, String(v)]),
        ),
        Labels: {
          ...Object.fromEntries(keyValues(def?.labels, `volumes.${key}.labels`)),
          ...projectLabel,
          [COMPOSE_LABELS.volume]: key,
        },
      },
    });
  }

  const deps = new Map<string, string[]>();
  for (const [s, def] of services)
    deps.set(s, Array.isArray(def.depends_on) ? def.depends_on : Object.keys(def.depends_on ?? {}));
  const plans: z.infer<typeof StackServicePlan>[] = [];
  for (const s of order(deps)) {
    const def = c.services[s] as z.infer<typeof Service>;
    const at = `services.${s}`;
    // networks: the service's, or the project's default one
    let nets: [string, string[]][] = [];
    if (def.network_mode !== undefined) {
      if (def.networks) invalid(`${at}: network_mode and networks exclude each other`);
      if (/^service:/.test(def.network_mode)) invalid(`${at}.network_mode: service: is not supported`);
    } else {
      nets = Array.isArray(def.networks)
        ? def.networks.map((n) => [n, []])
        : def.networks
          ? Object.entries(def.networks).map(([n, o]) => [n, o?.aliases ?? []])
          : [['default', []]];
      for (const [n] of nets) {
        if (n === 'default' && !networks.has('default')) addNetwork('default', undefined);
        if (!networks.has(n)) invalid(`${at}.networks: "${n}" is not declared under the top-level networks`);
      }
    }
    const binds: string[] = [];
    for (const v of def.volumes ?? []) {
      let type: 'volume' | 'bind';
      let source: string;
      let target: string;
      let ro = false;
      if (typeof v === 'string') {
        const parts = v.split(':');
        if (parts.length === 1) invalid(`${at}.volumes: "${v}" (anonymous volumes are not supported)`);
        if (parts.length > 3) invalid(`${at}.volumes: "${v}" is not source:target[:ro|rw]`);
        source = parts[0] as string;
        target = parts[1] as string;
        const mode = parts[2];
        if (mode !== undefined && mode !== 'ro' && mode !== 'rw')
          invalid(`${at}.volumes: "${v}" mode must be ro or rw`);
        ro = mode === 'ro';
        type = source.startsWith('/') || source.startsWith('.') || source.startsWith('~') ? 'bind' : 'volume';
      } else {
        ({ type, source, target } = v);
        ro = v.read_only === true;
      }
      if (!target.startsWith('/')) invalid(`${at}.volumes: the target "${target}" must be absolute`);
      if (type === 'bind') {
        // there is no project directory on the node: a relative path means nothing there
        if (!source.startsWith('/')) invalid(`${at}.volumes: a bind's source "${source}" must be absolute`);
        binds.push(`${source}:${target}${ro ? ':ro' : ''}`);
      } else {
        const vol = volumes.get(source);
        if (!vol) invalid(`${at}.volumes: "${source}" is not declared under the top-level volumes`);
        binds.push(`${(vol as { name: string }).name}:${target}${ro ? ':ro' : ''}`);
      }
    }
    const bindings = new Map<string, { HostIp: string; HostPort: string }[]>();
    for (const p of def.ports ?? []) {
      const { key, ip, published } = port(p);
      bindings.set(key, [...(bindings.get(key) ?? []), { HostIp: ip, HostPort: published }]);
    }
    const exposed = Object.fromEntries([...bindings.keys()].map((k) => [k, {}]));
    const restart = def.restart ?? 'no';
    const [rname, rmax] = restart.split(':');
    const limits = def.deploy?.resources?.limits;
    const hc = def.healthcheck;
    const first = nets[0];
    const firstNet = first ? networks.get(first[0]) : undefined;
    const userLabels = keyValues(def.labels, `${at}.labels`);
    for (const [k] of userLabels)
      if (k.startsWith('com.docker.compose.')) invalid(`${at}.labels: "${k}" is Compose's own`);
    const create: Record<string, unknown> = {
      Image: def.image,
      ...(def.command !== undefined ? { Cmd: cmd(def.command) } : {}),
      ...(def.entrypoint !== undefined ? { Entrypoint: cmd(def.entrypoint) } : {}),
      Env: keyValues(def.environment, `${at}.environment`)
        .filter(([, v]) => v !== null)
        .map(([k, v]) => `${k}=${v}`)
        .sort(),
      ExposedPorts: exposed,
      ...(def.user !== undefined ? { User: def.user } : {}),
      ...(def.working_dir !== undefined ? { WorkingDir: def.working_dir } : {}),
      ...(def.hostname !== undefined ? { Hostname: def.hostname } : {}),
      ...(def.tty !== undefined ? { Tty: def.tty } : {}),
      ...(def.stdin_open !== undefined ? { OpenStdin: def.stdin_open } : {}),
      ...(def.stop_signal !== undefined ? { StopSignal: def.stop_signal } : {}),
      ...(hc
        ? {
            Healthcheck: hc.disable
              ? { Test: ['NONE'] }
              : {
                  ...(hc.test !== undefined
                    ? { Test: typeof hc.test === 'string' ? ['CMD-SHELL', hc.test] : hc.test }
                    : {}),
                  ...(hc.interval !== undefined ? { Interval: nanos(hc.interval) } : {}),
                  ...(hc.timeout !== undefined ? { Timeout: nanos(hc.timeout) } : {}),
                  ...(hc.retries !== undefined ? { Retries: hc.retries } : {}),
                  ...(hc.start_period !== undefined ? { StartPeriod: nanos(hc.start_period) } : {}),
                },
          }
        : {}),
      HostConfig: {
        Binds: binds,
        PortBindings: Object.fromEntries(bindings),
        RestartPolicy: { Name: rname, ...(rmax !== undefined ? { MaximumRetryCount: Number(rmax) } : {}) },
        NetworkMode: def.network_mode ?? firstNet?.name ?? 'bridge',
        ...(def.privileged !== undefined ? { Privileged: def.privileged } : {}),
        ...(def.cap_add !== undefined ? { CapAdd: def.cap_add } : {}),
        ...(def.cap_drop !== undefined ? { CapDrop: def.cap_drop } : {}),
        ...(limits?.cpus !== undefined ? { NanoCpus: Math.round(Number(limits.cpus) * 1e9) } : {}),
        ...(limits?.memory !== undefined ? { Memory: bytes(limits.memory) } : {}),
      },
      ...(first && firstNet
        ? { NetworkingConfig: { EndpointsConfig: { [firstNet.name]: { Aliases: [s, ...first[1]] } } } }
        : {}),
    };
    const connect = nets.slice(1).map(([n, aliases]) => ({
      name: (networks.get(n) as { name: string }).name,
      aliases: [s, ...aliases],
    }));
    // the hash covers what the container is made from: its body, its networks, its volumes' names
    const hash = createHash('sha256')
      .update(JSON.stringify(canonical({ create, connect })))
      .digest('hex');
    const dependsOn = deps.get(s) ?? [];
    create.Labels = {
      ...Object.fromEntries(userLabels.map(([k, v]) => [k, v ?? ''])),
      ...projectLabel,
      [COMPOSE_LABELS.service]: s,
      [COMPOSE_LABELS.number]: '1',
      [COMPOSE_LABELS.oneoff]: 'False',
      [COMPOSE_LABELS.hash]: hash,
      [COMPOSE_LABELS.version]: '1.29.2',
      ...(dependsOn.length > 0 ? { [COMPOSE_LABELS.dependsOn]: dependsOn.join(',') } : {}),
    };
    plans.push({ name: s, container: `${project}-${s}-1`, hash, dependsOn, create, connect });
  }
  return { project, networks: [...networks.values()], volumes: [...volumes.values()], services: plans };
}
