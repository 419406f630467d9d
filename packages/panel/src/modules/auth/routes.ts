import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { principalOf, SESSION_COOKIE } from '../../http/auth.ts';
import type { PanelServices } from '../../services.ts';
import { PublicUser, Role } from '../users/service.ts';

const Me = z.object({
  user: z.object({ id: z.string(), email: z.string(), role: Role }),
  csrfToken: z.string().nullable(),
});
const LoginResult = z.object({
  user: z.object({ id: z.string(), email: z.string(), role: Role }),
  csrfToken: z.string(),
});
const Credentials = z.object({ email: z.email().max(254), password: z.string().min(1).max(256) });

export const PANEL_VERSION = '0.1.0';

export async function authRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const secure = s.config.publicUrl.startsWith('https://');
  const setSession = (reply: FastifyReply, token: string) =>
    reply.setCookie(SESSION_COOKIE, token, {
      httpOnly: true,
      sameSite: 'lax',
      secure,
      path: '/',
      maxAge: Math.floor(s.config.sessionTtlMs / 1000),
    });

  r.get(
    '/api/health',
    {
      config: { auth: 'public' },
      schema: {
        tags: ['meta'],
        response: { 200: z.object({ status: z.literal('ok'), version: z.string() }) },
      },
    },
    async () => ({ status: 'ok' as const, version: PANEL_VERSION }),
  );

  r.get(
    '/api/setup',
    {
      config: { auth: 'public' },
      schema: { tags: ['auth'], response: { 200: z.object({ required: z.boolean() }) } },
    },
    async () => ({ required: await s.auth.setupRequired() }),
  );

  r.post(
    '/api/setup',
    {
      config: { auth: 'public' },
      schema: {
        tags: ['auth'],
        description: 'Create the first owner with the one-time token printed on the console.',
        body: Credentials.extend({ token: z.string().min(1).max(256), password: z.string().min(8).max(256) }),
        response: { 200: z.object({ user: PublicUser, csrfToken: z.string() }) },
      },
    },
    async (req, reply) => {
      const res = await s.auth.completeSetup(req.body.token, req.body.email, req.body.password);
      setSession(reply, res.token);
      return { user: res.user, csrfToken: res.csrfToken };
    },
  );

  r.post(
    '/api/auth/login',
    {
      config: { auth: 'public' },
      schema: { tags: ['auth'], body: Credentials, response: { 200: LoginResult } },
    },
    async (req, reply) => {
      const res = await s.auth.login(req.body.email, req.body.password, req.ip, req.cookies[SESSION_COOKIE]);
      setSession(reply, res.token);
      return { user: res.user, csrfToken: res.csrfToken };
    },
  );

  r.post(
    '/api/auth/logout',
    { config: { auth: 'user' }, schema: { tags: ['auth'], response: { 204: z.null() } } },
    async (req, reply) => {
      const p = principalOf(req);
      if (p.sessionId) {
        await s.auth.logout(p.sessionId);
        s.clientSockets.endSession(p.user.id, p.sessionId);
      }
      reply.clearCookie(SESSION_COOKIE, { path: '/' });
      return reply.status(204).send(null);
    },
  );

  r.post(
    '/api/auth/password',
    {
      config: { auth: 'user' },
      schema: {
        tags: ['auth'],
        description:
          'Change your own password. Needs the current one; ends your other sessions and revokes your API keys unless keepApiKeys is true.',
        body: z.object({
          currentPassword: z.string().min(1).max(256),
          newPassword: z.string().min(8).max(256),
          /** keep your API keys working (default: they are revoked) */
          keepApiKeys: z.boolean().optional(),
        }),
        response: { 204: z.null() },
      },
    },
    async (req, reply) => {
      const p = principalOf(req);
      await s.auth.changeOwnPassword(p.user.id, req.body.currentPassword, req.body.newPassword, p.sessionId, {
        keepApiKeys: req.body.keepApiKeys === true,
      });
      s.clientSockets.endUser(p.user.id, p.sessionId);
      return reply.status(204).send(null);
    },
  );

  r.get(
    '/api/auth/me',
    { config: { auth: 'user' }, schema: { tags: ['auth'], response: { 200: Me } } },
    async (req) => {
      const p = principalOf(req);
      return { user: p.user, csrfToken: p.csrfToken ?? null };
    },
  );
}
