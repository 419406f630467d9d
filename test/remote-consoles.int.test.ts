/**
 * Remote consoles through the Panel (issue 12 items 1 and 3), with the real Agent, the Docker
 * Engine and the real game servers of the built-in templates: OpenArena over Quake 3 rcon (UDP),
 * Teeworlds over econ (TCP), OpenTTD over its admin port (TCP). A command sent to
 * `POST /api/servers/:id/command` comes back with the game's response; the console's state is on
 * /ws/client; a password the game no longer takes is `wrong_password` and
 * REMOTE_CONSOLE_AUTH_FAILED. The passwords are hidden variables: a subuser who may type commands
 * gets responses with them redacted, and the logs of the whole session (Panel and Agent, at trace
 * level) hold none of them.
 * Images: `bash scripts/images/build.sh games` (cached). Fails, never skips, without them.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { freePort } from '../packages/agent/test/helpers.ts';
import {
  type ClientSocket,
  createAccount,
  grantPermissions,
  type Json,
  type Session,
  type TestPanel,
} from '../packages/panel/test/helpers.ts';
import { type Stack, startStack } from './harness.ts';

const READY_MS = 90_000;
const OA_PASSWORD = 'oa-rcon-Secret-7731';
const TW_PASSWORD = 'tw-econ-Secret-4417';
const TTD_PASSWORD = 'ttd-admin-Secret-9024';

/** every log line written, Panel and Agent */
const logs: string[] = [];
const capture = () =>
  new Writable({
    write(chunk, _enc, cb) {
      logs.push(String(chunk));
      cb();
    },
  });

