import {
  CodedError,
  FileSort,
  GetFileData,
  LIST_FILES_DEFAULT_LIMIT,
  LIST_FILES_MAX_LIMIT,
  ListFilesData,
  PowerAction,
  RemoteConsoleTransport,
  ResourceSnapshot,
  ServerStatus,
  SortOrder,
} from '@cap/protocol';
import { FeatureName } from '@cap/protocol/templates/index.ts';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { accessBy, canSeeServer, hasRole, principalOf, serverAccessOf } from '../../http/auth.ts';
import type { PanelServices } from '../../services.ts';
import { FEATURE_NEED, PERMISSIONS, POWER_PERMISSION } from '../access/permissions.ts';
import { type Access, isPanelAdmin, missing } from '../access/service.ts';
import { Bucket, MetricsRange } from '../metrics/service.ts';
import { Operation } from '../operations/repo.ts';
import { Placement } from './placement.ts';
import { ConfigUpdate, CreateServer, PatchServer, Server, type Viewer } from './schemas.ts';

/** How a caller with this access sees a server (hidden values, startup, its permissions). */
export function viewerFor(access: Access): Viewer {
  return {
    admin: access.seesHidden,
    startup: access.permissions.has('startup.read'),
    permissions: [...access.permissions],
  };
}

/**
 * The route's server as requireAccess judged it; outside a server route (templates), values of
 * variables that are not user_viewable are for admins.
 */
export function viewerOf(req: FastifyRequest): Viewer {
  if (req.serverAccess) return viewerFor(req.serverAccess);
  const admin = hasRole(principalOf(req).user.role, 'admin');
  return { admin, startup: true, permissions: admin ? PERMISSIONS : [] };
}

/** The owner must be a user: 400 VALIDATION_FAILED (location ownerId) otherwise. */
async function checkOwner(s: PanelServices, ownerId: string | undefined): Promise<void> {
  if (ownerId !== undefined && !(await s.users.get(ownerId)))
    throw new CodedError('VALIDATION_FAILED', 'no such user', { location: 'ownerId' });
}

const IdParams = z.object({ id: z.string().min(1).max(64) });
/** `?wait=true`: answer once the operation ended (its result), not at its acknowledgement */
const WaitQuery = z.object({ wait: z.enum(['true', 'false']).optional() });
const FilePath = z.object({ path: z.string().max(4096).default('/') });
/** a page of a directory: `offset` entries skipped, at most `limit` (≤ LIST_FILES_MAX_LIMIT) returned */
const FileListQuery = FilePath.extend({
  offset: z.coerce.number().int().min(0).max(100_000_000).default(0),
  limit: z.coerce.number().int().min(1).max(LIST_FILES_MAX_LIMIT).default(LIST_FILES_DEFAULT_LIMIT),
  sort: FileSort.default('name'),
  order: SortOrder.default('asc'),
});

