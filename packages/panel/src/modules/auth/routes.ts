import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { hasRole, principalOf, SESSION_COOKIE } from '../../http/auth.ts';
import { ErrorResponse, errorBody } from '../../http/errors.ts';
import type { PanelServices } from '../../services.ts';
import { PublicUser, Role } from '../users/service.ts';

const TwoFactorState = z.object({
  enabled: z.boolean(),
  /** this Panel requires 2FA for this user (PANEL_REQUIRE_2FA_FOR_ADMINS and an admin/owner) */
  required: z.boolean(),
});
const Me = z.object({
  /** username: the first part of the SFTP login `<username>.<server id>` */
  user: z.object({ id: z.string(), email: z.string(), role: Role, username: z.string() }),
  csrfToken: z.string().nullable(),
  twoFactor: TwoFactorState,
});
const SessionResult = z.object({
  twoFactorRequired: z.literal(false),
  user: z.object({ id: z.string(), email: z.string(), role: Role }),
  csrfToken: z.string(),
});
const TicketResult = z.object({
  twoFactorRequired: z.literal(true),
  /** send it with the code to POST /api/auth/login/2fa; valid 5 minutes, 5 codes */
  ticket: z.string(),
  expiresAt: z.string(),
});
const SecondFactor = z.object({
  /** the 6-digit code from the authenticator app */
  code: z
    .string()
    .regex(/^\d{6}$/, 'six digits')
    .optional(),
  /** or one of the recovery codes (each works once) */
  recoveryCode: z.string().min(1).max(64).optional(),
});
const oneFactor = (b: { code?: string | undefined; recoveryCode?: string | undefined }) =>
  (b.code === undefined) !== (b.recoveryCode === undefined);
