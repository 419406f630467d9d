/** A local HTTP receiver on loopback for webhook tests: records every request, answers as told. */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';

export interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  raw: string;
  // biome-ignore lint/suspicious/noExplicitAny: test code reads JSON bodies loosely
  json: any;
}

export interface Receiver {
  url: string;
  got: Received[];
  /** the next answers (status, headers); then 204 */
  answers: { status: number; headers?: Record<string, string> }[];
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const got: Received[] = [];
  const answers: Receiver['answers'] = [];
  const srv: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(raw);
      } catch {
        json = undefined;
      }
      got.push({ path: req.url ?? '', headers: req.headers, raw, json });
      const a = answers.shift() ?? { status: 204 };
      res.writeHead(a.status, a.headers ?? {});
      res.end();
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const addr = srv.address();
  if (!addr || typeof addr === 'string') throw new Error('no port');
  return {
    url: `http://127.0.0.1:${addr.port}`,
    got,
    answers,
    close: () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}

/** What a receiver does with `X-Signature-256: sha256=<hex>` over the raw body. */
export function signatureValid(secret: string, raw: string, header: string | string[] | undefined): boolean {
  if (typeof header !== 'string' || !header.startsWith('sha256=')) return false;
  const want = Buffer.from(createHmac('sha256', secret).update(raw).digest('hex'));
  const got = Buffer.from(header.slice('sha256='.length));
  return want.length === got.length && timingSafeEqual(want, got);
}

/** Discord's limits on a webhook body (throws naming the first broken rule). */
// biome-ignore lint/suspicious/noExplicitAny: a JSON body
export function assertDiscordShape(body: any): void {
  const fail = (m: string) => {
    throw new Error(`not a Discord webhook body: ${m}: ${JSON.stringify(body).slice(0, 300)}`);
  };
  if (!body || typeof body !== 'object') fail('not an object');
  if (!Array.isArray(body.embeds) || body.embeds.length < 1 || body.embeds.length > 10) fail('embeds');
  for (const e of body.embeds) {
    if (typeof e.title !== 'string' || e.title.length === 0 || e.title.length > 256) fail('title');
    if (e.description !== undefined && (typeof e.description !== 'string' || e.description.length > 4096))
      fail('description > 4096');
    if (!Number.isInteger(e.color) || e.color < 0 || e.color > 0xffffff) fail('color');
    if (e.fields !== undefined) {
      if (!Array.isArray(e.fields) || e.fields.length > 25) fail('fields > 25');
      for (const f of e.fields)
        if (
          typeof f.name !== 'string' ||
          typeof f.value !== 'string' ||
          f.name.length === 0 ||
          f.name.length > 256 ||
          f.value.length === 0 ||
          f.value.length > 1024
        )
          fail('field');
    }
    if (e.timestamp !== undefined && Number.isNaN(Date.parse(e.timestamp))) fail('timestamp');
  }
}