export async function serversRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['servers'];
  r.get(
    '/api/servers',
    {
      config: { auth: 'user' },
      schema: {
        tags,
        description:
          'The servers the caller may see (admins, owners and spectators: all; a `user`: the ones it owns or is a subuser of; an API key: also within its server limit). `updateAvailable: true` marks a server whose registry has a newer digest for its image tag (the last image check).',
        response: { 200: z.array(Server) },
      },
    },
    async (req) => {
      const visible = await s.access.accessMany(principalOf(req));
      return s.servers.list(
        (id) => {
          const a = visible.get(id);
          return a ? viewerFor(a) : undefined;
        },
        { imageUpdates: true },
      );
    },
  );
  r.post(
    '/api/servers',
    {
      config: { auth: 'admin' },
      schema: {
        tags,
        description:
          'Stores the server and creates it on its node, as an operation (`create`): 202 { operationId, server } once the Agent acknowledged it; its end arrives as an `operation` message on /ws/client and in GET /api/operations/:id (a failed create removes the server again). ?wait=true answers 201 with the server once the Agent created it (or the error, nothing stored). 503 AGENT_OFFLINE (nothing stored) when the node is offline. With templateId: environment = values of its variables, checked against their rules (400 VALIDATION_FAILED, details = { ENV_NAME: [{rule, message}] }), defaults fill the rest; the primary port is allocationId, port, or the first free allocation of the node; a port taken on the node is 409 PORT_CONFLICT. Past the node capacity (GET /api/nodes/:id `capacity`): 409 INSUFFICIENT_RESOURCES, details { memory?|disk?|cpu?: { needed, free } }, nothing stored. Without nodeId the Panel places it: among the online nodes with all `placement.tags` and at `placement.location` (when given) that fit its limits, have a free allocation (when it takes one) and its image (as their Agents list them), the one with the most headroom (the smallest share of a checked resource left free with it there); the answer carries `placement: { nodeId, reason, candidates: [{ nodeId, name, eligible, headroom, reason }] }`; none fits: 409 INSUFFICIENT_RESOURCES with details.candidates. allocationId needs nodeId.',
        querystring: WaitQuery,
        body: CreateServer,
        response: {
          201: Server.extend({ placement: Placement.optional() }),
          202: z.object({ operationId: z.string(), server: Server, placement: Placement.optional() }),
        },
      },
    },
    async (req, reply) => {
      await checkOwner(s, req.body.ownerId);
      const { operationId, server, done, placement } = await s.servers.create(
        req.body,
        principalOf(req).user.id,
      );
      const where = placement ? { placement } : {};
      if (req.query.wait === 'true') return reply.status(201).send({ ...(await done), ...where });
      done.catch(() => undefined);
      return reply.status(202).send({ operationId, server, ...where });
    },
  );
  r.get(
    '/api/servers/:id',
    {
      config: { auth: 'user', access: null },
      schema: { tags, params: IdParams, response: { 200: Server } },
    },
    async (req) => s.servers.get(req.params.id, viewerOf(req)),
  );
  r.patch(
    '/api/servers/:id',
    {
      // renaming alone is settings.rename; anything else (image, startup, ports, limits, owner) admins
      config: {
        auth: 'user',
        access: accessBy('settings.rename for the name alone, else admin', (req) =>
          Object.keys(req.body as object).every((k) => k === 'name') ? 'settings.rename' : 'admin',
        ),
      },
      schema: {
        tags,
        description:
          'Changes only what the body names. Renaming alone needs settings.rename; anything else (image, startup, ports, limits, stop, the owner) is for admins. A rename (or an owner change) is stored at once (200). A change the container is recreated for (image, startup, environment, ports, limits, done, stop, stopTimeout) goes to the Agent as an operation (`update`): 202 { operationId } once acknowledged, stored when the Agent reported success (a failure stores nothing); ?wait=true answers 200 with the server then, or the error. 409 SERVER_BUSY while another operation runs on the server; 503 AGENT_OFFLINE. Limits that grow past the node capacity: 409 INSUFFICIENT_RESOURCES (details { memory?|disk?|cpu?: { needed, free } }) and nothing of the patch is stored. `ownerId`: any user (400 VALIDATION_FAILED for an unknown one); the old owner loses the server unless they are a subuser.',
        params: IdParams,
        querystring: WaitQuery,
        body: PatchServer.extend({ ownerId: z.string().min(1).max(64).optional() }),
        response: { 200: Server, 202: z.object({ operationId: z.string() }) },
      },
    },
    async (req, reply) => {
      const { ownerId, ...patch } = req.body;
      await checkOwner(s, ownerId);
      const viewer = viewerFor(serverAccessOf(req));
      // the change is checked (and acknowledged) first: a refused one leaves the owner as it was
      const { operationId, done } =
        Object.keys(patch).length === 0
          ? { operationId: null, done: Promise.resolve(null) }
          : await s.servers.patch(req.params.id, patch, principalOf(req).user.id);
      if (ownerId !== undefined) await s.subusers.setOwner(req.params.id, ownerId);
      if (operationId === null || req.query.wait === 'true') {
        await done;
        // as the caller sees it (a renaming subuser does not get hidden values back)
        return reply.status(200).send(await s.servers.get(req.params.id, viewer));
      }
      done.catch(() => undefined);
      return reply.status(202).send({ operationId });
    },
  );
  r.delete(
    '/api/servers/:id',
    {
      config: { auth: 'user', access: 'admin' },
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
      config: {
        auth: 'user',
        access: accessBy(
          'by action: control.start, control.stop (stop, kill), control.restart',
          (req) => POWER_PERMISSION[(req.body as { action: keyof typeof POWER_PERMISSION }).action],
        ),
      },
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
      config: { auth: 'user', access: FEATURE_NEED },
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
      config: { auth: 'user', access: 'settings.reinstall' },
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
      config: { auth: 'user', access: 'control.command' },
      schema: {
        tags,
        description:
          "One console command, through the template's console transport (stdin, or a remote console: Source RCON, Quake 3 rcon, Teeworlds econ, OpenTTD admin port). 200 { accepted, transport, response } when the remote console answered (hidden variable values redacted unless the caller is an admin or the owner); 202 { accepted } when the command went to stdin, which gives no response. REMOTE_CONSOLE_AUTH_FAILED (502) when the game refused the password, REMOTE_CONSOLE_UNAVAILABLE (503) when it is not reachable, TIMEOUT (504) when it did not answer.",
        params: IdParams,
        body: z.object({ command: z.string().min(1).max(4096) }),
        response: {
          200: z.object({
            accepted: z.literal(true),
            transport: RemoteConsoleTransport,
            response: z.string(),
          }),
          202: z.object({ accepted: z.literal(true), transport: RemoteConsoleTransport.optional() }),
        },
      },
    },
    async (req, reply) => {
      const out = await s.servers.command(req.params.id, req.body.command, {
        seesHidden: serverAccessOf(req).seesHidden,
      });
      if (out.response !== undefined && out.transport)
        return reply
          .status(200)
          .send({ accepted: true as const, transport: out.transport, response: out.response });
      return reply
        .status(202)
        .send({ accepted: true as const, ...(out.transport ? { transport: out.transport } : {}) });
    },
  );
  r.put(
    '/api/servers/:id/config',
    {
      // variables: startup.update (editable ones only, unless admin); build limits: admins
      config: {
        auth: 'user',
        access: accessBy('startup.update; with limits admin', (req) =>
          (req.body as { limits?: unknown }).limits === undefined ? 'startup.update' : 'admin',
        ),
      },
      schema: {
        tags,
        description:
          'New environment/limits → update_server on the Agent (recreate, wait for ready), as an operation: 202 { operationId } once acknowledged; ?wait=true answers 200 when the Agent reported its end. Limits that grow past the node capacity: 409 INSUFFICIENT_RESOURCES (details { memory?|disk?|cpu?: { needed, free } }), nothing stored.',
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
        serverAccessOf(req).admin,
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
      config: { auth: 'user', access: null },
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
    async (req) => {
      const op = await s.servers.operation(req.params.id);
      const p = principalOf(req);
      // Panel admins see every operation, also one whose server is gone (a failed create);
      // for anyone else an operation of a server they may not see does not exist
      if (isPanelAdmin(p) && canSeeServer(p, op.serverId)) return op;
      await s.access.requireAccess(p, null, op.serverId).catch((e: unknown) => {
        if (e instanceof CodedError && e.code === 'SERVER_NOT_FOUND')
          throw new CodedError('NOT_FOUND', 'no such operation');
        throw e;
      });
      return op;
    },
  );
  r.get(
    '/api/servers/:id/telemetry',
    {
      config: { auth: 'user', access: null },
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
    async (req) => {
      const access = serverAccessOf(req);
      const t = await s.servers.telemetry(req.params.id, s.metrics, viewerOf(req));
      // the console's history needs control.console; a feature dialog, what accepting it needs
      return {
        ...t,
        console: access.permissions.has('control.console') ? t.console : [],
        feature: missing(access, FEATURE_NEED).length === 0 ? t.feature : null,
      };
    },
  );
  r.get(
    '/api/servers/:id/metrics',
    {
      config: { auth: 'user', access: null },
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
      config: { auth: 'user', access: 'file.read' },
      schema: {
        tags,
        params: IdParams,
        description:
          'One page of a directory, directories first and then by `sort` (name, size or modified; ties by name) in `order`; `total` counts the whole directory. ' +
          `limit defaults to ${LIST_FILES_DEFAULT_LIMIT}, at most ${LIST_FILES_MAX_LIMIT}.`,
        querystring: FileListQuery,
        response: { 200: ListFilesData },
      },
    },
    async (req) =>
      s.servers.files(req.params.id, req.query.path, {
        offset: req.query.offset,
        limit: req.query.limit,
        sort: req.query.sort,
        order: req.query.order,
      }),
  );
  r.get(
    '/api/servers/:id/files/content',
    {
      config: { auth: 'user', access: 'file.read-content' },
      schema: { tags, params: IdParams, querystring: FilePath, response: { 200: GetFileData } },
    },
    async (req) => s.servers.fileContent(req.params.id, req.query.path, viewerOf(req)),
  );
}
