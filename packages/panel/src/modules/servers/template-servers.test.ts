/**
 * Servers made from templates (fake Agent): variables validated per field, the eggConfig the Agent
 * gets, hidden values never shown to spectators, reinstall and install events, port allocations
 * with PORT_CONFLICT and parallel creates.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Command, EggConfig } from '@cap/protocol';
import { FakeAgent } from '../../../test/fake-agent.ts';
import {
  type Json,
  type Session,
  scratchDatabase,
  startTestPanel,
  type TestPanel,
} from '../../../test/helpers.ts';

const SECRET = 'hunter2-very-secret';

const EGG = {
  meta: { version: 'PTDL_v2' },
  name: 'Test Game',
  author: 'test@x.test',
  description: 'for tests',
  docker_images: { Main: 'ctrl-alt-play/busybox:latest', Alt: 'ctrl-alt-play/busybox:alt' },
  startup: './game --port {{SERVER_PORT}} --secret {{RCON_PASSWORD}} --n {{MAX_PLAYERS}}',
  config: {
    files: JSON.stringify({
      'game.ini': { parser: 'ini', find: { 'net.port': '{{server.build.default.port}}' } },
    }),
    startup: JSON.stringify({ done: 'Server ready' }),
    logs: '{}',
    stop: 'quit',
  },
  scripts: {
    installation: {
      script: '#!/bin/sh\necho hi\r\n',
      container: 'ctrl-alt-play/busybox:latest',
      entrypoint: 'sh',
    },
  },
  variables: [
    {
      name: 'Max players',
      description: '',
      env_variable: 'MAX_PLAYERS',
      default_value: '8',
      user_viewable: true,
      user_editable: true,
      rules: 'required|integer|between:1,64',
      field_type: 'text',
    },
    {
      name: 'RCON password',
      description: '',
      env_variable: 'RCON_PASSWORD',
      default_value: '',
      user_viewable: false,
      user_editable: false,
      rules: ['nullable', 'string', 'regex:/^[A-Za-z0-9-]*$/'],
      field_type: 'text',
    },
    {
      name: 'Mode',
      description: '',
      env_variable: 'MODE',
      default_value: 'ffa',
      user_viewable: true,
      user_editable: true,
      rules: 'required|in:ffa,ctf',
      field_type: 'text',
    },
  ],
};

/** The same suite on SQLite and on a fresh PostgreSQL database (the races differ between them). */
for (const engine of ['sqlite', 'postgres'] as const)
  describe(`servers from templates (${engine})`, () => {
    let panel: TestPanel;
    let owner: Session;
    let spectator: Session;
    let agent: FakeAgent;
    let nodeId: string;
    let templateId: string;
    let serverId: string;
    const api = (s: Session, m: string, p: string, b?: unknown) => panel.api(s, m, p, b);
    const createCmds = () => agent.commands.filter((c) => c.action === 'create_server');
    const eggOf = (c: Command) => (c.payload as { eggConfig: EggConfig }).eggConfig;

    let db: Awaited<ReturnType<typeof scratchDatabase>> | undefined;
    before(async () => {
      db = await scratchDatabase(engine, 'cap_tpl');
      panel = await startTestPanel(db.env);
      owner = await panel.login();
      spectator = await panel.userWithRole('spectator');
      const node = await panel.createNode(owner);
      nodeId = node.id;
      agent = await FakeAgent.start({ panelUrl: panel.url, agentSecret: node.agentSecret });
      const imp = await api(owner, 'POST', '/api/templates/import', {
        content: JSON.stringify(EGG),
        filename: 'egg.json',
      });
      assert.equal(imp.status, 201, JSON.stringify(imp.body));
      templateId = imp.body.template.id;
      const pool = await api(owner, 'POST', `/api/nodes/${nodeId}/allocations`, {
        ip: '0.0.0.0',
        ports: ['30000-30001'],
      });
      assert.equal(pool.status, 201, JSON.stringify(pool.body));
      assert.deepEqual(
        pool.body.map((a: Json) => a.port),
        [30000, 30001],
      );
    });
    after(async () => {
      await agent.close();
      await panel.stop();
      await db?.drop();
    });

    test('values breaking their rules: 400 VALIDATION_FAILED per field, nothing stored or sent', async () => {
      const before = createCmds().length;
      const r = await api(owner, 'POST', '/api/servers?wait=true', {
        name: 'bad',
        nodeId,
        templateId,
        environment: { MAX_PLAYERS: '100', MODE: 'tdm', RCON_PASSWORD: 'no spaces!' },
      });
      assert.equal(r.status, 400);
      assert.equal(r.body.code, 'VALIDATION_FAILED');
      assert.deepEqual(Object.keys(r.body.details).sort(), ['MAX_PLAYERS', 'MODE', 'RCON_PASSWORD']);
      assert.equal(r.body.details.MAX_PLAYERS[0].rule, 'between:1,64');
      const unknown = await api(owner, 'POST', '/api/servers?wait=true', {
        name: 'bad',
        nodeId,
        templateId,
        environment: { NOPE: '1' },
      });
      assert.equal(unknown.body.code, 'VALIDATION_FAILED');
      assert.equal(unknown.body.location, 'NOPE');
      const badImage = await api(owner, 'POST', '/api/servers?wait=true', {
        name: 'b',
        nodeId,
        templateId,
        image: 'other:1',
      });
      assert.equal(badImage.body.code, 'VALIDATION_FAILED');
      assert.equal(badImage.body.location, 'image');
      const noImage = await api(owner, 'POST', '/api/servers?wait=true', { name: 'b', nodeId });
      assert.equal(noImage.body.code, 'VALIDATION_FAILED');
      const noTemplate = await api(owner, 'POST', '/api/servers?wait=true', {
        name: 'b',
        nodeId,
        templateId: 't_nope',
      });
      assert.equal(noTemplate.body.code, 'NOT_FOUND');
      assert.equal(createCmds().length, before);
      assert.equal((await api(owner, 'GET', '/api/servers')).body.length, 0);
      // no allocation was left claimed by the refused creates
      const allocs = await api(owner, 'GET', `/api/nodes/${nodeId}/allocations`);
      // (a pool exists, so "every one is free" is not vacuously true)
      assert.ok(allocs.body.length > 0);
      assert.ok(allocs.body.every((a: Json) => a.serverId === null));
    });

    test('a valid create: defaults filled, first free allocation, eggConfig from the template', async () => {
      const r = await api(owner, 'POST', '/api/servers?wait=true', {
        name: 'game',
        nodeId,
        templateId,
        image: 'Alt',
        environment: { RCON_PASSWORD: SECRET },
        limits: { memory: '512m' },
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      serverId = r.body.id;
      assert.equal(r.body.templateId, templateId);
      assert.equal(r.body.image, 'ctrl-alt-play/busybox:alt');
      assert.deepEqual(r.body.allocation.port, 30000);
      assert.deepEqual(r.body.environment, { MAX_PLAYERS: '8', RCON_PASSWORD: SECRET, MODE: 'ffa' });
      const egg = eggOf(createCmds().at(-1) as Command);
      assert.equal(egg.image, 'ctrl-alt-play/busybox:alt');
      assert.equal(egg.environment.STARTUP, EGG.startup);
      assert.equal(egg.environment.SERVER_PORT, '30000');
      assert.equal(egg.environment.SERVER_IP, '0.0.0.0');
      assert.equal(egg.environment.SERVER_MEMORY, '512');
      assert.equal(egg.environment.RCON_PASSWORD, SECRET);
      assert.equal(egg.environment.MAX_PLAYERS, '8');
      assert.deepEqual(egg.ports, { '30000': 30000 });
      assert.deepEqual(egg.done, ['Server ready']);
      assert.equal(egg.stop, 'quit');
      assert.equal(egg.install?.container, 'ctrl-alt-play/busybox:latest');
      assert.ok(!egg.install?.script.includes('\r'));
      assert.equal(egg.configFiles?.['game.ini']?.parser, 'ini');
      const allocs = await api(owner, 'GET', `/api/nodes/${nodeId}/allocations`);
      assert.equal(allocs.body.find((a: Json) => a.port === 30000).serverId, serverId);
    });

    test('a spectator never sees a value that is not user_viewable', async () => {
      const views = async (s: Session) => [
        await api(s, 'GET', '/api/servers'),
        await api(s, 'GET', `/api/servers/${serverId}`),
        await api(s, 'GET', `/api/servers/${serverId}/telemetry`),
        await api(s, 'GET', '/api/dashboard'),
      ];
      for (const r of await views(spectator)) {
        assert.equal(r.status, 200);
        assert.ok(!JSON.stringify(r.body).includes(SECRET), JSON.stringify(r.body).slice(0, 300));
      }
      const one = (await api(spectator, 'GET', `/api/servers/${serverId}`)).body;
      assert.deepEqual(one.environment, { MAX_PLAYERS: '8', MODE: 'ffa' });
      assert.deepEqual(
        one.variables.map((v: Json) => v.envVariable),
        ['MAX_PLAYERS', 'MODE'],
      );
      assert.equal(one.startupDisplay, './game --port 30000 --secret [hidden] --n 8');
      const admin = (await api(owner, 'GET', `/api/servers/${serverId}`)).body;
      assert.equal(admin.startupDisplay, `./game --port 30000 --secret ${SECRET} --n 8`);
      assert.equal(admin.variables.length, 3);
      for (const r of await views(owner)) assert.ok(JSON.stringify(r.body).includes(SECRET));
    });

    test('config updates are validated the same way and send the whole derived environment', async () => {
      const bad = await api(owner, 'PUT', `/api/servers/${serverId}/config?wait=true`, {
        environment: { MAX_PLAYERS: 'lots' },
      });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.code, 'VALIDATION_FAILED');
      assert.ok(bad.body.details.MAX_PLAYERS);
      const ok = await api(owner, 'PUT', `/api/servers/${serverId}/config?wait=true`, {
        environment: { MAX_PLAYERS: '16' },
      });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      const upd = agent.commands.filter((c) => c.action === 'update_server').at(-1) as Command;
      const env = (upd.payload as { environment: Record<string, string> }).environment;
      assert.equal(env.MAX_PLAYERS, '16');
      assert.equal(env.RCON_PASSWORD, SECRET, 'unchanged values are kept');
      assert.equal(env.SERVER_PORT, '30000');
      assert.equal(env.STARTUP, EGG.startup);
      assert.equal((await api(owner, 'GET', `/api/servers/${serverId}`)).body.environment.MAX_PLAYERS, '16');
    });

    test('PATCH with only an image (the java_version dialog) changes the image and keeps the rest', async () => {
      const custom = './game --port {{SERVER_PORT}} --n {{MAX_PLAYERS}} --custom';
      const first = await api(owner, 'PATCH', `/api/servers/${serverId}?wait=true`, { startup: custom });
      assert.equal(first.status, 200, JSON.stringify(first.body));
      const limitsBefore = first.body.limits;
      assert.equal(limitsBefore.memory, '512m');
      const r = await api(owner, 'PATCH', `/api/servers/${serverId}?wait=true`, { image: 'Main' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.image, 'ctrl-alt-play/busybox:latest');
      assert.equal(r.body.startup, custom, 'the startup is kept');
      assert.deepEqual(
        r.body.limits,
        limitsBefore,
        'the limits are kept (the node default CPU filled in at create too)',
      );
      assert.equal(r.body.environment.RCON_PASSWORD, SECRET, 'the values are kept');
      const upd = agent.commands.filter((c) => c.action === 'update_server').at(-1) as Command;
      const egg = upd.payload as Partial<EggConfig>;
      assert.equal(egg.image, 'ctrl-alt-play/busybox:latest');
      assert.equal(egg.limits?.memory, '512m');
      assert.equal(egg.environment?.STARTUP, custom);
      assert.deepEqual(egg.ports, { '30000': 30000 });
    });

    test('reinstall: the Agent action, install output to admins only, install_completed', async () => {
      const adminWs = await panel.clientSocket(owner);
      const specWs = await panel.clientSocket(spectator);
      try {
        for (const ws of [adminWs, specWs]) {
          ws.send({ type: 'subscribe', serverId });
          await ws.next((m) => m.type === 'subscribed');
        }
        const denied = await api(spectator, 'POST', `/api/servers/${serverId}/reinstall`);
        assert.equal(denied.status, 403);
        const r = await api(owner, 'POST', `/api/servers/${serverId}/reinstall`);
        assert.equal(r.status, 202);
        await agent.waitForCommand((c) => c.action === 'reinstall_server' && c.serverId === serverId);
        await adminWs.next((m) => m.type === 'status' && m.status === 'installing');
        const out = await adminWs.next((m) => m.type === 'install_output');
        assert.deepEqual(out.lines, ['installing…', 'install done']);
        const done = await adminWs.next((m) => m.type === 'install_completed');
        assert.equal(done.success, true);
        await specWs.next((m) => m.type === 'install_completed');
        await specWs.next((m) => m.type === 'status' && m.status === 'offline');
        assert.ok(
          !specWs.messages.some((m) => m.type === 'install_output'),
          'spectators get no install output',
        );
      } finally {
        adminWs.close();
        specWs.close();
      }
      // a raw server has no install script
      const raw = await api(owner, 'POST', '/api/servers?wait=true', {
        name: 'raw',
        nodeId,
        image: 'ctrl-alt-play/busybox:latest',
      });
      assert.equal(raw.status, 201);
      const refused = await api(owner, 'POST', `/api/servers/${raw.body.id}/reinstall`);
      assert.equal(refused.body.code, 'VALIDATION_FAILED');
      assert.equal(raw.body.allocation, null, 'raw servers take a pool port only when asked');
      assert.equal((await api(owner, 'DELETE', `/api/servers/${raw.body.id}`)).status, 204);
    });

    test('PORT_CONFLICT for a taken port, raw or allocated; raw ports are freed with their server', async () => {
      const taken = await api(owner, 'POST', '/api/servers?wait=true', {
        name: 'x',
        nodeId,
        templateId,
        port: 30000,
      });
      assert.equal(taken.status, 409);
      assert.equal(taken.body.code, 'PORT_CONFLICT');
      const rawTaken = await api(owner, 'POST', '/api/servers?wait=true', {
        name: 'x',
        nodeId,
        image: 'ctrl-alt-play/busybox:latest',
        ports: { '30000/udp': 30000 },
      });
      assert.equal(rawTaken.body.code, 'PORT_CONFLICT');
      const raw = await api(owner, 'POST', '/api/servers?wait=true', {
        name: 'raw',
        nodeId,
        image: 'ctrl-alt-play/busybox:latest',
        ports: { '31000': 31000, '31000/udp': 31000 },
      });
      assert.equal(raw.status, 201, JSON.stringify(raw.body));
      const byPort = await api(owner, 'POST', '/api/servers?wait=true', {
        name: 'x',
        nodeId,
        templateId,
        port: 31000,
      });
      assert.equal(byPort.body.code, 'PORT_CONFLICT');
      const rawAgain = await api(owner, 'POST', '/api/servers?wait=true', {
        name: 'x',
        nodeId,
        image: 'ctrl-alt-play/busybox:latest',
        ports: { '25565': 31000 },
      });
      assert.equal(rawAgain.body.code, 'PORT_CONFLICT');
      // an allocation in the pool cannot be added twice, nor removed while assigned
      const dup = await api(owner, 'POST', `/api/nodes/${nodeId}/allocations`, {
        ip: '0.0.0.0',
        ports: ['30001'],
      });
      assert.equal(dup.body.code, 'PORT_CONFLICT');
      const allocs = (await api(owner, 'GET', `/api/nodes/${nodeId}/allocations`)).body as Json[];
      const assigned = allocs.find((a) => a.port === 30000);
      const del = await api(owner, 'DELETE', `/api/nodes/${nodeId}/allocations/${assigned.id}`);
      assert.equal(del.status, 409);
      assert.equal(del.body.code, 'CONFLICT');
      assert.equal(allocs.find((a) => a.port === 31000).pooled, false);
      assert.equal((await api(owner, 'DELETE', `/api/servers/${raw.body.id}`)).status, 204);
      const after = (await api(owner, 'GET', `/api/nodes/${nodeId}/allocations`)).body as Json[];
      assert.ok(!after.some((a) => a.port === 31000), 'a raw port goes with its server');
      const bad = await api(owner, 'POST', `/api/nodes/${nodeId}/allocations`, {
        ip: '0.0.0.0',
        ports: ['10-5'],
      });
      assert.equal(bad.body.code, 'VALIDATION_FAILED');
      const huge = await api(owner, 'POST', `/api/nodes/${nodeId}/allocations`, {
        ip: '0.0.0.0',
        ports: ['1-2000'],
      });
      assert.equal(huge.body.code, 'VALIDATION_FAILED');
      assert.equal((await api(owner, 'GET', '/api/nodes/n_nope/allocations')).body.code, 'NOT_FOUND');
    });

    test('parallel creates for the same port: exactly one wins', async () => {
      for (const port of [32000, 32001, 32002]) {
        const rs = await Promise.all(
          [1, 2, 3, 4].map((i) =>
            api(owner, 'POST', '/api/servers?wait=true', { name: `p${i}`, nodeId, templateId, port }),
          ),
        );
        const codes = rs.map((r) => (r.status === 201 ? 'ok' : r.body.code)).sort();
        assert.deepEqual(codes, ['PORT_CONFLICT', 'PORT_CONFLICT', 'PORT_CONFLICT', 'ok'], `port ${port}`);
      }
      // the pool's last free allocation, asked for by three creates at once
      const rs = await Promise.all(
        [1, 2, 3].map((i) =>
          api(owner, 'POST', '/api/servers?wait=true', { name: `q${i}`, nodeId, templateId }),
        ),
      );
      const won = rs.filter((r) => r.status === 201);
      assert.equal(won.length, 1);
      assert.equal(won[0]?.body.allocation.port, 30001);
      assert.ok(rs.filter((r) => r.status !== 201).every((r) => r.body.code === 'PORT_CONFLICT'));
      const allocs = (await api(owner, 'GET', `/api/nodes/${nodeId}/allocations`)).body as Json[];
      const ports = allocs.filter((a) => a.serverId !== null).map((a) => a.port);
      assert.equal(new Set(ports).size, ports.length, 'no port held twice');
    });

    test('a free pool allocation can be removed', async () => {
      const added = await api(owner, 'POST', `/api/nodes/${nodeId}/allocations`, {
        ip: '10.0.0.5',
        ports: ['33000'],
      });
      assert.equal(added.status, 201);
      const del = await api(owner, 'DELETE', `/api/nodes/${nodeId}/allocations/${added.body[0].id}`);
      assert.equal(del.status, 204);
    });
  });
