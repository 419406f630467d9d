/**
 * Every state-changing REST request (POST/PUT/PATCH/DELETE under /api, succeeded or failed) is
 * published once as a `user_action` when its response is sent: the action's name, who, from
 * which address, the server (routes under /api/servers/:id) and the result (`ok` or the error
 * code). Nothing of the body is kept; a login handler adds only the email that was tried.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { EventBus } from '../../bus/index.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** what a handler adds to its activity entry (set per request by the hook) */
    activity: {
      action?: string;
      actor?: string;
      email?: string;
      details?: Record<string, string>;
    } | null;
    /** the error code the error handler answered with */
    errorCode: string | undefined;
  }
  interface FastifyContextConfig {
    /** the activity action's name; without it one is derived from the method and route */
    activity?: string;
  }
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const SINGULAR = new Map([
  ['servers', 'server'],
  ['users', 'user'],
  ['nodes', 'node'],
  ['templates', 'template'],
  ['allocations', 'allocation'],
  ['api-keys', 'api_key'],
  ['agents', 'agent'],
  ['operations', 'operation'],
]);
const VERB = new Map([
  ['POST', 'create'],
  ['PUT', 'update'],
  ['PATCH', 'update'],
  ['DELETE', 'delete'],
]);

/**
 * `POST /api/servers` → `server.create`, `PATCH /api/servers/:id` → `server.update`,
 * `POST /api/servers/:id/power` → `server.power`, `DELETE /api/users/:id/sessions/:sid` →
 * `user.sessions.delete`, `POST /api/auth/login` → `auth.login`.
 */
export function actionOf(method: string, routeUrl: string): string {
  const parts = routeUrl
    .replace(/^\/api\//, '')
    .split('/')
    .filter((p) => p !== '' && !p.startsWith(':'));
  const [head, ...rest] = parts;
  const first = SINGULAR.get(head ?? '') ?? head ?? 'api';
  const names = [first, ...rest];
  const last = routeUrl.split('/').pop() ?? '';
  // a named sub-action posted to (power, login, reinstall) is its own verb; anything else says
  // what the method does: the collection or item created, updated or deleted
  const namedAction = rest.length > 0 && !last.startsWith(':') && method === 'POST';
  if (!namedAction) names.push(VERB.get(method) ?? method.toLowerCase());
  return names.join('.');
}

function serverIdOf(req: FastifyRequest, routeUrl: string): string | undefined {
  if (!routeUrl.startsWith('/api/servers/:id')) return undefined;
  const id = (req.params as Record<string, unknown> | undefined)?.id;
  return typeof id === 'string' && id.length > 0 && id.length <= 64 ? id : undefined;
}

function resultOf(req: FastifyRequest, status: number): string {
  if (status < 400) return 'ok';
  if (req.errorCode) return req.errorCode;
  return status === 404 ? 'NOT_FOUND' : `HTTP_${status}`;
}

/** Installs the hooks on the app (before the auth hook, so refusals are logged too). */
export function installActivityHooks(app: FastifyInstance, bus: EventBus): void {
  app.decorateRequest('activity', null);
  app.decorateRequest('errorCode', undefined);
  app.addHook('onRequest', async (req) => {
    req.activity = {};
  });
  app.addHook('onResponse', async (req, reply) => {
    const routeUrl = req.routeOptions.url;
    // only real routes (an unknown path is no action) and only mutations
    if (!routeUrl?.startsWith('/api/') || !MUTATING.has(req.method)) return;
    const extra = req.activity ?? {};
    const serverId = serverIdOf(req, routeUrl);
    bus.publish({
      kind: 'user_action',
      action: extra.action ?? req.routeOptions.config?.activity ?? actionOf(req.method, routeUrl),
      actor: req.principal?.user.id ?? extra.actor ?? null,
      ...(req.principal ? { email: req.principal.user.email } : extra.email ? { email: extra.email } : {}),
      ip: req.ip ?? null,
      ...(serverId ? { serverId } : {}),
      result: resultOf(req, reply.statusCode),
      at: new Date().toISOString(),
      ...(extra.details ? { details: extra.details } : {}),
    });
  });
}
