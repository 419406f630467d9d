/**
 * Compose stacks on the wire (issue 11): the names, caps and the plan the Panel sends the Agent
 * (compose.ts makes it from a compose file). Pure zod: the web imports this file too.
 */
import { z } from 'zod';

/** The compose text's cap in bytes. */
export const STACK_MAX_BYTES = 256 * 1024;
/** Compose's own project-name rule (lower case, digits, `_` and `-`, starting alnum). */
export const StackName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'a stack name: [a-z0-9][a-z0-9_-]*, at most 63 characters');
export type StackName = z.infer<typeof StackName>;

export const COMPOSE_LABELS = {
  project: 'com.docker.compose.project',
  service: 'com.docker.compose.service',
  number: 'com.docker.compose.container-number',
  hash: 'com.docker.compose.config-hash',
  oneoff: 'com.docker.compose.oneoff',
  network: 'com.docker.compose.network',
  volume: 'com.docker.compose.volume',
  version: 'com.docker.compose.version',
  dependsOn: 'com.docker.compose.depends_on',
} as const;

/** One Engine object the plan makes. */
export const StackNetworkPlan = z.object({
  key: z.string().max(64),
  name: z.string().max(255),
  external: z.boolean(),
  create: z.record(z.string(), z.unknown()),
});
export const StackVolumePlan = StackNetworkPlan;
export const StackServicePlan = z.object({
  name: z.string().max(64),
  /** the container's name: `<project>-<service>-1` */
  container: z.string().max(255),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  dependsOn: z.array(z.string().max(64)).max(256),
  /** the Engine's POST /containers/create body (the policy read exactly this) */
  create: z.record(z.string(), z.unknown()),
  /** further networks to connect before the start (the first is in the create body) */
  connect: z
    .array(z.object({ name: z.string().max(255), aliases: z.array(z.string().max(64)).max(64) }))
    .max(64),
});
/** What the Agent creates, services in dependency order. */
export const StackPlan = z.object({
  project: StackName,
  networks: z.array(StackNetworkPlan).max(64),
  volumes: z.array(StackVolumePlan).max(256),
  services: z.array(StackServicePlan).min(1).max(256),
});
export type StackPlan = z.infer<typeof StackPlan>;
export type StackServicePlan = z.infer<typeof StackServicePlan>;

/** One service's outcome in a deploy (in dependency order). */
export const StackServiceResult = z.object({
  service: z.string().max(64),
  action: z.enum(['created', 'recreated', 'unchanged', 'started', 'removed']),
  containerId: z.string().max(128).nullable(),
});
/** A deploy's answer: what was done, and the service that failed (the rest left as they were). */
export const StackDeployResult = z.object({
  services: z.array(StackServiceResult).max(512),
  failed: z
    .object({ service: z.string().max(64), code: z.string().max(64), message: z.string().max(4096) })
    .nullable(),
});
export type StackDeployResult = z.infer<typeof StackDeployResult>;

/** One container of a stack, as the Engine lists it. */
export const StackContainer = z.object({
  service: z.string().max(64),
  id: z.string().max(128),
  name: z.string().max(255),
  image: z.string().max(512),
  state: z.string().max(32),
  status: z.string().max(256),
  hash: z.string().max(128).nullable(),
});
export type StackContainer = z.infer<typeof StackContainer>;
/** stack_list: every Compose project on the node (also ones not deployed by the Panel). */
export const StackSummary = z.object({
  name: z.string().max(255),
  containers: z.array(StackContainer).max(4096),
});
export type StackSummary = z.infer<typeof StackSummary>;
