/**
 * Authentication (session cookie or API key) and the per-route rule. Every /api and /ws route
 * must declare `config.auth`; a route without one refuses to register.
 */
import { CodedError } from '@cap/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { safeEqual } from '../lib/crypto.ts';
import { type Access, type AccessService, assertHolds, type Need } from '../modules/access/service.ts';
import type { AuthService, Principal } from '../modules/auth/service.ts';
import { hasRank, type Role } from '../modules/users/service.ts';

/**
 * public: anyone; agent: the handler checks agent credentials; user: any role (a route under
 * /api/servers/:id then checks `config.access` per server); spectator/admin/owner: at least that.
 */
export type AuthRule = 'public' | 'agent' | 'user' | 'spectator' | 'admin' | 'owner';
/** What a server route needs, fixed or from the request (its body: a power action). */
export type AccessRule = Need | ((req: FastifyRequest) => Need);
export const SESSION_COOKIE = 'cap_session';
export const CSRF_HEADER = 'x-csrf-token';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
    /** the caller's access to the route's server (routes under /api/servers/:id) */
    serverAccess: Access | null;
  }
  interface FastifyContextConfig {
    auth?: AuthRule;
    /** routes under /api/servers/:id: the permission requireAccess checks (null: seeing it) */
    access?: AccessRule;
  }
}

export interface RouteRecord {
  method: string;
  url: string;
  auth: AuthRule;
  /** for server routes: what requireAccess checks, as text ("view", "control.start", "by action: …") */
  access?: string;
}

/** A request-dependent need with the label the route table shows. */
export function accessBy(label: string, fn: (req: FastifyRequest) => Need): AccessRule {
  return Object.assign(fn, { label });
}

export function accessLabel(rule: AccessRule): string {
  if (typeof rule === 'function') return (rule as { label?: string }).label ?? 'dynamic';
  if (rule === null) return 'view';
  return typeof rule === 'string' ? rule : rule.join('+');
}

/** The route's server access, checked by the hook (handlers read it from here). */
export function serverAccessOf(req: FastifyRequest): Access {
  if (!req.serverAccess) throw new CodedError('SERVER_NOT_FOUND', 'no such server');
  return req.serverAccess;
}

export function bearerOf(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (!h) return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(h);
  return m?.[1];
}

export async function resolvePrincipal(auth: AuthService, req: FastifyRequest): Promise<Principal | null> {
  const bearer = bearerOf(req);
  if (bearer) return auth.fromApiKey(bearer);
  const cookie = req.cookies[SESSION_COOKIE];
  if (cookie) return auth.fromSessionToken(cookie, { ip: req.ip });
  return null;
}

/** What a principal limited to some servers may reach besides them. */
const SERVER_LIMITED_ROUTES = new Set([
  'GET /api/auth/me',
  'GET /api/servers',
  'GET /api/permissions',
  'GET /ws/client',
]);
/** What an admin who must enrol in 2FA (and has not) may still do. */
const ENROL_ROUTES = new Set([
  'GET /api/auth/me',
  'POST /api/auth/logout',
  'GET /api/auth/2fa',
  'POST /api/auth/2fa/enrol',
  'POST /api/auth/2fa/confirm',
  'GET /api/auth/sessions',
  'DELETE /api/auth/sessions/:id',
  'POST /api/auth/sessions/revoke-others',
]);

/** A server the principal's API key is limited away from looks like one that does not exist. */
export function canSeeServer(p: Principal, serverId: string): boolean {
  return p.serverIds === undefined || p.serverIds.includes(serverId);
}

/**
 * API-key scopes: a read-only key makes only safe requests; a server-limited key reaches its
 * servers (others answer 404 SERVER_NOT_FOUND), the server list (filtered by the route) and the
 * live socket (checked per message), and nothing else.
 */
export function checkKeyLimits(p: Principal, method: string, routeUrl: string, serverId: unknown): void {
  if (p.scope === 'read' && !SAFE_METHODS.has(method))
    throw new CodedError('FORBIDDEN', 'this API key is read-only');
  if (p.serverIds === undefined) return;
  const route = `${method === 'HEAD' ? 'GET' : method} ${routeUrl}`;
  if (routeUrl.startsWith('/api/servers/:id')) {
    if (typeof serverId !== 'string' || !canSeeServer(p, serverId))
      throw new CodedError('SERVER_NOT_FOUND', 'no such server');
    return;
  }
  if (!SERVER_LIMITED_ROUTES.has(route))
    throw new CodedError('FORBIDDEN', 'this API key is limited to some servers');
}

