/**
 * Compose stacks per node (issue 11; docs/contracts.md "Compose stacks"): the file is stored
 * (migration 026), turned into Engine API bodies by packages/protocol/src/compose.ts, checked
 * with the Docker relay's own policy (modules/docker/policy.ts: the same function over the same
 * bodies, so a stack can do nothing the relay would refuse), and carried out by the Agent
 * (stack_* actions). docker.read to see, docker.write to change (admins and owners hold both).
 */
import { randomUUID } from 'node:crypto';
import { CodedError, STACK_MAX_BYTES, StackDeployResult, StackName, type StackPlan } from '@cap/protocol';
import { planStack } from '@cap/protocol/compose.ts';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { principalOf } from '../../http/auth.ts';
import type { PanelServices } from '../../services.ts';
import { checkPolicy, type PolicyContext } from '../docker/policy.ts';
import { assertDockerAccess } from '../docker/routes.ts';

/** A deploy may pull images and wait for old containers to stop (10 s each). */
const DEPLOY_TIMEOUT_MS = 10 * 60_000;
const STOP_TIMEOUT_MS = 5 * 60_000;

const Container = z.object({
  service: z.string(),
  id: z.string(),
  name: z.string(),
  image: z.string(),
  state: z.string(),
  status: z.string(),
  hash: z.string().nullable(),
});
const Containers = z.array(Container).max(4096);
const StackView = z.object({
  name: z.string(),
  /** false: a Compose project found on the node that the Panel did not deploy */
  managed: z.boolean(),
  status: z.string(),
  lastError: z.string().nullable(),
  createdBy: z.string().nullable(),
  updatedBy: z.string().nullable(),
  createdAt: z.string().nullable(),
  updatedAt: z.string().nullable(),
  /** null: the node is offline (the containers are unknown) */
  containers: Containers.nullable(),
});
const StackDetail = StackView.extend({ compose: z.string().nullable() });
const Deployed = z.object({ stack: StackDetail, result: StackDeployResult });

const Params = z.object({ id: z.string().min(1).max(64) });
const NameParams = Params.extend({ name: StackName });
const Compose = z.string().min(1).max(STACK_MAX_BYTES);

type Row = {
  id: string;
  node_id: string;
  name: string;
  compose: string;
  status: string;
  last_error: string | null;
  created_by: string | null;
  updated_by: string | null;
  created_at: string;
  updated_at: string;
};