describe('remote consoles through the Panel (real Agent, real Docker, real games)', {
  concurrency: true,
}, () => {
  let stack: Stack;
  let panel: TestPanel;
  let owner: Session;
  let nodeId: string;
  const created: string[] = [];
  const api = (m: string, p: string, b?: unknown, who: Session = owner) => panel.api(who, m, p, b);
  /** game tests ended (passed or failed): the log check runs after all three */
  let settled = 0;
  const game = (fn: () => Promise<void>) => async () => {
    try {
      await fn();
    } finally {
      settled++;
    }
  };

  before(async () => {
    const docker = new Docker();
    for (const image of ['openttd', 'openarena', 'teeworlds', 'debian']) {
      await docker
        .getImage(`ctrl-alt-play/${image}:latest`)
        .inspect()
        .catch(() => {
          throw new Error(`image ctrl-alt-play/${image} missing: run bash scripts/images/build.sh games`);
        });
    }
    stack = await startStack('rcon', { panelLogStream: capture(), agentLogStream: capture() });
    ({ panel, owner, nodeId } = stack);
  });
  after(async () => {
    for (const id of created) await api('DELETE', `/api/servers/${id}?force=true`).catch(() => undefined);
    await stack?.stop();
  });

  /** A server of the built-in template, started, its remote console authenticated. */
  async function startGame(
    name: string,
    environment: Record<string, string>,
    extraPort?: (port: number) => Record<string, string>,
  ): Promise<{ id: string; ws: ClientSocket }> {
    const templates = (await api('GET', '/api/templates')).body as Json[];
    const tpl = templates.find((t) => t.name === name && t.builtin);
    assert.ok(tpl, `built-in template ${name}`);
    const port = await freePort('0.0.0.0');
    const pool = await api('POST', `/api/nodes/${nodeId}/allocations`, {
      ip: '0.0.0.0',
      ports: [String(port)],
    });
    assert.equal(pool.status, 201, JSON.stringify(pool.body));
    let env = environment;
    let ports = {};
    if (extraPort) {
      // the remote console's own port, published on loopback only (the Agent dials it there)
      const q = await freePort('127.0.0.1');
      env = { ...environment, ...extraPort(q) };
      ports = { [`${q}/tcp`]: { hostPort: q, hostIp: '127.0.0.1' } };
    }
    const res = await api('POST', '/api/servers?wait=true', {
      name: `rcon ${name}`,
      nodeId,
      templateId: tpl.id,
      environment: env,
      ports,
      allocationId: pool.body[0].id,
      limits: { memory: 1024 },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const id = res.body.id as string;
    created.push(id);
    // the password is hidden: not in what the server's API gives a browser without permission
    const ws = await panel.clientSocket(owner);
    ws.send({ type: 'subscribe', serverId: id });
    await ws.next((m) => m.type === 'subscribed');
    const t = Date.now();
    while ((await api('GET', `/api/servers/${id}`)).body.status !== 'offline') {
      if (Date.now() - t > READY_MS) throw new Error(`${name}: install did not end`);
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal((await api('POST', `/api/servers/${id}/power`, { action: 'start' })).status, 202);
    await ws.next((m) => m.type === 'status' && m.status === 'running', READY_MS);
    const rc = await ws.next((m) => m.type === 'remote_console' && m.state === 'authenticated', 30_000);
    assert.equal(rc.serverId, id);
    return { id, ws };
  }

  async function finish(id: string, ws: ClientSocket): Promise<void> {
    assert.equal((await api('POST', `/api/servers/${id}/power`, { action: 'kill' })).status, 202);
    await ws.next((m) => m.type === 'remote_console' && m.state === 'idle', 30_000);
    ws.close();
    assert.equal((await api('DELETE', `/api/servers/${id}?force=true`)).status, 204);
    created.splice(created.indexOf(id), 1);
  }

  it(
    'OpenArena: status over UDP rcon with its response; a subuser gets the password redacted; a wrong password is wrong_password',
    { timeout: 240_000 },
    game(async () => {
      const { id, ws } = await startGame('OpenArena', { RCON_PASSWORD: OA_PASSWORD, MAP: 'oa_dm2' });
      const status = await api('POST', `/api/servers/${id}/command`, { command: 'status' });
      assert.equal(status.status, 200, JSON.stringify(status.body));
      assert.equal(status.body.transport, 'quake3-rcon');
      assert.match(status.body.response, /map: oa_dm2/);
      assert.match(status.body.response, /score ping name/);

      // the game prints its rconpassword cvar: the owner sees it, a subuser who may type commands does not
      const mine = await api('POST', `/api/servers/${id}/command`, { command: 'rconpassword' });
      assert.equal(mine.status, 200, JSON.stringify(mine.body));
      assert.ok(mine.body.response.includes(OA_PASSWORD), mine.body.response);
      const helper = await createAccount(panel, owner, `rcon-helper-${Date.now().toString(36)}`, 'user');
      await grantPermissions(panel, owner, id, helper, ['control.console', 'control.command']);
      const theirs = await api('POST', `/api/servers/${id}/command`, { command: 'rconpassword' }, helper);
      assert.equal(theirs.status, 200, JSON.stringify(theirs.body));
      assert.match(theirs.body.response, /rconpassword/);
      assert.ok(!theirs.body.response.includes(OA_PASSWORD), theirs.body.response);
      const view = await api('GET', `/api/servers/${id}`, undefined, helper);
      assert.ok(!JSON.stringify(view.body).includes(OA_PASSWORD), 'the server as the subuser sees it');
      // the same over /ws/client: the ack carries the (redacted) response
      const hws = await panel.clientSocket(helper);
      hws.send({ type: 'subscribe', serverId: id });
      const sub = await hws.next((m) => m.type === 'subscribed');
      assert.equal(sub.remoteConsole?.state, 'authenticated');
      assert.equal(sub.remoteConsole?.transport, 'quake3-rcon');
      hws.send({ type: 'send_command', serverId: id, command: 'rconpassword' });
      const ack = await hws.next((m) => m.type === 'ack' && m.requestType === 'send_command');
      assert.match(ack.response, /rconpassword/);
      assert.ok(!ack.response.includes(OA_PASSWORD));
      hws.close();

      // the game's password changes under the Agent: the next command is refused, and said so
      const changed = await api('POST', `/api/servers/${id}/command`, {
        command: 'rconpassword now-other-pw',
      });
      assert.equal(changed.status, 200, JSON.stringify(changed.body));
      const refused = await api('POST', `/api/servers/${id}/command`, { command: 'status' });
      assert.equal(refused.status, 502, JSON.stringify(refused.body));
      assert.equal(refused.body.code, 'REMOTE_CONSOLE_AUTH_FAILED');
      const wrong = await ws.next((m) => m.type === 'remote_console' && m.state === 'wrong_password', 20_000);
      assert.equal(wrong.transport, 'quake3-rcon');
      await finish(id, ws);
    }),
  );

  it(
    'Teeworlds: status and say through econ, with their responses',
    { timeout: 240_000 },
    game(async () => {
      const { id, ws } = await startGame('Teeworlds', { ECON_PASSWORD: TW_PASSWORD, MAP: 'dm2' }, (q) => ({
        ECON_PORT: String(q),
      }));
      const say = await api('POST', `/api/servers/${id}/command`, { command: 'say hello-econ-7' });
      assert.equal(say.status, 200, JSON.stringify(say.body));
      assert.equal(say.body.transport, 'teeworlds-econ');
      assert.match(say.body.response, /hello-econ-7/);
      const status = await api('POST', `/api/servers/${id}/command`, { command: 'status' });
      assert.equal(status.status, 200, JSON.stringify(status.body));
      assert.equal(status.body.transport, 'teeworlds-econ');
      assert.equal(typeof status.body.response, 'string');
      // an unknown command gets the game's own answer
      const unknown = await api('POST', `/api/servers/${id}/command`, { command: 'no_such_cmd_x' });
      assert.equal(unknown.status, 200, JSON.stringify(unknown.body));
      assert.match(unknown.body.response, /no_such_cmd_x|No such command/i);
      await finish(id, ws);
    }),
  );

  it(
    'OpenTTD: an admin-port rcon command with its response',
    { timeout: 240_000 },
    game(async () => {
      const { id, ws } = await startGame('OpenTTD', { ADMIN_PASSWORD: TTD_PASSWORD }, (q) => ({
        ADMIN_PORT: String(q),
      }));
      const info = await api('POST', `/api/servers/${id}/command`, { command: 'server_info' });
      assert.equal(info.status, 200, JSON.stringify(info.body));
      assert.equal(info.body.transport, 'openttd-admin');
      assert.match(info.body.response, /clients/i);
      const clients = await api('POST', `/api/servers/${id}/command`, { command: 'clients' });
      assert.equal(clients.status, 200, JSON.stringify(clients.body));
      assert.equal(typeof clients.body.response, 'string');
      await finish(id, ws);
    }),
  );

  it('no password of the session is in any log line (Panel and Agent at trace level)', {
    timeout: 600_000,
  }, async () => {
    // runs with the others (concurrency): waits until they are done
    const t = Date.now();
    while (settled < 3) {
      if (Date.now() - t > 590_000) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(logs.length > 50, `only ${logs.length} log lines captured`);
    for (const pw of [OA_PASSWORD, TW_PASSWORD, TTD_PASSWORD]) {
      const hit = logs.find((l) => l.includes(pw));
      assert.equal(hit, undefined, `a log line holds a password: ${hit?.slice(0, 300)}`);
    }
  });
});
