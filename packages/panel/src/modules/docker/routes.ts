/**
 * `/api/nodes/:id/docker/<Docker Engine API path>` (issue 11; docs/contracts.md "Docker through
 * the Panel"): every method, relayed to the node's Engine through a tunnel the Agent dials out
 * (tunnels.ts) and answered with exactly what the Engine answered, streamed both ways. Request
 * bodies are not parsed by Fastify here (no content-type parser in this context): they are
 * capped per endpoint kind and streamed, or buffered (≤ 1 MiB) where the Panel must read them.
 */
import { type IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import path from 'node:path';
import type { Duplex, Readable } from 'node:stream';
import {
  CodedError,
  CreateTransferData,
  DELETE_FILES_MAX,
  type ErrorCode,
  FileChangeData,
  FileName,
  FilePath,
  FileSort,
  GetFileData,
  isCodedError,
  LIST_FILES_DEFAULT_LIMIT,
  LIST_FILES_MAX_LIMIT,
  SortOrder,
  TRANSFER_MAX_BYTES,
  VOLUME_FILE_MAX_BYTES,
  VolumeListFilesData,
  VolumeName,
} from '@cap/protocol';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { WebSocket } from 'ws';
import { z } from 'zod';
import { hasRole, principalOf } from '../../http/auth.ts';
import type { PanelServices } from '../../services.ts';
import { POWER_PERMISSION } from '../access/permissions.ts';
import { hostOfImage, registryAuthHeader, registryConfigHeader } from '../registries/service.ts';
import { managedAsk, managedPower, managedServerOf, refuseManaged } from './managed.ts';
import { checkPolicy, type PolicyContext } from './policy.ts';
import { DOCKER_PERMISSIONS } from './policy-store.ts';
import {
  bodyCap,
  bodyKind,
  capped,
  checkDeclaredLength,
  type EnginePath,
  enginePath,
  exchange,
  exchangeUpgrade,
  forwardHeaders,
  headersTimeout,
  INSPECT_MAX_BYTES,
  readCapped,
  readExact,
  responseHeaders,
  splice,
  upgradeHead,
  upgradeHeaders,
} from './proxy.ts';

const ExecId = z.string().regex(/^[0-9a-f]{64}$/, 'an exec id');
/** Output waiting for a slow browser past this pauses the exec's stream (backpressure). */
const WS_HIGH_WATER = 1024 * 1024;

function originAllowed(req: FastifyRequest, publicUrl: string): boolean {
  const origin = req.headers.origin;
  if (!origin) return true;
  try {
    const host = new URL(origin).host;
    return host === req.headers.host || host === new URL(publicUrl).host;
  } catch {
    return false;
  }
}

const Resize = z.object({
  type: z.literal('resize'),
  cols: z.number().int().min(1).max(1000),
  rows: z.number().int().min(1).max(1000),
});

/** One exec's stream spliced to a browser's WebSocket (see the route). */
function execTerminal(s: PanelServices, ws: WebSocket, nodeId: string, execId: string): void {
  let stream: Duplex | undefined;
  let closed = false;
  const close = (code: number, reason: string) => {
    if (closed) return;
    closed = true;
    stream?.destroy();
    if (ws.readyState === ws.OPEN) ws.close(code, reason.slice(0, 120));
  };
  ws.on('close', () => close(1000, ''));
  const resize = async (cols: number, rows: number) => {
    const t = await s.dockerTunnels.open(nodeId);
    const res = await exchange(t, {
      method: 'POST',
      path: `/exec/${execId}/resize?h=${rows}&w=${cols}`,
      headers: { host: 'docker' },
    });
    res.resume();
  };
  const start = async () => {
    const t = await s.dockerTunnels.open(nodeId);
    const body = Buffer.from(JSON.stringify({ Detach: false, Tty: true }));
    const r = await exchangeUpgrade(t, {
      method: 'POST',
      path: `/exec/${execId}/start`,
      headers: {
        host: 'docker',
        'content-type': 'application/json',
        'content-length': String(body.length),
        connection: 'Upgrade',
        upgrade: 'tcp',
      },
      body,
    });
    if (r.kind === 'response') {
      const text = (await readCapped(r.res, 64 * 1024).catch(() => Buffer.alloc(0))).toString();
      // (the Engine may keep that connection open: the tunnel ends here)
      t.destroy();
      let message = text;
      try {
        message = String(JSON.parse(text).message ?? text);
      } catch {}
      close(4000 + Math.min(Math.max(r.res.statusCode ?? 500, 400), 599), `DOCKER_ERROR: ${message}`);
      return;
    }
    stream = r.socket;
    if (closed) return stream.destroy();
    if (r.head.length > 0) ws.send(r.head);
    stream.on('data', (b: Buffer) => {
      ws.send(b, { binary: true });
      if (ws.bufferedAmount > WS_HIGH_WATER) {
        stream?.pause();
        const wait = () => {
          if (closed) return;
          if (ws.bufferedAmount > WS_HIGH_WATER / 2) setTimeout(wait, 20);
          else stream?.resume();
        };
        setTimeout(wait, 20);
      }
    });
    // the exec's output ended (it exited): the tunnel keeps half-open sockets, so 'end' is the sign
    stream.on('end', () => close(1000, 'exited'));
    stream.on('close', () => close(1000, 'exited'));
    stream.resume();
    stream.on('error', () => close(1011, 'DOCKER_ERROR: the stream failed'));
  };
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) {
      stream?.write(data);
      return;
    }
    let msg: unknown;
    try {
      msg = JSON.parse(data.toString('utf8'));
    } catch {
      return close(4400, 'VALIDATION_FAILED: not JSON');
    }
    const r = Resize.safeParse(msg);
    if (!r.success) return close(4400, 'VALIDATION_FAILED: expected {"type":"resize","cols","rows"}');
    resize(r.data.cols, r.data.rows).catch(() => undefined);
  });
  start().catch((e) => close(1011, `${isCodedError(e) ? e.code : 'DOCKER_ERROR'}: ${(e as Error).message}`));
}

