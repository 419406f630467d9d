import {
  GetFileData,
  LIST_FILES_DEFAULT_LIMIT,
  LIST_FILES_MAX_LIMIT,
  ListFilesData,
  PowerAction,
  ResourceSnapshot,
  ServerStatus,
} from '@cap/protocol';
import { FeatureName } from '@cap/protocol/templates/index.ts';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { canSeeServer, hasRole, principalOf } from '../../http/auth.ts';
import type { PanelServices } from '../../services.ts';
import { Bucket, MetricsRange } from '../metrics/service.ts';
import { Operation } from '../operations/repo.ts';
import { ConfigUpdate, CreateServer, PatchServer, Server, type Viewer } from './schemas.ts';

/** Spectators never see values of variables that are not user_viewable. */
export function viewerOf(req: FastifyRequest): Viewer {
  return { admin: hasRole(principalOf(req).user.role, 'admin') };
}

const IdParams = z.object({ id: z.string().min(1).max(64) });
/** `?wait=true`: answer once the operation ended (its result), not at its acknowledgement */
const WaitQuery = z.object({ wait: z.enum(['true', 'false']).optional() });
const FilePath = z.object({ path: z.string().max(4096).default('/') });
/** a page of a directory: `offset` entries skipped, at most `limit` (≤ LIST_FILES_MAX_LIMIT) returned */
const FileListQuery = FilePath.extend({
  offset: z.coerce.number().int().min(0).max(100_000_000).default(0),
  limit: z.coerce.number().int().min(1).max(LIST_FILES_MAX_LIMIT).default(LIST_FILES_DEFAULT_LIMIT),
});

