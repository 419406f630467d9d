/**
 * How the Agent reaches the Panel over the network: HTTPS/WSS verified against the system's CAs
 * (NODE_EXTRA_CA_CERTS adds one), or, with AGENT_PANEL_CERT_SHA256, against that one certificate
 * only (a self-signed Panel works; any other certificate, CA-signed or not, is refused). The pin
 * is checked when the TLS handshake ends and before the socket is handed over, so not a byte of
 * a request (the Agent secret, the token) goes to a Panel whose certificate is not the pinned one.
 */

import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { CodedError } from '@cap/protocol';

/** An https.Agent accepting only the certificate with this SHA-256 fingerprint (`AB:CD:…`). */
export class PinnedAgent extends https.Agent {
  readonly #pin: string;

  constructor(pin: string) {
    super({ keepAlive: false });
    this.#pin = pin;
  }

  // node:http calls it with a callback and waits for it when it returns nothing
  override createConnection(
    options: https.RequestOptions,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | undefined {
    const host = options.host ?? 'localhost';
    const socket = tls.connect({
      ...(options as tls.ConnectionOptions),
      ...(options.servername || isIP(host) ? {} : { servername: host }),
      // the pin replaces the CA check (a self-signed Panel); it is checked below, before use
      rejectUnauthorized: false,
    });
    let done = false;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      socket.off('error', finish);
      if (err) socket.destroy();
      callback?.(err, socket);
    };
    socket.once('secureConnect', () => {
      const got = socket.getPeerCertificate().fingerprint256;
      finish(
        got === this.#pin
          ? null
          : new CodedError(
              'TLS_PIN_MISMATCH',
              `the Panel's certificate (SHA-256 ${got ?? 'none'}) is not the pinned one (AGENT_PANEL_CERT_SHA256 ${this.#pin})`,
            ),
      );
    });
    socket.once('error', finish);
    return undefined;
  }
}

/** The agent for the Panel's URL: the pinned one for TLS when a pin is set, else the default. */
export function panelAgent(url: string, pin: PinnedAgent | undefined): http.Agent | undefined {
  return pin && /^(https|wss):$/.test(new URL(url).protocol) ? pin : undefined;
}

/** The largest answer the Panel's register/refresh endpoints may give (they are small). */
const MAX_ANSWER_BYTES = 256 * 1024;

/** POST a JSON body; resolves with the status and the parsed answer (null when not JSON). */
export function postJson(
  url: string,
  headers: Record<string, string>,
  body: unknown,
  opts: { agent: http.Agent | undefined; timeoutMs: number },
): Promise<{ status: number; json: unknown }> {
  const u = new URL(url);
  const text = JSON.stringify(body);
  const request = u.protocol === 'https:' ? https.request : http.request;
  return new Promise((resolve, reject) => {
    const req = request(
      u,
      {
        method: 'POST',
        headers: {
          ...headers,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(text),
        },
        ...(opts.agent ? { agent: opts.agent } : {}),
        timeout: opts.timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_ANSWER_BYTES) {
            req.destroy(new Error(`answer over ${MAX_ANSWER_BYTES} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => {
          let json: unknown = null;
          try {
            json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            json = null;
          }
          resolve({ status: res.statusCode ?? 0, json });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${opts.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(text);
  });
}