export function hasRole(role: Role, rule: 'user' | 'spectator' | 'admin' | 'owner'): boolean {
  return hasRank(role, rule);
}

export function installAuth(
  app: FastifyInstance,
  auth: AuthService,
  routes: RouteRecord[],
  opts: { requireTwoFactorForAdmins?: boolean; access?: AccessService } = {},
): void {
  app.decorateRequest('principal', null);
  app.decorateRequest('serverAccess', null);

  app.addHook('onRoute', (opts) => {
    const url = opts.url ?? opts.path;
    if (!url.startsWith('/api') && !url.startsWith('/ws')) return;
    let rule = (opts.config as { auth?: AuthRule } | undefined)?.auth;
    // The generated docs (swagger-ui assets and the document itself) are public by design.
    if (!rule && (url.startsWith('/api/docs') || url === '/api/openapi.json')) {
      rule = 'public';
      opts.config = { ...(opts.config ?? {}), auth: 'public' };
    }
    if (!rule) throw new Error(`route ${String(opts.method)} ${url} has no auth rule`);
    // every route of one server goes through requireAccess: it must say what it needs
    const config = opts.config as { access?: AccessRule } | undefined;
    const hasAccess = config !== undefined && Object.hasOwn(config, 'access');
    if (url.startsWith('/api/servers/:id') && !hasAccess)
      throw new Error(`route ${String(opts.method)} ${url} has no access rule`);
    if (hasAccess && rule !== 'user')
      throw new Error(`route ${String(opts.method)} ${url}: an access rule goes with auth 'user'`);
    const methods = Array.isArray(opts.method) ? opts.method : [opts.method];
    for (const m of methods)
      routes.push({
        method: String(m),
        url,
        auth: rule,
        ...(hasAccess ? { access: accessLabel(config.access as AccessRule) } : {}),
      });
  });

  app.addHook('onRequest', async (req) => {
    const rule = req.routeOptions.config?.auth;
    if (!rule || rule === 'public' || rule === 'agent') return;
    const p = await resolvePrincipal(auth, req);
    if (!p) {
      const bearer = bearerOf(req);
      if (bearer && (await auth.isExpiredApiKey(bearer)))
        throw new CodedError('AUTH_FAILED', 'the API key has expired');
      throw new CodedError('UNAUTHENTICATED', 'log in or send an API key');
    }
    req.principal = p;
    if (p.via === 'session' && !SAFE_METHODS.has(req.method)) {
      const sent = req.headers[CSRF_HEADER];
      if (typeof sent !== 'string' || !p.csrfToken || !safeEqual(sent, p.csrfToken)) {
        throw new CodedError('CSRF_FAILED', 'missing or wrong X-CSRF-Token');
      }
    }
    const routeUrl = req.routeOptions.url ?? '';
    if (
      opts.requireTwoFactorForAdmins &&
      !p.twoFactor &&
      hasRole(p.user.role, 'admin') &&
      !ENROL_ROUTES.has(`${req.method} ${routeUrl}`)
    ) {
      throw new CodedError(
        'TWO_FACTOR_REQUIRED',
        'this Panel requires two-factor authentication for admins: turn it on in your account first',
      );
    }
    checkKeyLimits(p, req.method, routeUrl, (req.params as Record<string, unknown> | undefined)?.id);
    if (!hasRole(p.user.role, rule)) throw new CodedError('FORBIDDEN', `needs the ${rule} role`);
    // a server route: a server the caller may not see is 404 before anything else is looked at
    const config = req.routeOptions.config as { access?: AccessRule } | undefined;
    if (config && Object.hasOwn(config, 'access')) {
      if (!opts.access) throw new Error('server routes need the access service');
      const id = (req.params as Record<string, unknown> | undefined)?.id;
      if (typeof id !== 'string' || id.length > 64)
        throw new CodedError('SERVER_NOT_FOUND', 'no such server');
      req.serverAccess = await opts.access.requireAccess(p, null, id);
    }
  });

  // After validation (a power action's need depends on its body): what the route needs of it.
  app.addHook('preHandler', async (req) => {
    const config = req.routeOptions.config as { access?: AccessRule } | undefined;
    if (!config || !Object.hasOwn(config, 'access')) return;
    const rule = config.access as AccessRule;
    assertHolds(serverAccessOf(req), typeof rule === 'function' ? rule(req) : rule);
  });
}

/** The principal of an authenticated route (the hook guarantees it). */
export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new CodedError('UNAUTHENTICATED', 'log in or send an API key');
  return req.principal;
}
