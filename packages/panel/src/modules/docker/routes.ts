/**
 * `/api/nodes/:id/docker/<Docker Engine API path>` (issue 11; docs/contracts.md "Docker through
 * the Panel"): every method, relayed to the node's Engine through a tunnel the Agent dials out
 * (tunnels.ts) and answered with exactly what the Engine answered, streamed both ways. Request
 * bodies are not parsed by Fastify here (no content-type parser in this context): they are
 * capped per endpoint kind and streamed, or buffered (≤ 1 MiB) where the Panel must read them.
 */
import type { Readable } from 'node:stream';

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { PanelServices } from '../../services.ts';
import {
  bodyCap,
  bodyKind,
  capped,
  checkDeclaredLength,
  enginePath,
  exchange,
  forwardHeaders,
  headersTimeout,
  readCapped,
  responseHeaders,
} from './proxy.ts';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'] as const;
const Params = z.object({ id: z.string().min(1).max(64), '*': z.string().max(8192) });

export async function dockerRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  s.dockerTunnels.install(app.server);

  await app.register(async (scope) => {
    // the body is the Engine's business: no parser reads it here, the handler streams it
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));

    const relay = async (req: FastifyRequest, reply: FastifyReply) => {
      const { id } = req.params as { id: string };
      await s.nodes.get(id);
      const ep = enginePath(req.raw.url ?? '', `/api/nodes/${encodeURIComponent(id)}/docker`);
      const method = req.method;
      const kind = bodyKind(method, ep.path);
      const cap = bodyCap(kind);
      checkDeclaredLength(req.headers, cap);
      const headers = forwardHeaders(req.headers);
      const hasBody =
        method !== 'GET' &&
        method !== 'HEAD' &&
        (req.headers['transfer-encoding'] !== undefined ||
          (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0'));
      let body: Buffer | Readable | undefined;
      if (hasBody && kind === 'inspect') {
        body = await readCapped(req.raw, cap);
        delete headers['transfer-encoding'];
        headers['content-length'] = String(body.length);
      } else if (hasBody) body = req.raw.pipe(capped(cap));

      // the client going away ends the tunnel, and with it the Agent's Docker connection
      const abort = new AbortController();
      const gone = () => abort.abort();
      reply.raw.once('close', gone);
      const tunnel = await s.dockerTunnels.open(id, abort.signal);
      abort.signal.addEventListener('abort', () => tunnel.destroy(), { once: true });
      if (abort.signal.aborted) tunnel.destroy();
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

    for (const method of METHODS) {
      scope.route({
        method,
        url: '/api/nodes/:id/docker/*',
        config: { auth: 'admin' },
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