export async function stacksRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const db = s.db;

  const row = (nodeId: string, name: string) =>
    db
      .selectFrom('stacks')
      .selectAll()
      .where('node_id', '=', nodeId)
      .where('name', '=', name)
      .executeTakeFirst() as Promise<Row | undefined>;

  const live = async (nodeId: string, name: string) => {
    if (!s.gateway.isOnline(nodeId)) return null;
    const d = (await s.gateway.request(nodeId, 'stack_inspect', { project: name })) as {
      containers: z.infer<typeof Containers>;
    };
    return Containers.parse(d.containers);
  };

  const view = (r: Row, containers: z.infer<typeof Containers> | null): z.infer<typeof StackDetail> => ({
    name: r.name,
    managed: true,
    status: r.status,
    lastError: r.last_error,
    createdBy: r.created_by,
    updatedBy: r.updated_by,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    containers,
    compose: r.compose,
  });

  const setStatus = (id: string, status: string, lastError: string | null) =>
    db
      .updateTable('stacks')
      .set({ status, last_error: lastError, updated_at: new Date().toISOString() })
      .where('id', '=', id)
      .execute();

  const policyContext = async (nodeId: string): Promise<PolicyContext> => {
    // the Agent's own container is learnt from a tunnel's answer (as the relay does)
    if (s.dockerTunnels.agentContainer(nodeId) === undefined) (await s.dockerTunnels.open(nodeId)).destroy();
    return {
      bindAllow: await s.dockerPolicy.bindAllow(nodeId),
      agent: s.dockerTunnels.agentContainer(nodeId),
    };
  };

  /** The relay's policy over exactly the bodies the Agent will send to its Engine. */
  const check = async (req: FastifyRequest, nodeId: string, plan: StackPlan) => {
    if (principalOf(req).user.role === 'owner') return;
    const ctx = await policyContext(nodeId);
    for (const v of plan.volumes) if (!v.external) checkPolicy('POST', '/volumes/create', '', v.create, ctx);
    for (const n of plan.networks)
      if (!n.external) checkPolicy('POST', '/networks/create', '', n.create, ctx);
    for (const svc of plan.services) {
      try {
        checkPolicy('POST', '/containers/create', '', svc.create, ctx);
        for (const c of svc.connect)
          checkPolicy('POST', `/networks/${c.name}/connect`, '', { Container: svc.container }, ctx);
      } catch (e) {
        if (e instanceof CodedError)
          throw new CodedError(e.code, `service ${svc.name}: ${e.message}`, {
            details: { ...(e.details as object), service: svc.name },
          });
        throw e;
      }
    }
  };

  const deploy = async (req: FastifyRequest, stack: Row, plan: StackPlan) => {
    await setStatus(stack.id, 'deploying', null);
    let result: StackDeployResult;
    try {
      result = StackDeployResult.parse(
        await s.gateway.request(stack.node_id, 'stack_deploy', plan, { timeoutMs: DEPLOY_TIMEOUT_MS }),
      );
    } catch (e) {
      await setStatus(stack.id, 'failed', (e as Error).message.slice(0, 4000));
      throw e;
    }
    if (result.failed) {
      const msg = `service ${result.failed.service}: ${result.failed.message}`;
      await setStatus(stack.id, 'failed', msg.slice(0, 4000));
      throw new CodedError('STACK_DEPLOY_FAILED', msg, {
        details: { service: result.failed.service, code: result.failed.code, services: result.services },
      });
    }
    await setStatus(stack.id, 'running', null);
    const fresh = (await row(stack.node_id, stack.name)) as Row;
    if (req.activity)
      req.activity.details = {
        nodeId: stack.node_id,
        stack: stack.name,
        services: result.services
          .map((x) => `${x.service}:${x.action}`)
          .join(',')
          .slice(0, 1024),
      };
    return { stack: view(fresh, await live(stack.node_id, stack.name)), result };
  };

  r.get(
    '/api/nodes/:id/stacks',
    {
      config: { auth: 'user' },
      schema: {
        tags: ['docker'],
        description:
          "The node's compose stacks: the ones the Panel deployed, and other Compose projects found on the node (managed: false), each with its containers. Needs docker.read.",
        params: Params,
        response: { 200: z.array(StackView) },
      },
    },
    async (req) => {
      const nodeId = req.params.id;
      await s.nodes.get(nodeId);
      await assertDockerAccess(s, req, nodeId, false);
      const rows = (await db
        .selectFrom('stacks')
        .selectAll()
        .where('node_id', '=', nodeId)
        .orderBy('name')
        .execute()) as Row[];
      const found = new Map<string, z.infer<typeof Containers>>();
      const online = s.gateway.isOnline(nodeId);
      if (online) {
        const list = (await s.gateway.request(nodeId, 'stack_list', {})) as {
          name: string;
          containers: unknown;
        }[];
        for (const p of list) found.set(String(p.name), Containers.parse(p.containers));
      }
      const out: z.infer<typeof StackView>[] = rows.map((x) => {
        const { compose: _c, ...v } = view(x, online ? (found.get(x.name) ?? []) : null);
        return v;
      });
      const stored = new Set(rows.map((x) => x.name));
      for (const [name, containers] of found)
        if (!stored.has(name))
          out.push({
            name,
            managed: false,
            status: containers.some((c) => c.state === 'running') ? 'running' : 'stopped',
            lastError: null,
            createdBy: null,
            updatedBy: null,
            createdAt: null,
            updatedAt: null,
            containers,
          });
      return out.sort((a, b) => a.name.localeCompare(b.name));
    },
  );

  r.post(
    '/api/nodes/:id/stacks',
    {
      config: { auth: 'user', activity: 'node.stack.deploy' },
      bodyLimit: STACK_MAX_BYTES * 2 + 4096,
      schema: {
        tags: ['docker'],
        description:
          'Deploys a compose file (the supported subset: docs/contracts.md) as a stack. Keys outside the subset: 400 STACK_UNSUPPORTED (details.keys). The Docker policy applies to every service as to the relay (403 DOCKER_POLICY_DENIED, details.service). A failed service: 502 STACK_DEPLOY_FAILED (details.service; those before it keep running). Needs docker.write.',
        params: Params,
        body: z.object({ name: StackName, compose: Compose }),
        response: { 201: Deployed },
      },
    },
    async (req, reply) => {
      const nodeId = req.params.id;
      await s.nodes.get(nodeId);
      await assertDockerAccess(s, req, nodeId, true);
      const { name, compose } = req.body;
      const plan = planStack(name, compose);
      await check(req, nodeId, plan);
      if (await row(nodeId, name)) throw new CodedError('CONFLICT', `a stack "${name}" exists on this node`);
      const now = new Date().toISOString();
      const user = principalOf(req).user.id;
      const stack: Row = {
        id: randomUUID(),
        node_id: nodeId,
        name,
        compose,
        status: 'deploying',
        last_error: null,
        created_by: user,
        updated_by: user,
        created_at: now,
        updated_at: now,
      };
      try {
        await db.insertInto('stacks').values(stack).execute();
      } catch {
        throw new CodedError('CONFLICT', `a stack "${name}" exists on this node`);
      }
      return reply.code(201).send(await deploy(req, stack, plan));
    },
  );

  r.get(
    '/api/nodes/:id/stacks/:name',
    {
      config: { auth: 'user' },
      schema: {
        tags: ['docker'],
        description: 'One stack: its compose file, state and containers. Needs docker.read.',
        params: NameParams,
        response: { 200: StackDetail },
      },
    },
    async (req) => {
      const { id, name } = req.params;
      await s.nodes.get(id);
      await assertDockerAccess(s, req, id, false);
      const x = await row(id, name);
      const containers = await live(id, name);
      if (x) return view(x, containers);
      if (containers && containers.length > 0)
        return {
          name,
          managed: false,
          status: containers.some((c) => c.state === 'running') ? 'running' : 'stopped',
          lastError: null,
          createdBy: null,
          updatedBy: null,
          createdAt: null,
          updatedAt: null,
          containers,
          compose: null,
        };
      throw new CodedError('STACK_NOT_FOUND', `no stack "${name}" on this node`);
    },
  );

  r.put(
    '/api/nodes/:id/stacks/:name',
    {
      config: { auth: 'user', activity: 'node.stack.update' },
      bodyLimit: STACK_MAX_BYTES * 2 + 4096,
      schema: {
        tags: ['docker'],
        description:
          'Updates a stack from a new compose file: only services whose config hash changed are recreated (each old container keeps running until its new one starts), services gone from the file are removed. Same checks and codes as the deploy. Needs docker.write.',
        params: NameParams,
        body: z.object({ compose: Compose }),
        response: { 200: Deployed },
      },
    },
    async (req) => {
      const { id, name } = req.params;
      await s.nodes.get(id);
      await assertDockerAccess(s, req, id, true);
      const x = await row(id, name);
      if (!x) throw new CodedError('STACK_NOT_FOUND', `no stack "${name}" on this node`);
      const plan = planStack(name, req.body.compose);
      await check(req, id, plan);
      await db
        .updateTable('stacks')
        .set({ compose: req.body.compose, updated_by: principalOf(req).user.id })
        .where('id', '=', x.id)
        .execute();
      return deploy(req, { ...x, compose: req.body.compose }, plan);
    },
  );

  for (const action of ['stop', 'start'] as const)
    r.post(
      `/api/nodes/:id/stacks/:name/${action}`,
      {
        config: { auth: 'user', activity: `node.stack.${action}` },
        schema: {
          tags: ['docker'],
          description: `${action === 'stop' ? 'Stops' : 'Starts'} the stack's containers (in dependency order${action === 'stop' ? ', reversed' : ''}). Needs docker.write.`,
          params: NameParams,
          response: { 200: StackDetail },
        },
      },
      async (req) => {
        const { id, name } = req.params;
        await s.nodes.get(id);
        await assertDockerAccess(s, req, id, true);
        const x = await row(id, name);
        if (!x) throw new CodedError('STACK_NOT_FOUND', `no stack "${name}" on this node`);
        const d = (await s.gateway.request(
          id,
          `stack_${action}`,
          { project: name },
          { timeoutMs: STOP_TIMEOUT_MS },
        )) as {
          containers: unknown;
        };
        await setStatus(x.id, action === 'stop' ? 'stopped' : 'running', null);
        if (req.activity) req.activity.details = { nodeId: id, stack: name };
        return view((await row(id, name)) as Row, Containers.parse(d.containers));
      },
    );

  r.delete(
    '/api/nodes/:id/stacks/:name',
    {
      config: { auth: 'user', activity: 'node.stack.remove' },
      schema: {
        tags: ['docker'],
        description:
          'Removes the stack: its containers and networks, and with ?volumes=true its volumes; the stored file goes too. A Compose project the Panel did not deploy can be removed the same way. Needs docker.write.',
        params: NameParams,
        querystring: z.object({ volumes: z.enum(['true', 'false']).optional() }),
        response: {
          200: z.object({ containers: z.number(), networks: z.number(), volumes: z.number() }),
        },
      },
    },
    async (req) => {
      const { id, name } = req.params;
      await s.nodes.get(id);
      await assertDockerAccess(s, req, id, true);
      const x = await row(id, name);
      const volumes = req.query.volumes === 'true';
      const d = (await s.gateway.request(
        id,
        'stack_remove',
        { project: name, volumes },
        { timeoutMs: STOP_TIMEOUT_MS },
      )) as {
        containers: number;
        networks: number;
        volumes: number;
      };
      if (!x && d.containers === 0 && d.networks === 0 && d.volumes === 0)
        throw new CodedError('STACK_NOT_FOUND', `no stack "${name}" on this node`);
      if (x) await db.deleteFrom('stacks').where('id', '=', x.id).execute();
      if (req.activity) req.activity.details = { nodeId: id, stack: name, volumes: String(volumes) };
      return { containers: d.containers, networks: d.networks, volumes: d.volumes };
    },
  );
}
