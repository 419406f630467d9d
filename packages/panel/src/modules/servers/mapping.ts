/**
 * Rows to API objects and to what the Agent runs: a stored server (with its template and
 * allocation) → the `Server` answer, the `EggConfig` sent to the Agent, its hidden values.
 * Pure functions: what is live (status, stats, node presence) is passed in.
 */
import {
  type DonePattern,
  type EggConfig,
  type Limits,
  type Ports,
  type ResourceSnapshot,
  ServerStatus,
  sizeToBytes,
} from '@cap/protocol';
import {
  displayStartup,
  fillStartup,
  systemEnvironment,
  type Template,
  templateToEggConfig,
  visibleVariables,
} from '@cap/protocol/templates/index.ts';
import type { z } from 'zod';
import type { ServersTable } from '../../db/schema.ts';
import { secretValues } from '../../lib/redact.ts';
import type { Allocation } from '../allocations/service.ts';
import { DesiredState, type Server, type Viewer } from './schemas.ts';

export type Loaded = {
  row: ServersTable;
  template: Template | undefined;
  allocation: Allocation | undefined;
  /** the node's public address (where players reach it); null/absent = not set */
  nodeAddress?: string | null;
};

/**
 * The address players use for the primary allocation: its own IP when it binds one, else the
 * node's public address; never the 0.0.0.0 / :: it binds (null when neither is known).
 */
export function playerAddress(
  a: Allocation | undefined,
  nodeAddress: string | null | undefined,
): string | null {
  if (!a) return null;
  const any = a.ip === '0.0.0.0' || a.ip === '::';
  const host = any ? nodeAddress : a.ip;
  if (!host) return null;
  return `${host.includes(':') ? `[${host}]` : host}:${a.port}`;
}

/** What is live about a server (not in its row): read from the live store and the gateway. */
export interface LiveView {
  status: ServerStatus | undefined;
  stats: ResourceSnapshot | null;
  nodeOnline: boolean;
}

export function parseJson<T>(s: string | null, fallback: T): T {
  if (s === null) return fallback;
  try {
    return JSON.parse(s) as T;
  } catch {
    return fallback;
  }
}

function memoryMiB(limits: Limits): number {
  return limits.memory === undefined ? 0 : Math.round(sizeToBytes(limits.memory) / 1024 ** 2);
}

/** SERVER_MEMORY / SERVER_IP / SERVER_PORT inputs, the same for the display and the Agent. */
function systemOf(limits: Limits, a: Allocation | undefined) {
  return { memoryMiB: memoryMiB(limits), ip: a?.ip ?? '0.0.0.0', ...(a ? { port: a.port } : {}) };
}

/** The allocation as a port binding: key without protocol = tcp and udp, as Wings publishes. */
function allocationPorts(ports: Ports, a: Allocation | undefined): Ports {
  if (!a) return ports;
  return { ...ports, [String(a.port)]: a.ip === '0.0.0.0' ? a.port : { hostPort: a.port, hostIp: a.ip } };
}

/** The API object of a stored server, as `viewer` may see it. */
export function toServer(loaded: Loaded, viewer: Viewer, live: LiveView): Server {
  const { row: s, template, allocation } = loaded;
  const environment = parseJson<Record<string, string>>(s.environment, {});
  const limits = parseJson<Limits>(s.limits, {});
  const system = systemOf(limits, allocation);
  let shownEnv = environment;
  let variables: Server['variables'] = null;
  let startupDisplay: string;
  if (!viewer.startup) {
    // without startup.read: neither the variables nor the values in the startup line
    variables = template ? [] : null;
    shownEnv = {};
    startupDisplay = template
      ? displayStartup(
          s.startup,
          template.variables.map((v) => ({ ...v, userViewable: false })),
          environment,
          { canViewHidden: false, system },
        )
      : fillStartup(s.startup, systemEnvironment(system));
  } else if (template) {
    const visible = visibleVariables(template.variables, environment, { canViewHidden: viewer.admin });
    variables = visible.map((v) => ({
      name: v.name,
      description: v.description,
      envVariable: v.envVariable,
      value: v.value,
      defaultValue: v.defaultValue,
      rules: v.rules,
      userViewable: v.userViewable,
      userEditable: v.userEditable,
      fieldType: v.fieldType,
    }));
    shownEnv = Object.fromEntries(visible.map((v) => [v.envVariable, v.value]));
    startupDisplay = displayStartup(s.startup, template.variables, environment, {
      canViewHidden: viewer.admin,
      system,
    });
  } else {
    startupDisplay = fillStartup(s.startup, { ...systemEnvironment(system), ...environment });
  }
  return {
    id: s.id,
    name: s.name,
    nodeId: s.node_id,
    status: live.status ?? ServerStatus.parse(s.status),
    nodeOnline: live.nodeOnline,
    desiredState: DesiredState.parse(s.desired_state),
    image: s.image,
    startup: s.startup,
    startupDisplay,
    environment: shownEnv,
    ports: parseJson(s.ports, {}),
    limits,
    done: parseJson(s.done, null),
    stop: s.stop,
    stopTimeout: s.stop_timeout === null ? null : Number(s.stop_timeout),
    templateId: s.template_id,
    variables,
    allocation: allocation ? { id: allocation.id, ip: allocation.ip, port: allocation.port } : null,
    address: playerAddress(allocation, loaded.nodeAddress),
    createdAt: s.created_at,
    updatedAt: s.updated_at,
    stats: live.stats,
    lastUpdate: parseJson(s.last_update, null),
    ownerId: s.owner_id ?? null,
    backupLimit: s.backup_limit === null || s.backup_limit === undefined ? null : Number(s.backup_limit),
    failover: {
      enabled: Number(s.failover_enabled ?? 0) === 1,
      afterSeconds: Number(s.failover_after_seconds ?? 300),
    },
    permissions: [...viewer.permissions].sort(),
  };
}

/** What the Agent runs: from the template (templateToEggConfig) or the raw fields. */
export function eggOf({ row, template, allocation }: Loaded): EggConfig {
  const environment = parseJson<Record<string, string>>(row.environment, {});
  const limits = parseJson<Limits>(row.limits, {});
  const ports = allocationPorts(parseJson<Ports>(row.ports, {}), allocation);
  const done = parseJson<z.infer<typeof DonePattern> | null>(row.done, null);
  if (template) {
    const egg = templateToEggConfig(
      { ...template, startup: row.startup || template.startup },
      {
        name: row.name,
        image: row.image,
        environment,
        system: systemOf(limits, allocation),
        ports,
        limits,
      },
    );
    if (done !== null) egg.done = done;
    if (row.stop !== null) egg.stop = row.stop;
    if (row.stop_timeout !== null) egg.stopTimeout = Number(row.stop_timeout);
    return egg;
  }
  const env = allocation
    ? { SERVER_IP: allocation.ip, SERVER_PORT: String(allocation.port), ...environment }
    : environment;
  return {
    name: row.name,
    image: row.image,
    startup: row.startup,
    environment: env,
    ports,
    limits,
    ...(done === null ? {} : { done }),
    ...(row.stop === null ? {} : { stop: row.stop }),
    ...(row.stop_timeout === null ? {} : { stopTimeout: Number(row.stop_timeout) }),
  };
}

/** Values of the server's variables that are not user_viewable (long enough to redact). */
export function hiddenValues({ row, template }: Loaded): string[] {
  if (!template) return [];
  const environment = parseJson<Record<string, string>>(row.environment, {});
  return secretValues(
    template.variables
      .filter((v) => !v.userViewable)
      .map((v) => environment[v.envVariable] ?? v.defaultValue),
  );
}