const ONE_FACTOR = { message: 'give code or recoveryCode', path: ['code'] };
const CurrentPassword = z.string().min(1).max(256);
const SessionInfo = z.object({
  id: z.string(),
  createdAt: z.string(),
  lastSeenAt: z.string().nullable(),
  ip: z.string().nullable(),
  userAgent: z.string().nullable(),
  expiresAt: z.string(),
  /** the session this request came with */
  current: z.boolean(),
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

  // readiness, for a load balancer: 503 REPLICA_FENCED while this replica is fenced (it lost its
  // database for most of its heartbeat TTL; lib/replicas.ts); /api/health stays the liveness
  r.get(
    '/readyz',
    {
      config: { auth: 'public' },
      schema: {
        tags: ['meta'],
        response: {
          200: z.object({ status: z.literal('ready'), replicaId: z.string().optional() }),
          503: ErrorResponse,
        },
      },
    },
    async (req, reply) => {
      const replicas = s.replicas;
      if (replicas?.fenced)
        return reply
          .status(503)
          .send(
            errorBody('REPLICA_FENCED', 'this Panel replica is fenced: it lost its database', String(req.id)),
          );
      return { status: 'ready' as const, ...(replicas ? { replicaId: replicas.id } : {}) };
    },
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
      config: { auth: 'public', activity: 'auth.setup' },
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
      schema: {
        tags: ['auth'],
        description:
          'With 2FA on, answers `{ twoFactorRequired: true, ticket }` and no session: send the ticket and a code to POST /api/auth/login/2fa.',
        body: Credentials,
        response: { 200: z.union([SessionResult, TicketResult]) },
      },
    },
    async (req, reply) => {
      // the activity log keeps the email that was tried (never the password)
      if (req.activity) req.activity.email = req.body.email;
      const res = await s.auth.login(
        req.body.email,
        req.body.password,
        req.ip,
        req.cookies[SESSION_COOKIE],
        req.headers['user-agent'],
      );
      if (res.twoFactorRequired) {
        // the password was right; the login ends with POST /api/auth/login/2fa (`auth.login.2fa`)
        if (req.activity) req.activity.action = 'auth.login.password';
        return res;
      }
      if (req.activity) req.activity.actor = res.user.id;
      setSession(reply, res.token);
      return { twoFactorRequired: false as const, user: res.user, csrfToken: res.csrfToken };
    },
  );

  r.post(
    '/api/auth/login/2fa',
    {
      config: { auth: 'public' },
      schema: {
        tags: ['auth'],
        description:
          'The second login step: the ticket and a TOTP code or a recovery code. A code (time step) that was accepted once is refused (401 AUTH_FAILED); wrong codes count against the login rate limit (429 RATE_LIMITED), and a ticket takes 5 codes at most.',
        body: SecondFactor.extend({ ticket: z.string().min(1).max(256) }).refine(oneFactor, ONE_FACTOR),
        response: { 200: SessionResult },
      },
    },
    async (req, reply) => {
      const { ticket, code, recoveryCode } = req.body;
      const res = await s.auth.loginSecondFactor(
        ticket,
        { ...(code === undefined ? {} : { code }), ...(recoveryCode === undefined ? {} : { recoveryCode }) },
        req.ip,
        req.cookies[SESSION_COOKIE],
        req.headers['user-agent'],
      );
      if (req.activity) {
        req.activity.actor = res.user.id;
        req.activity.email = res.user.email;
      }
      setSession(reply, res.token);
      return { twoFactorRequired: false as const, user: res.user, csrfToken: res.csrfToken };
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
      // the other sessions end; the key sockets too unless the keys were kept
      if (req.body.keepApiKeys === true) s.clientSockets.endOtherSessions(p.user.id, p.sessionId);
      else s.clientSockets.endUser(p.user.id, p.sessionId);
      // SFTP sessions logged in with the old password close too
      await s.sftp.revoke(p.user.id);
      return reply.status(204).send(null);
    },
  );

  r.get(
    '/api/auth/me',
    { config: { auth: 'user' }, schema: { tags: ['auth'], response: { 200: Me } } },
    async (req) => {
      const p = principalOf(req);
      const username = (await s.users.get(p.user.id))?.username ?? '';
      return { user: { ...p.user, username }, csrfToken: p.csrfToken ?? null, twoFactor: twoFactorState(p) };
    },
  );

  const twoFactorState = (p: ReturnType<typeof principalOf>) => ({
    enabled: p.twoFactor,
    required: s.config.requireTwoFactorForAdmins && hasRole(p.user.role, 'admin'),
  });
  const factorOf = (b: { code?: string | undefined; recoveryCode?: string | undefined }) => ({
    ...(b.code === undefined ? {} : { code: b.code }),
    ...(b.recoveryCode === undefined ? {} : { recoveryCode: b.recoveryCode }),
  });
  const RecoveryCodes = z.object({ recoveryCodes: z.array(z.string()) });

  r.get(
    '/api/auth/2fa',
    {
      config: { auth: 'user' },
      schema: {
        tags: ['auth'],
        response: { 200: TwoFactorState.extend({ recoveryCodesLeft: z.number().int() }) },
      },
    },
    async (req) => {
      const p = principalOf(req);
      const st = await s.twoFactor.status(p.user.id);
      return { ...twoFactorState(p), enabled: st.enabled, recoveryCodesLeft: st.recoveryCodesLeft };
    },
  );

  r.post(
    '/api/auth/2fa/enrol',
    {
      config: { auth: 'user' },
      schema: {
        tags: ['auth'],
        description:
          'Starts enrolment: a new TOTP secret, its otpauth:// URI and a QR code (PNG data URL). Nothing changes until POST /api/auth/2fa/confirm; the secret is never shown again afterwards. 409 INVALID_STATE when 2FA is already on.',
        response: {
          200: z.object({ secret: z.string(), otpauthUri: z.string(), qrDataUrl: z.string() }),
        },
      },
    },
    async (req) => s.twoFactor.start(principalOf(req).user.id),
  );

  r.post(
    '/api/auth/2fa/confirm',
    {
      config: { auth: 'user' },
      schema: {
        tags: ['auth'],
        description:
          'Turns 2FA on with the current password and a code from the new secret; answers the 10 recovery codes, shown this once (each works once). The confirming code cannot be used again.',
        body: z.object({ currentPassword: CurrentPassword, code: z.string().regex(/^\d{6}$/, 'six digits') }),
        response: { 200: RecoveryCodes },
      },
    },
    async (req) => {
      const userId = principalOf(req).user.id;
      await s.auth.verifyOwnPassword(userId, req.body.currentPassword);
      await s.auth.hitSecondFactorBudget(userId);
      return { recoveryCodes: await s.twoFactor.confirm(userId, req.body.code) };
    },
  );

  r.post(
    '/api/auth/2fa/disable',
    {
      config: { auth: 'user' },
      schema: {
        tags: ['auth'],
        description: 'Turns 2FA off: needs the current password and a code (TOTP or recovery code).',
        body: SecondFactor.extend({ currentPassword: CurrentPassword }).refine(oneFactor, ONE_FACTOR),
        response: { 204: z.null() },
      },
    },
    async (req, reply) => {
      const userId = principalOf(req).user.id;
      await s.auth.verifyOwnPassword(userId, req.body.currentPassword);
      await s.auth.hitSecondFactorBudget(userId);
      await s.twoFactor.verify(userId, factorOf(req.body));
      await s.twoFactor.disable(userId);
      return reply.status(204).send(null);
    },
  );

  r.post(
    '/api/auth/2fa/recovery-codes',
    {
      config: { auth: 'user' },
      schema: {
        tags: ['auth'],
        description:
          'A new set of recovery codes (the old ones stop working): needs the password and a code.',
        body: SecondFactor.extend({ currentPassword: CurrentPassword }).refine(oneFactor, ONE_FACTOR),
        response: { 200: RecoveryCodes },
      },
    },
    async (req) => {
      const userId = principalOf(req).user.id;
      await s.auth.verifyOwnPassword(userId, req.body.currentPassword);
      await s.auth.hitSecondFactorBudget(userId);
      await s.twoFactor.verify(userId, factorOf(req.body));
      return { recoveryCodes: await s.twoFactor.regenerateRecoveryCodes(userId) };
    },
  );

  r.get(
    '/api/auth/sessions',
    {
      config: { auth: 'user' },
      schema: {
        tags: ['auth'],
        description: 'Your live sessions (where they came from, when last seen); `current` is this one.',
        response: { 200: z.array(SessionInfo) },
      },
    },
    async (req) => {
      const p = principalOf(req);
      return s.auth.listSessions(p.user.id, p.sessionId);
    },
  );

  r.delete(
    '/api/auth/sessions/:id',
    {
      config: { auth: 'user' },
      schema: {
        tags: ['auth'],
        description: 'Ends one of your sessions (its next request is 401); 404 for an id that is not yours.',
        params: z.object({ id: z.string().min(1).max(64) }),
        response: { 204: z.null() },
      },
    },
    async (req, reply) => {
      const userId = principalOf(req).user.id;
      const sessionId = await s.auth.revokeSession(userId, req.params.id);
      s.clientSockets.endSession(userId, sessionId);
      return reply.status(204).send(null);
    },
  );

  r.post(
    '/api/auth/sessions/revoke-others',
    {
      config: { auth: 'user' },
      schema: {
        tags: ['auth'],
        description: 'Logs out every other session of yours (API keys stay).',
        response: { 204: z.null() },
      },
    },
    async (req, reply) => {
      const p = principalOf(req);
      await s.auth.endSessionsOf(p.user.id, p.sessionId, { keepApiKeys: true });
      s.clientSockets.endOtherSessions(p.user.id, p.sessionId);
      return reply.status(204).send(null);
    },
  );
}
