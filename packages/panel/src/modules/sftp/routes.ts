import { AGENT_ID_HEADER, CodedError, SftpAuthRequest, SftpAuthResponse } from '@cap/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { bearerOf, principalOf } from '../../http/auth.ts';
import type { PanelServices } from '../../services.ts';
import { SshKey } from './ssh-keys.ts';

export async function sftpRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const nodeOf = new WeakMap<FastifyRequest, string>();
  r.post(
    '/api/agents/sftp/auth',
    {
      config: { auth: 'agent' },
      // the Agent's JWT is checked before the body is read
      onRequest: async (req) => {
        const token = bearerOf(req);
        if (!token) throw new CodedError('AUTH_FAILED', 'missing agent token');
        const nodeId = await s.agents.verify(token);
        const hint = req.headers[AGENT_ID_HEADER];
        if (typeof hint === 'string' && hint !== nodeId)
          throw new CodedError('AUTH_FAILED', 'invalid agent token');
        nodeOf.set(req, nodeId);
      },
      schema: {
        tags: ['agents'],
        description:
          'An Agent asks whether an SFTP login (`<username>.<server id>`, a password or a public key whose signature it verified) may open that server: 200 with the user and their permissions there; 401 AUTH_FAILED (wrong user, password or key, or a server on another node), 403 PERMISSION_DENIED (no `file.sftp`), 429 RATE_LIMITED (per user and per address). `Authorization: Bearer <agent JWT>`.',
        body: SftpAuthRequest,
        response: { 200: SftpAuthResponse },
      },
    },
    async (req) => {
      const nodeId = nodeOf.get(req);
      if (nodeId === undefined) throw new CodedError('AUTH_FAILED', 'invalid agent token');
      return s.sftp.authenticate(nodeId, req.body, req.ip);
    },
  );

  r.get(
    '/api/auth/ssh-keys',
    {
      config: { auth: 'user' },
      schema: {
        tags: ['auth'],
        description: 'Your SSH public keys (SFTP login by key).',
        response: { 200: z.array(SshKey) },
      },
    },
    async (req) => s.sshKeys.list(principalOf(req).user.id),
  );
  r.post(
    '/api/auth/ssh-keys',
    {
      config: { auth: 'user' },
      schema: {
        tags: ['auth'],
        description:
          'Adds an SSH public key (OpenSSH one-line form: ssh-ed25519, ssh-rsa or ecdsa-sha2-nistp256/384/521). 400 VALIDATION_FAILED for anything else, 409 CONFLICT for a key already added.',
        body: z.object({
          name: z.string().trim().min(1).max(100),
          publicKey: z
            .string()
            .min(1)
            .max(16 * 1024),
        }),
        response: { 201: SshKey },
      },
    },
    async (req, reply) => {
      const key = await s.sshKeys.add(principalOf(req).user.id, req.body.name, req.body.publicKey);
      return reply.status(201).send(key);
    },
  );
  r.delete(
    '/api/auth/ssh-keys/:id',
    {
      config: { auth: 'user' },
      schema: {
        tags: ['auth'],
        description: 'Removes one of your SSH keys; your open SFTP sessions are closed.',
        params: z.object({ id: z.string().min(1).max(64) }),
        response: { 204: z.null() },
      },
    },
    async (req, reply) => {
      const userId = principalOf(req).user.id;
      if (!(await s.sshKeys.remove(userId, req.params.id))) throw new CodedError('NOT_FOUND', 'no such key');
      await s.sftp.revoke(userId);
      return reply.status(204).send(null);
    },
  );
  r.put(
    '/api/auth/username',
    {
      config: { auth: 'user' },
      schema: {
        tags: ['auth'],
        description:
          'Changes your username (the SFTP login is `<username>.<server id>`): 1–32 of [a-z0-9_.-]; 409 CONFLICT when taken. Your open SFTP sessions are closed.',
        body: z.object({ username: z.string().max(64) }),
        response: { 200: z.object({ username: z.string() }) },
      },
    },
    async (req) => {
      const userId = principalOf(req).user.id;
      const u = await s.users.setUsername(userId, req.body.username);
      await s.sftp.revoke(userId);
      return { username: u.username };
    },
  );
}
