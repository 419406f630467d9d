/**
 * Authentication (session cookie or API key) and the per-route rule. Every /api and /ws route
 * must declare `config.auth`; a route without one refuses to register.
 */
import { CodedError } from '@cap/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { safeEqual } from '../lib/crypto.ts';
import type { AuthService, Principal } from '../modules/auth/service.ts';
import { type Role, roleRank } from '../modules/users/service.ts';

/** public: anyone; agent: the handler checks agent credentials; user: any role; admin/owner: at least that. */
export type AuthRule = 'public' | 'agent' | 'user' | 'admin' | 'owner';
export const SESSION_COOKIE = 'cap_session';
export const CSRF_HEADER = 'x-csrf-token';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    auth?: AuthRule;
  }
}

export interface RouteRecord {
  method: string;
  url: string;
  auth: AuthRule;
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
const SERVER_LIMITED_ROUTES = new Set(['GET /api/auth/me', 'GET /api/servers', 'GET /ws/client']);
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

export function hasRole(role: Role, rule: 'user' | 'admin' | 'owner'): boolean {
  return rule === 'user' || roleRank[role] >= roleRank[rule];
}

export function installAuth(
  app: FastifyInstance,
  auth: AuthService,
  routes: RouteRecord[],
  opts: { requireTwoFactorForAdmins?: boolean } = {},
): void {
  app.decorateRequest('principal', null);

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
    const methods = Array.isArray(opts.method) ? opts.method : [opts.method];
    for (const m of methods) routes.push({ method: String(m), url, auth: rule });
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
  });
}

/** The principal of an authenticated route (the hook guarantees it). */
export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new CodedError('UNAUTHENTICATED', 'log in or send an API key');
  return req.principal;
}
