/**
 * `/api/registries` (issue 11 item 3; docs/contracts.md "Registries"): Panel-level registry
 * credentials, admins only. The password is write-only (answers carry `hasPassword`); activity
 * entries `registry.*` name the registry and its host, never a credential. `POST
 * /api/registries/:rid/test { nodeId }` logs in with the stored credentials through that node's
 * Engine (`POST /auth`, relayed over the Agent's Docker tunnel).
 */
import { CodedError } from '@cap/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { PanelServices } from '../../services.ts';
import { exchange, readCapped } from '../docker/proxy.ts';

const Name = z.string().trim().min(1).max(191);
const Host = z.string().trim().min(1).max(300);
const Username = z.string().max(255);
const Password = z.string().min(1).max(8192);

export const Registry = z
  .object({
    id: z.string(),
    name: z.string(),
    host: z.string(),
    username: z.string(),
    /** the password or token is never answered */
    hasPassword: z.boolean(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'Registry' });
const CreateRegistry = z.object({
  name: Name,
  host: Host,
  username: Username,
  password: Password.optional(),
});
const PatchRegistry = z.object({
  name: Name.optional(),
  host: Host.optional(),
  username: Username.optional(),
  /** a new one; null removes it; absent keeps it */
  password: Password.nullable().optional(),
});
const RegParams = z.object({ rid: z.string().min(1).max(64) });
const TestBody = z.object({ nodeId: z.string().min(1).max(64) });
const TestResult = z.object({ ok: z.literal(true), status: z.string() });

function note(req: FastifyRequest, details: Record<string, string>): void {
  if (req.activity) req.activity.details = details;
}

export async function registriesRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['registries'];
  r.get(
    '/api/registries',
    {
      config: { auth: 'admin' },
      schema: {
        tags,
        description: 'The registries with stored credentials (admins). The password is never answered.',
        response: { 200: z.object({ registries: z.array(Registry) }) },
      },
    },
    async () => ({ registries: await s.registries.list() }),
  );
  r.post(
    '/api/registries',
    {
      config: { auth: 'admin', activity: 'registry.create' },
      schema: {
        tags,
        description:
          'Stores credentials for a registry host (`ghcr.io`, `127.0.0.1:5000`; `index.docker.io` is `docker.io`), the password sealed (AES-256-GCM). One per host: 409 CONFLICT. They are sent as X-Registry-Auth when a pull or push through the Docker relay names this host and the client sent none, and with a game server create whose image is there.',
        body: CreateRegistry,
        response: { 201: Registry },
      },
    },
    async (req, reply) => {
      const created = await s.registries.create(req.body);
      note(req, { registryId: created.id, host: created.host });
      return reply.status(201).send(created);
    },
  );
  r.patch(
    '/api/registries/:rid',
    {
      config: { auth: 'admin', activity: 'registry.update' },
      schema: {
        tags,
        description:
          'Changes the fields given; `password: null` removes the stored one. 404 REGISTRY_NOT_FOUND.',
        params: RegParams,
        body: PatchRegistry,
        response: { 200: Registry },
      },
    },
    async (req) => {
      const updated = await s.registries.patch(req.params.rid, req.body);
      note(req, {
        registryId: updated.id,
        host: updated.host,
        fields: Object.keys(req.body).sort().join(','),
      });
      return updated;
    },
  );
  r.delete(
    '/api/registries/:rid',
    {
      config: { auth: 'admin', activity: 'registry.delete' },
      schema: {
        tags,
        description: 'Removes the registry and its credentials.',
        params: RegParams,
        response: { 204: z.null() },
      },
    },
    async (req, reply) => {
      note(req, { registryId: req.params.rid });
      const gone = await s.registries.delete(req.params.rid);
      note(req, { registryId: gone.id, host: gone.host });
      return reply.status(204).send(null);
    },
  );
  r.post(
    '/api/registries/:rid/test',
    {
      config: { auth: 'admin', activity: 'registry.test' },
      schema: {
        tags,
        description:
          "Logs in to the registry with the stored credentials from the node's Docker Engine (`POST /auth` through its Agent). 502 REGISTRY_AUTH_FAILED with the Engine's message when the registry refuses.",
        params: RegParams,
        body: TestBody,
        response: { 200: TestResult },
      },
    },
    async (req) => {
      note(req, { registryId: req.params.rid, nodeId: req.body.nodeId });
      const auth = await s.registries.authOf(req.params.rid);
      await s.nodes.get(req.body.nodeId);
      const tunnel = await s.dockerTunnels.open(req.body.nodeId);
      const body = Buffer.from(JSON.stringify(auth));
      const res = await exchange(tunnel, {
        method: 'POST',
        path: '/auth',
        headers: {
          host: 'docker',
          'content-type': 'application/json',
          'content-length': String(body.length),
        },
        body,
      });
      const text = (await readCapped(res, 64 * 1024).finally(() => tunnel.destroy())).toString('utf8');
      let parsed: { Status?: unknown; message?: unknown } = {};
      try {
        parsed = JSON.parse(text) as typeof parsed;
      } catch {}
      const status = res.statusCode ?? 502;
      if (status < 200 || status > 299)
        throw new CodedError(
          'REGISTRY_AUTH_FAILED',
          `the registry refused the login: ${typeof parsed.message === 'string' ? parsed.message : text.slice(0, 500)}`,
        );
      return {
        ok: true as const,
        status: typeof parsed.Status === 'string' ? parsed.Status : 'Login Succeeded',
      };
    },
  );
}