export async function serversRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['servers'];
  r.get(
    '/api/servers',
    { config: { auth: 'user' }, schema: { tags, response: { 200: z.array(Server) } } },
    async (req) => {
      // an API key limited to some servers lists only those
      const p = principalOf(req);
      return (await s.servers.list(viewerOf(req))).filter((x) => canSeeServer(p, x.id));
    },
  );
  r.post(
    '/api/servers',
    {
      config: { auth: 'admin' },
      schema: {
        tags,
        description:
          'Stores the server and creates it on its node, as an operation (`create`): 202 { operationId, server } once the Agent acknowledged it; its end arrives as an `operation` message on /ws/client and in GET /api/operations/:id (a failed create removes the server again). ?wait=true answers 201 with the server once the Agent created it (or the error, nothing stored). 503 AGENT_OFFLINE (nothing stored) when the node is offline. With templateId: environment = values of its variables, checked against their rules (400 VALIDATION_FAILED, details = { ENV_NAME: [{rule, message}] }), defaults fill the rest; the primary port is allocationId, port, or the first free allocation of the node; a port taken on the node is 409 PORT_CONFLICT.',
        querystring: WaitQuery,
        body: CreateServer,
        response: { 201: Server, 202: z.object({ operationId: z.string(), server: Server }) },
      },
    },
    async (req, reply) => {
      const { operationId, server, done } = await s.servers.create(req.body, principalOf(req).user.id);
      if (req.query.wait === 'true') return reply.status(201).send(await done);
      done.catch(() => undefined);
      return reply.status(202).send({ operationId, server });
    },
  );
  r.get(
    '/api/servers/:id',
    { config: { auth: 'user' }, schema: { tags, params: IdParams, response: { 200: Server } } },
    async (req) => s.servers.get(req.params.id, viewerOf(req)),
  );
  r.patch(
    '/api/servers/:id',
    {
      config: { auth: 'admin' },
      schema: {
        tags,
        description:
          'Changes only what the body names. A rename is stored at once (200). A change the container is recreated for (image, startup, environment, ports, limits, done, stop, stopTimeout) goes to the Agent as an operation (`update`): 202 { operationId } once acknowledged, stored when the Agent reported success (a failure stores nothing); ?wait=true answers 200 with the server then, or the error. 409 SERVER_BUSY while another operation runs on the server; 503 AGENT_OFFLINE.',
        params: IdParams,
        querystring: WaitQuery,
        body: PatchServer,
        response: { 200: Server, 202: z.object({ operationId: z.string() }) },
      },
    },
    async (req, reply) => {
      const { operationId, done } = await s.servers.patch(req.params.id, req.body, principalOf(req).user.id);
      if (operationId === null || req.query.wait === 'true') return reply.status(200).send(await done);
      done.catch(() => undefined);
      return reply.status(202).send({ operationId });
    },
  );
  r.delete(
    '/api/servers/:id',
    {
      config: { auth: 'admin' },
      schema: {
        tags,
        params: IdParams,
        querystring: z.object({ force: z.enum(['true', 'false']).optional() }),
        response: { 204: z.null() },
      },
    },
    async (req, reply) => {
      await s.servers.delete(req.params.id, req.query.force === 'true');
      return reply.status(204).send(null);
    },
  );
  r.post(
    '/api/servers/:id/power',
    {
      config: { auth: 'admin' },
      schema: {
        tags,
        description:
          'Sent to the Agent as an operation: 202 { operationId } once the Agent acknowledged it; its steps and end arrive as `operation` messages on /ws/client and in GET /api/operations/:id. 409 SERVER_BUSY while another power action runs on the server (kill pre-empts it instead); 503 AGENT_OFFLINE.',
        params: IdParams,
        body: z.object({ action: PowerAction }),
        response: { 202: z.object({ operationId: z.string() }) },
      },
    },
    async (req, reply) => {
      if (req.activity) req.activity.action = `server.power.${req.body.action}`;
      return reply
        .status(202)
        .send(await s.servers.power(req.params.id, req.body.action, principalOf(req).user.id));
    },
  );
  r.post(
    '/api/servers/:id/features/eula',
    {
      config: { auth: 'admin' },
      schema: {
        tags,
        description:
          "The answer to the eula feature's dialog: writes eula=true into eula.txt in the server's folder (Agent write_file), then restarts the server as an operation (`restart`): 202 { accepted, operationId } once the Agent acknowledged it; its steps and end arrive as `operation` messages on /ws/client and in GET /api/operations/:id. 409 SERVER_BUSY while another operation runs on the server (eula.txt stays written). 400 VALIDATION_FAILED when the server's template has no eula feature.",
        params: IdParams,
        body: z.object({ accept: z.literal(true) }),
        response: { 202: z.object({ accepted: z.literal(true), operationId: z.string() }) },
      },
    },
    async (req, reply) => {
      const { operationId } = await s.servers.acceptEula(req.params.id, principalOf(req).user.id);
      return reply.status(202).send({ accepted: true as const, operationId });
    },
  );
  r.post(
    '/api/servers/:id/reinstall',
    {
      config: { auth: 'admin' },
      schema: {
        tags,
        description:
          "Runs the template's install script again on the Agent, as an operation (202 { operationId } once acknowledged); output as install_output (admins only) and install_completed on /ws/client, status installing → offline | install_failed.",
        params: IdParams,
        response: { 202: z.object({ operationId: z.string() }) },
      },
    },
    async (req, reply) =>
      reply.status(202).send(await s.servers.reinstall(req.params.id, principalOf(req).user.id)),
  );
  r.post(
    '/api/servers/:id/command',
    {
      config: { auth: 'admin' },
      schema: {
        tags,
        params: IdParams,
        body: z.object({ command: z.string().min(1).max(4096) }),
        response: { 202: z.object({ accepted: z.literal(true) }) },
      },
    },
    async (req, reply) => {
      await s.servers.command(req.params.id, req.body.command);
      return reply.status(202).send({ accepted: true as const });
    },
  );
  r.put(
    '/api/servers/:id/config',
    {
      config: { auth: 'admin' },
      schema: {
        tags,
        description:
          'New environment/limits → update_server on the Agent (recreate, wait for ready), as an operation: 202 { operationId } once acknowledged; ?wait=true answers 200 when the Agent reported its end.',
        params: IdParams,
        querystring: WaitQuery,
        body: ConfigUpdate,
        response: {
          200: z.object({ ok: z.boolean(), status: ServerStatus, operationId: z.string() }),
          202: z.object({ operationId: z.string() }),
        },
      },
    },
    async (req, reply) => {
      const { operationId, done } = await s.servers.updateConfig(
        req.params.id,
        req.body,
        principalOf(req).user.id,
      );
      if (req.query.wait === 'true') {
        const res = await done;
        return reply.status(200).send({ ...res, operationId });
      }
      done.catch(() => undefined);
      return reply.status(202).send({ operationId });
    },
  );
  r.get(
    '/api/servers/:id/operations',
    {
      config: { auth: 'user' },
      schema: {
        tags,
        description: "The server's recent operations (power, reinstall, config update), newest first.",
        params: IdParams,
        querystring: z.object({ limit: z.coerce.number().int().min(1).max(100).default(20) }),
        response: { 200: z.array(Operation) },
      },
    },
    async (req) => s.servers.operations(req.params.id, req.query.limit),
  );
  r.get(
    '/api/operations/:id',
    {
      config: { auth: 'user' },
      schema: {
        tags: ['operations'],
        description:
          'One operation: stage, times and result. It outlives a Panel restart; one whose Agent never reports its end is closed as TIMEOUT (or OPERATION_LOST when the Agent reconnects without it).',
        params: IdParams,
        response: { 200: Operation },
      },
    },
    async (req) => s.servers.operation(req.params.id),
  );
  r.get(
    '/api/servers/:id/telemetry',
    {
      config: { auth: 'user' },
      schema: {
        tags,
        description: 'Everything a server page needs in one call.',
        params: IdParams,
        response: {
          200: z.object({
            server: Server,
            status: ServerStatus,
            stats: ResourceSnapshot.nullable(),
            console: z.array(z.string()),
            metrics: z.array(Bucket),
            /** admins: the template feature the console last called for while not running (else null) */
            feature: z.object({ feature: FeatureName, line: z.string() }).nullable(),
          }),
        },
      },
    },
    async (req) => s.servers.telemetry(req.params.id, s.metrics, viewerOf(req)),
  );
  r.get(
    '/api/servers/:id/metrics',
    {
      config: { auth: 'user' },
      schema: {
        tags,
        params: IdParams,
        querystring: z.object({ range: MetricsRange.default('1h') }),
        response: { 200: z.array(Bucket) },
      },
    },
    async (req) => {
      await s.servers.status(req.params.id);
      return s.metrics.range(req.params.id, req.query.range);
    },
  );
  r.get(
    '/api/servers/:id/files',
    {
      config: { auth: 'user' },
      schema: {
        tags,
        params: IdParams,
        description:
          'One page of a directory, directories first and then by name; `total` counts the whole directory. ' +
          `limit defaults to ${LIST_FILES_DEFAULT_LIMIT}, at most ${LIST_FILES_MAX_LIMIT}.`,
        querystring: FileListQuery,
        response: { 200: ListFilesData },
      },
    },
    async (req) =>
      s.servers.files(req.params.id, req.query.path, { offset: req.query.offset, limit: req.query.limit }),
  );
  r.get(
    '/api/servers/:id/files/content',
    {
      config: { auth: 'user' },
      schema: { tags, params: IdParams, querystring: FilePath, response: { 200: GetFileData } },
    },
    async (req) => s.servers.fileContent(req.params.id, req.query.path, viewerOf(req)),
  );
}