/** The image a relayed pull (`POST /images/create?fromImage=`) or push (`POST /images/{name}/push`) names. */
export function registryImageOf(method: string, path: string, query: string): string | undefined {
  if (method !== 'POST') return undefined;
  if (path === '/images/create') return new URLSearchParams(query).get('fromImage') || undefined;
  return /^\/images\/(.+)\/push$/.exec(path)?.[1];
}

/**
 * Whether the client sent credentials of its own: an X-Registry-Auth that decodes to an
 * AuthConfig with something in it (dockerode and the docker CLI send `{}` when they have none).
 */
export function sentRegistryAuth(header: string | undefined): boolean {
  if (header === undefined || header.trim() === '') return false;
  try {
    const v = JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as Record<string, unknown>;
    if (!v || typeof v !== 'object') return true;
    return ['username', 'password', 'auth', 'identitytoken', 'registrytoken'].some(
      (k) => Object.hasOwn(v, k) && typeof v[k] === 'string' && v[k] !== '',
    );
  } catch {
    return true;
  }
}

/** Whether a build's X-Registry-Config carries any credentials (the CLI sends `{}` without). */
export function sentRegistryConfig(header: string | undefined): boolean {
  if (header === undefined || header.trim() === '') return false;
  try {
    const v = JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) return true;
    return Object.keys(v).length > 0;
  } catch {
    return true;
  }
}

const ExecInspect = z.object({
  ContainerID: z.string().regex(/^[0-9a-f]{64}$/),
  ProcessConfig: z.object({ privileged: z.boolean().nullish() }).passthrough().nullish(),
});

/** Which container an exec runs in (the Engine's exec inspect); NOT_FOUND when it has none. */
async function execInfo(
  s: PanelServices,
  nodeId: string,
  execId: string,
): Promise<{ containerId: string; privileged: boolean }> {
  const t = await s.dockerTunnels.open(nodeId);
  try {
    const res = await exchange(t, {
      method: 'GET',
      path: `/exec/${execId}/json`,
      headers: { host: 'docker' },
    });
    const body = await readCapped(res, 1024 * 1024);
    if (res.statusCode === 404) throw new CodedError('NOT_FOUND', 'no such exec');
    if (res.statusCode !== 200) throw new CodedError('DOCKER_ERROR', `the Engine answered ${res.statusCode}`);
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      throw new CodedError('DOCKER_ERROR', 'the Engine answered an exec inspect that is not JSON');
    }
    const e = ExecInspect.safeParse(json);
    if (!e.success)
      throw new CodedError('DOCKER_ERROR', 'the Engine answered an exec inspect without its container');
    return { containerId: e.data.ContainerID, privileged: e.data.ProcessConfig?.privileged === true };
  } finally {
    t.destroy();
  }
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'] as const;
const Params = z.object({ id: z.string().min(1).max(64), '*': z.string().max(8192) });

const DOCKER_UPGRADE_PATH = /^\/api\/nodes\/[^/?]+\/docker\//;

interface Upgrade {
  socket: Duplex;
  /** the request's body (exec start's JSON), read off the connection */
  body: Buffer;
  /** bytes the client sent after the body (early stdin) */
  rest: Buffer;
}

