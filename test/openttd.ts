/**
 * A real game server driven through a Panel's REST API only, for the deployment tests (the Agent
 * as a single executable, as an OCI image, under docker-compose): OpenTTD from its built-in
 * template on a fresh port allocation is installed, started, reaches its done line, takes a
 * console command, answers on its game port, stops gracefully and is deleted.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

// biome-ignore lint/suspicious/noExplicitAny: JSON answers
export type Api = (method: string, path: string, body?: unknown) => Promise<{ status: number; body: any }>;

const DONE_LINE = 'Map generated, starting game';

async function waitFor(what: string, fn: () => Promise<boolean>, ms: number): Promise<void> {
  const t0 = Date.now();
  while (!(await fn().catch(() => false))) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms: ${what}`);
    await sleep(300);
  }
}

/** A TCP port free on every address (the allocation is published on 0.0.0.0). */
async function freeWildcardPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '0.0.0.0', () => r()));
  const addr = srv.address();
  await new Promise<void>((r) => srv.close(() => r()));
  if (!addr || typeof addr === 'string') throw new Error('no port');
  return addr.port;
}

function tcpConnects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(2000, () => done(false));
  });
}

export async function driveOpenTTD(
  api: Api,
  nodeId: string,
  label: string,
  timeoutMs = 180_000,
): Promise<void> {
  const templates = await api('GET', '/api/templates');
  assert.equal(templates.status, 200, JSON.stringify(templates.body));
  const tpl = (templates.body as { id: string; name: string; builtin: boolean }[]).find(
    (t) => t.name === 'OpenTTD' && t.builtin,
  );
  assert.ok(tpl, 'the built-in OpenTTD template');
  const port = await freeWildcardPort();
  const pool = await api('POST', `/api/nodes/${nodeId}/allocations`, {
    ip: '0.0.0.0',
    ports: [String(port)],
  });
  assert.equal(pool.status, 201, JSON.stringify(pool.body));
  const created = await api('POST', '/api/servers?wait=true', {
    name: `${label} openttd`,
    nodeId,
    templateId: tpl.id,
    environment: { SERVER_NAME: `${label} e2e` },
    allocationId: pool.body[0].id,
    limits: { memory: 1024 },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id as string;
  const status = async (want: string) => (await api('GET', `/api/servers/${id}`)).body.status === want;
  const consoleHas = async (text: string) =>
    ((await api('GET', `/api/servers/${id}/telemetry`)).body?.console ?? []).some((l: string) =>
      l.includes(text),
    );
  try {
    // installed (the egg's install script in its own container) before it can start
    await waitFor('installed and offline', () => status('offline'), timeoutMs);
    assert.equal((await api('POST', `/api/servers/${id}/power`, { action: 'start' })).status, 202);
    await waitFor('running', () => status('running'), timeoutMs);
    await waitFor(`the done line "${DONE_LINE}"`, () => consoleHas(DONE_LINE), timeoutMs);
    await waitFor(`the game port ${port} answering`, () => tcpConnects(port), 30_000);
    const cmd = await api('POST', `/api/servers/${id}/command`, { command: `say "${label}-was-here"` });
    assert.ok(cmd.status === 202 || cmd.status === 200, `command: ${cmd.status} ${JSON.stringify(cmd.body)}`);
    await waitFor('the command in the console', () => consoleHas(`${label}-was-here`), 30_000);
    // the egg's stop command ("quit") ends it gracefully
    assert.equal((await api('POST', `/api/servers/${id}/power`, { action: 'stop' })).status, 202);
    await waitFor('offline after stop', () => status('offline'), 60_000);
  } finally {
    await api('DELETE', `/api/servers/${id}?force=true`).catch(() => undefined);
  }
}