/** GET/HEAD need docker.read on the node, anything else docker.write; admins and owners hold both. */
export async function assertDockerAccess(
  s: PanelServices,
  req: FastifyRequest,
  nodeId: string,
  write: boolean,
) {
  const p = principalOf(req);
  if (hasRole(p.user.role, 'admin')) return;
  const need = write ? 'docker.write' : 'docker.read';
  if (!(await s.dockerAccess.of(nodeId, p.user.id)).has(need))
    throw new CodedError('PERMISSION_DENIED', `needs ${need} on this node`);
}

export async function dockerRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const upgrades = new WeakMap<IncomingMessage, Upgrade>();
  // Docker's hijacked streams (exec start and attach with `Upgrade: tcp`, the WebSocket attach)
  // are routed as ordinary requests (auth, CSRF and the checks run as for any other); the
  // handler then takes the connection over
  s.dockerTunnels.install(app.server, (req, socket, head) => {
    if (!DOCKER_UPGRADE_PATH.test(req.url ?? '')) return false;
    socket.on('error', () => socket.destroy());
    const refuse = (status: number, code: ErrorCode, message: string) =>
      socket.end(
        `HTTP/1.1 ${status} Refused\r\nConnection: close\r\nContent-Type: application/json\r\n\r\n${JSON.stringify({ code, message })}`,
      );
    const cl = req.headers['content-length'];
    const n = cl === undefined ? 0 : Number(cl);
    if (!Number.isSafeInteger(n) || n < 0) {
      refuse(400, 'VALIDATION_FAILED', 'bad Content-Length');
      return true;
    }
    if (n > INSPECT_MAX_BYTES) {
      refuse(413, 'PAYLOAD_TOO_LARGE', `a hijacking request's body is at most ${INSPECT_MAX_BYTES} bytes`);
      return true;
    }
    readExact(socket, head, n).then(
      ({ body, rest }) => {
        upgrades.set(req, { socket, body, rest });
        const res = new ServerResponse(req);
        res.assignSocket(socket as Socket);
        app.routing(req, res);
      },
      () => socket.destroy(),
    );
    return true;
  });

  // The browser's exec terminal: a WebSocket to an exec made through the relay
  // (POST /containers/{id}/exec); binary frames are the exec's stdin and output, a text frame
  // {"type":"resize","cols":N,"rows":N} resizes its TTY. docs/contracts.md "Docker through the Panel".
  app.get(
    '/ws/nodes/:id/docker/exec/:execId',
    {
      websocket: true,
      // docker.write on the node (admins and owners hold it), for an exec in a container the
      // policy lets the caller use; refused in preValidation, before the upgrade is answered
      config: { auth: 'user' },
      schema: { params: z.object({ id: z.string().min(1).max(64), execId: ExecId }) },
      preValidation: async (req) => {
        if (!originAllowed(req, s.publicUrl()))
          throw new CodedError('FORBIDDEN', 'cross-origin socket refused');
        const { id, execId } = req.params as { id: string; execId: string };
        await s.nodes.get(id);
        await assertDockerAccess(s, req, id, true);
        const exec = await execInfo(s, id, execId);
        if (principalOf(req).user.role !== 'owner') {
          if (exec.privileged)
            throw new CodedError(
              'DOCKER_POLICY_DENIED',
              'a privileged exec (policy: privileged; only a Panel owner may)',
              {
                details: { rule: 'privileged' },
              },
            );
          checkPolicy('POST', `/containers/${exec.containerId}/exec`, '', undefined, {
            bindAllow: [],
            agent: s.dockerTunnels.agentContainer(id),
          });
        }
      },
    },
    (ws, req) => {
      const { id, execId } = req.params as { id: string; execId: string };
      execTerminal(s, ws, id, execId);
    },
  );

  const BindAllow = z.object({
    bindAllow: z
      .array(
        z
          .string()
          .min(1)
          .max(4096)
          .refine((p) => p.startsWith('/') && !p.split('/').includes('..'), 'an absolute path without ".."'),
      )
      .max(64),
  });
  const NodeParams = z.object({ id: z.string().min(1).max(64) });
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/api/nodes/:id/docker-policy',
    {
      config: { auth: 'admin' },
      schema: {
        tags: ['docker'],
        description:
          "The node's Docker policy settings: the host paths bind mounts may come from (for non-owners).",
        params: NodeParams,
        response: { 200: BindAllow },
      },
    },
    async (req) => {
      await s.nodes.get(req.params.id);
      return { bindAllow: await s.dockerPolicy.bindAllow(req.params.id) };
    },
  );
  r.put(
    '/api/nodes/:id/docker-policy',
    {
      config: { auth: 'owner' },
      schema: {
        tags: ['docker'],
        description:
          'Sets the bind allow-list (owners only: a wider list is a way around the policy). The Docker socket stays refused.',
        params: NodeParams,
        body: BindAllow,
        response: { 200: BindAllow },
      },
    },
    async (req) => {
      await s.nodes.get(req.params.id);
      const list = [...new Set(req.body.bindAllow.map((p) => path.posix.normalize(p)))];
      await s.dockerPolicy.setBindAllow(req.params.id, list);
      return { bindAllow: list };
    },
  );

  const Cached = z
    .object({
      Id: z.string(),
      Names: z.array(z.string()),
      Image: z.string(),
      Created: z.number(),
      State: z.string(),
      Status: z.string(),
      Labels: z.record(z.string(), z.string()),
    })
    .passthrough();
  const CacheAnswer = z.object({
    containers: z.array(Cached),
    syncedAt: z.string(),
    truncated: z.boolean(),
  });
  r.get(
    '/api/nodes/:id/docker-cache/containers',
    {
      config: { auth: 'user' },
      schema: {
        tags: ['docker'],
        description:
          "Every container of the node (`docker ps -a`, newest first) from the Agent's cache, kept current from Docker's event stream (a container made or removed outside shows within a second): the Engine list's fields the UI shows (Id, Names, Image, ImageID, Command, Created, State, Status, Ports, Labels). `offset`/`limit` page it; `total` counts them all. Needs docker.read on the node.",
        params: NodeParams,
        querystring: z.object({
          offset: z.coerce.number().int().min(0).max(1_000_000).default(0),
          limit: z.coerce.number().int().min(1).max(20_000).default(20_000),
        }),
        response: {
          200: CacheAnswer.extend({ total: z.number().int(), offset: z.number().int() }),
        },
      },
    },
    async (req) => {
      await s.nodes.get(req.params.id);
      await assertDockerAccess(s, req, req.params.id, false);
      const { offset, limit } = req.query;
      // only the page crosses the link and is checked here (a list's first rows come cheap); an
      // Agent from before `offset`/`limit` answers the whole list, paged here
      let raw: unknown;
      let paged = true;
      try {
        raw = await s.gateway.request(req.params.id, 'docker_containers', { offset, limit });
      } catch (e) {
        if (!(isCodedError(e) && e.code === 'CONFIG_INVALID')) throw e;
        raw = await s.gateway.request(req.params.id, 'docker_containers', {});
        paged = false;
      }
      const a = CacheAnswer.extend({ total: z.number().int().min(0).optional() }).safeParse(raw);
      if (!a.success)
        throw new CodedError('DOCKER_ERROR', "the Agent's container list is not what was expected");
      const whole = !paged || a.data.total === undefined;
      return {
        containers: whole ? a.data.containers.slice(offset, offset + limit) : a.data.containers,
        total: whole ? a.data.containers.length : (a.data.total ?? 0),
        offset,
        syncedAt: a.data.syncedAt,
        truncated: a.data.truncated,
      };
    },
  );

  // A volume's files (issue 11): browsing is a Docker read (docker.read on the node); the Agent
  // resolves every path inside the volume (`..` and links out: 400 PATH_OUTSIDE_ROOT)
  const VolumeParams = NodeParams.extend({ name: VolumeName });
  r.get(
    '/api/nodes/:id/volumes/:name/files',
    {
      config: { auth: 'user' },
      schema: {
        tags: ['docker'],
        description:
          "One page of a directory inside the Docker volume `name` (its Mountpoint from the node's Engine; local driver only): directories first, then by `sort` in `order`; `total` counts the directory. Each entry: name, type (file, directory, symlink, other), size, mode, modifiedAt, and for a symlink its `target` (the link's text, never followed). `..` or a link that leads out of the volume: 400 PATH_OUTSIDE_ROOT; 404 NOT_FOUND (no node or volume), 404 FILE_NOT_FOUND. Needs docker.read on the node.",
        params: VolumeParams,
        querystring: z.object({
          path: z.string().max(4096).default('/'),
          offset: z.coerce.number().int().min(0).max(100_000_000).default(0),
          limit: z.coerce.number().int().min(1).max(LIST_FILES_MAX_LIMIT).default(LIST_FILES_DEFAULT_LIMIT),
          sort: FileSort.default('name'),
          order: SortOrder.default('asc'),
        }),
        response: { 200: VolumeListFilesData },
      },
    },
    async (req) => {
      await s.nodes.get(req.params.id);
      await assertDockerAccess(s, req, req.params.id, false);
      return VolumeListFilesData.parse(
        await s.gateway.request(req.params.id, 'volume_list_files', {
          volume: req.params.name,
          ...req.query,
        }),
      );
    },
  );
  r.get(
    '/api/nodes/:id/volumes/:name/file',
    {
      config: { auth: 'user' },
      schema: {
        tags: ['docker'],
        description: `One regular file inside the Docker volume \`name\`, at most ${VOLUME_FILE_MAX_BYTES} bytes: \`encoding\` utf8 (text) or base64, with its sha256. Larger: 413 FILE_TOO_LARGE (download it: POST …/file-download). Paths as for …/files (400 PATH_OUTSIDE_ROOT). Needs docker.read on the node.`,
        params: VolumeParams,
        querystring: z.object({ path: FilePath }),
        response: { 200: GetFileData },
      },
    },
    async (req) => {
      await s.nodes.get(req.params.id);
      await assertDockerAccess(s, req, req.params.id, false);
      return GetFileData.parse(
        await s.gateway.request(req.params.id, 'volume_get_file', {
          volume: req.params.name,
          path: req.query.path,
        }),
      );
    },
  );
  /** A volume file's ticket from the Agent, with the links a browser uses (download or upload). */
  const volumeFileTicket = async (
    req: FastifyRequest,
    nodeId: string,
    volume: string,
    direction: 'download' | 'upload',
    body: { path: string; ttlSeconds: number; size?: number },
  ) => {
    await s.nodes.get(nodeId);
    await assertDockerAccess(s, req, nodeId, direction === 'upload');
    const data = CreateTransferData.parse(
      direction === 'upload'
        ? await s.gateway.request(nodeId, 'volume_file_upload', { volume, ...body, size: body.size ?? 0 })
        : await s.gateway.request(nodeId, 'volume_file_download', { volume, ...body }),
    );
    const urls = await s.transferLinks.issue(data.ticket, {
      nodeId,
      serverId: '',
      direction,
      size: data.size,
      name: data.name,
      expiresAt: Date.parse(data.expiresAt),
    });
    if (req.activity)
      req.activity.details = {
        nodeId,
        volume,
        ...(direction === 'upload' ? { path: body.path, size: String(body.size) } : {}),
      };
    return { ticket: data.ticket, expiresAt: data.expiresAt, size: data.size, name: data.name, ...urls };
  };
  r.post(
    '/api/nodes/:id/volumes/:name/file-download',
    {
      config: { auth: 'user', activity: 'node.volume.download' },
      schema: {
        tags: ['docker'],
        description:
          'A single-use link (valid `ttlSeconds`, at most and by default 300) that downloads one regular file inside the Docker volume `name`: `GET url` (its size announced; the bytes stream from the Agent). Paths as for …/files (400 PATH_OUTSIDE_ROOT). Needs docker.read on the node.',
        params: VolumeParams,
        body: z.object({
          path: FilePath,
          ttlSeconds: z.number().int().min(5).max(300).default(300),
        }),
        response: {
          201: CreateTransferData.pick({ ticket: true, expiresAt: true, size: true, name: true }).extend({
            url: z.string(),
            relayUrl: z.string(),
          }),
        },
      },
    },
    async (req, reply) =>
      reply
        .status(201)
        .send(await volumeFileTicket(req, req.params.id, req.params.name, 'download', req.body)),
  );

  // Changing a volume's files (issue 11): a Docker change (docker.write on the node), the same
  // path rules; bodies stream through the file transport (a ticket: straight to the Agent, or the
  // Panel's relay), never over the Agent link
  r.post(
    '/api/nodes/:id/volumes/:name/file-upload',
    {
      config: { auth: 'user', activity: 'node.volume.upload' },
      schema: {
        tags: ['docker'],
        description:
          "A single-use link (valid `ttlSeconds`, at most and by default 300) to upload exactly `size` bytes as the file `path` inside the Docker volume `name`: `PUT url` with the bytes (straight to the node's Agent when it has a `transferUrl`, else `relayUrl`, the Panel's relay). Its folder must exist; the file is written under a temporary name and renamed over the target only when every byte came (a longer or shorter body changes nothing). Paths as for …/files (400 PATH_OUTSIDE_ROOT, NAME_INVALID; 404 FILE_NOT_FOUND for a missing folder). Needs docker.write on the node.",
        params: VolumeParams,
        body: z.object({
          path: FilePath,
          size: z.number().int().min(0).max(TRANSFER_MAX_BYTES),
          ttlSeconds: z.number().int().min(5).max(300).default(300),
        }),
        response: {
          201: CreateTransferData.pick({ ticket: true, expiresAt: true, size: true, name: true }).extend({
            url: z.string(),
            relayUrl: z.string(),
          }),
        },
      },
    },
    async (req, reply) =>
      reply.status(201).send(await volumeFileTicket(req, req.params.id, req.params.name, 'upload', req.body)),
  );
  const volumeChange = <B extends z.ZodTypeAny>(
    url: string,
    activity: string,
    action: 'volume_create_directory' | 'volume_rename' | 'volume_delete_files',
    body: B,
    description: string,
  ) =>
    r.post(
      url,
      {
        config: { auth: 'user', activity },
        schema: {
          tags: ['docker'],
          description: `${description} Paths as for …/files (400 PATH_OUTSIDE_ROOT, NAME_INVALID; 404 FILE_NOT_FOUND). Answers \`{ paths }\`, the entries changed. Needs docker.write on the node.`,
          params: VolumeParams,
          body,
          response: { 200: FileChangeData },
        },
      },
      async (req) => {
        const { id: nodeId, name } = req.params as { id: string; name: string };
        await s.nodes.get(nodeId);
        await assertDockerAccess(s, req, nodeId, true);
        const payload = req.body as Record<string, unknown>;
        const data = FileChangeData.parse(
          await s.gateway.request(nodeId, action, { volume: name, ...payload } as never),
        );
        if (req.activity)
          req.activity.details = {
            nodeId,
            volume: name,
            ...Object.fromEntries(
              Object.entries(payload).map(([k, v]) => [k, Array.isArray(v) ? v.join('\n') : String(v)]),
            ),
          };
        return data;
      },
    );
  volumeChange(
    '/api/nodes/:id/volumes/:name/mkdir',
    'node.volume.mkdir',
    'volume_create_directory',
    z.object({ path: FilePath }),
    'Makes the folder `path` inside the Docker volume `name` (missing parents too; a component that is a link is refused). 409 FILE_EXISTS.',
  );
  volumeChange(
    '/api/nodes/:id/volumes/:name/rename',
    'node.volume.rename',
    'volume_rename',
    z.object({ from: FilePath, to: FilePath }),
    'Renames or moves one entry inside the Docker volume `name` (a link moves as a link); `to` must not exist (409 FILE_EXISTS) and its folder must.',
  );
  volumeChange(
    '/api/nodes/:id/volumes/:name/delete',
    'node.volume.delete',
    'volume_delete_files',
    z.object({ root: FilePath.default('/'), names: z.array(FileName).min(1).max(DELETE_FILES_MAX) }),
    'Deletes entries (files, links, whole folders) of the folder `root` inside the Docker volume `name`; every one is checked before any goes.',
  );

  const Perms = z.object({ permissions: z.array(z.enum(DOCKER_PERMISSIONS)).max(2) });
  r.get(
    '/api/docker/nodes',
    {
      config: { auth: 'user' },
      schema: {
        tags: ['docker'],
        description:
          "The nodes whose Docker the caller may use, with the caller's permissions there (admins and owners: every node, both). The web UI shows Docker (read-only without docker.write) from it.",
        response: {
          200: z.array(
            z.object({
              id: z.string(),
              name: z.string(),
              online: z.boolean(),
              permissions: z.array(z.enum(DOCKER_PERMISSIONS)),
            }),
          ),
        },
      },
    },
    async (req) => {
      const p = principalOf(req);
      const nodes = await s.nodes.list();
      if (hasRole(p.user.role, 'admin'))
        return nodes.map((n) => ({
          id: n.id,
          name: n.name,
          online: n.online,
          permissions: [...DOCKER_PERMISSIONS],
        }));
      const mine = await s.dockerAccess.ofUser(p.user.id);
      return nodes.flatMap((n) => {
        const perms = mine.get(n.id);
        return perms ? [{ id: n.id, name: n.name, online: n.online, permissions: [...perms].sort() }] : [];
      });
    },
  );
  r.get(
    '/api/nodes/:id/docker-access',
    {
      config: { auth: 'admin' },
      schema: {
        tags: ['docker'],
        description: "Users' node-level Docker permissions (admins and owners hold both without a row).",
        params: NodeParams,
        response: { 200: z.array(Perms.extend({ userId: z.string() })) },
      },
    },
    async (req) => {
      await s.nodes.get(req.params.id);
      return s.dockerAccess.list(req.params.id);
    },
  );
  r.put(
    '/api/nodes/:id/docker-access/:userId',
    {
      config: { auth: 'admin' },
      schema: {
        tags: ['docker'],
        description:
          "Sets a user's Docker permissions on the node: docker.read (GET/HEAD through the relay), docker.write (the rest); [] removes them. The policy still applies.",
        params: NodeParams.extend({ userId: z.string().min(1).max(64) }),
        body: Perms,
        response: { 200: Perms },
      },
    },
    async (req) => {
      await s.nodes.get(req.params.id);
      if (!(await s.dockerAccess.set(req.params.id, req.params.userId, req.body.permissions)))
        throw new CodedError('NOT_FOUND', 'no such user');
      return { permissions: [...(await s.dockerAccess.of(req.params.id, req.params.userId))].sort() };
    },
  );

  await app.register(async (scope) => {
    // the body is the Engine's business: no parser reads it here, the handler streams it
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));

    const relay = async (req: FastifyRequest, reply: FastifyReply) => {
      const { id } = req.params as { id: string };
      await s.nodes.get(id);
      await assertDockerAccess(s, req, id, req.method !== 'GET' && req.method !== 'HEAD');
      const ep = enginePath(req.raw.url ?? '', `/api/nodes/${encodeURIComponent(id)}/docker`);
      const method = req.method;
      // the activity log (every change): which node, method and Engine path; never a body or query
      if (req.activity) {
        req.activity.action = 'node.docker';
        req.activity.details = { nodeId: id, method, path: ep.path.slice(0, 512) };
      }
      const up = upgrades.get(req.raw);
      if (up) return hijack(req, reply, id, ep, up);
      const kind = bodyKind(method, ep.path);
      const cap = bodyCap(kind);
      checkDeclaredLength(req.headers, cap);
      const headers = forwardHeaders(req.headers);
      // a pull or push naming a registry with stored credentials, and none from the client: the
      // Panel's go with it (the caller holds docker.write here: every POST needs it)
      const image = registryImageOf(method, ep.path, ep.query);
      if (image !== undefined && !sentRegistryAuth(headers['x-registry-auth'])) {
        const auth = await s.registries.authForImage(image);
        if (auth) {
          headers['x-registry-auth'] = registryAuthHeader(auth);
          if (req.activity?.details)
            req.activity.details = { ...req.activity.details, registry: hostOfImage(image) };
        }
      }
      // a build: its FROM lines (inside the streamed context) may name any registry, so every
      // stored registry's credentials go as X-Registry-Config, unless the client sent its own
      if (method === 'POST' && ep.path === '/build' && !sentRegistryConfig(headers['x-registry-config'])) {
        const auths = await s.registries.allAuths();
        if (auths.length > 0) {
          headers['x-registry-config'] = registryConfigHeader(auths);
          if (req.activity?.details)
            req.activity.details = {
              ...req.activity.details,
              registry: auths
                .map((a) => a.serveraddress)
                .join(',')
                .slice(0, 512),
            };
        }
      }
      const hasBody =
        method !== 'GET' &&
        method !== 'HEAD' &&
        (req.headers['transfer-encoding'] !== undefined ||
          (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0'));
      let body: Buffer | Readable | undefined;
      let parsed: unknown;
      if (hasBody && kind === 'inspect') {
        const raw = await readCapped(req.raw, cap);
        try {
          parsed = raw.length === 0 ? undefined : JSON.parse(raw.toString('utf8'));
        } catch {
          throw new CodedError('VALIDATION_FAILED', 'the body is not JSON');
        }
        // the Engine reads what the policy read: the body as parsed here (one value per key)
        body = parsed === undefined ? undefined : Buffer.from(JSON.stringify(parsed));
        delete headers['transfer-encoding'];
        if (body) headers['content-length'] = String(body.length);
        else delete headers['content-length'];
      } else if (hasBody) body = req.raw.pipe(capped(cap));
      const isOwner = principalOf(req).user.role === 'owner';
      // what needs no Agent is refused before the tunnel (the Agent's own container needs its answer)
      if (!isOwner) checkPolicy(method, ep.path, ep.query, parsed, await policyContext(id, false));

      // a game server's container: its power actions are the server's, remove/update are refused
      const ask = managedAsk(method, ep.path);
      const managed = ask ? await managedServerOf(s, id, ask.ref) : null;
      if (ask && managed) {
        if (req.activity) req.activity.details = { ...req.activity.details, serverId: managed.serverId };
        if (ask.kind === 'refuse') refuseManaged(managed.serverId, ask.what);
        else {
          const p = principalOf(req);
          if (!hasRole(p.user.role, 'admin'))
            await s.access.requireAccess(p, POWER_PERMISSION[ask.action], managed.serverId);
          const r = await managedPower(s, managed.serverId, managed.running, ask.action, p.user.id);
          // Docker's own error shape (a string: the Panel's error schema is not applied to it)
          if (r.body) return reply.code(r.status).type('application/json').send(JSON.stringify(r.body));
          return reply.code(r.status).send();
        }
      }

      // the client going away ends the tunnel, and with it the Agent's Docker connection
      const abort = new AbortController();
      const gone = () => abort.abort();
      reply.raw.once('close', gone);
      const tunnel = await s.dockerTunnels.open(id, abort.signal);
      abort.signal.addEventListener('abort', () => tunnel.destroy(), { once: true });
      if (abort.signal.aborted) tunnel.destroy();
      if (!isOwner) {
        try {
          checkPolicy(method, ep.path, ep.query, parsed, await policyContext(id, true));
        } catch (e) {
          tunnel.destroy();
          throw e;
        }
      }
      const res = await exchange(tunnel, {
        method,
        path: ep.forward,
        headers,
        headersTimeoutMs: headersTimeout(ep.path),
        ...(body ? { body } : {}),
      });
      res.once('close', () => tunnel.destroy());
      return reply
        .code(res.statusCode ?? 502)
        .headers(responseHeaders(res.headers))
        .send(res);
    };

    const policyContext = async (nodeId: string, withAgent: boolean): Promise<PolicyContext> => ({
      bindAllow: await s.dockerPolicy.bindAllow(nodeId),
      ...(withAgent ? { agent: s.dockerTunnels.agentContainer(nodeId) } : {}),
    });

    /** exec start / attach with Upgrade: the Engine's 101 and then the raw stream, both ways */
    const hijack = async (
      req: FastifyRequest,
      reply: FastifyReply,
      id: string,
      ep: EnginePath,
      up: Upgrade,
    ) => {
      const headers = forwardHeaders(req.headers);
      delete headers['transfer-encoding'];
      delete headers['content-length'];
      if (up.body.length > 0) headers['content-length'] = String(up.body.length);
      const isOwner = principalOf(req).user.role === 'owner';
      if (!isOwner) checkPolicy(req.method, ep.path, ep.query, undefined, await policyContext(id, false));
      const tunnel = await s.dockerTunnels.open(id);
      const closeTunnel = () => tunnel.destroy();
      if (!isOwner) {
        try {
          checkPolicy(req.method, ep.path, ep.query, undefined, await policyContext(id, true));
        } catch (e) {
          tunnel.destroy();
          throw e;
        }
      }
      up.socket.once('close', closeTunnel);
      const r = await exchangeUpgrade(tunnel, {
        method: req.method,
        path: ep.forward,
        headers: { ...headers, ...upgradeHeaders(req.headers) },
        ...(up.body.length > 0 ? { body: up.body } : {}),
      });
      if (r.kind === 'response') {
        r.res.once('close', closeTunnel);
        return reply
          .code(r.res.statusCode ?? 502)
          .headers({ ...responseHeaders(r.res.headers), connection: 'close' })
          .send(r.res);
      }
      reply.hijack();
      // a hijacked reply has no onResponse: its entry is published here
      s.bus.publish({
        kind: 'user_action',
        action: 'node.docker',
        actor: principalOf(req).user.id,
        email: principalOf(req).user.email,
        ip: req.ip ?? null,
        result: 'ok',
        at: new Date().toISOString(),
        details: { nodeId: id, method: req.method, path: ep.path.slice(0, 512), upgrade: 'tcp' },
      });
      const client = up.socket as Socket;
      client.setTimeout(0);
      client.setNoDelay(true);
      client.allowHalfOpen = true;
      client.write(upgradeHead(r.res));
      if (r.head.length > 0) client.write(r.head);
      if (up.rest.length > 0) r.socket.write(up.rest);
      (r.socket as Socket).allowHalfOpen = true;
      splice(client, r.socket, closeTunnel);
      client.resume();
    };

    for (const method of METHODS) {
      scope.route({
        method,
        url: '/api/nodes/:id/docker/*',
        config: { auth: 'user' },
        exposeHeadRoute: false,
        schema: {
          tags: ['docker'],
          description:
            'The node\'s Docker Engine API, relayed: `<path>` is an Engine API path (optionally with `/v1.xx`), answered with exactly the Engine\'s status, headers and body, streamed. See docs/contracts.md "Docker through the Panel".',
          params: Params,
        },
        handler: relay,
      });
    }
  });
}
