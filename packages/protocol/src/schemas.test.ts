/** Round-trip tests for every action, event and REST schema of the Agent protocol. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type Action,
  actionPayloads,
  command,
  type EventName,
  errorResponse,
  event,
  eventData,
  okResponse,
  PingMessage,
  PongMessage,
  parseAgentInbound,
  parsePanelInbound,
  RefreshRequest,
  RegisterRequest,
  RegisterResponse,
} from './index.ts';

const egg = {
  name: 'mc',
  image: 'ghcr.io/pterodactyl/yolks:java_17',
  ports: { '25565': 25565, '25575/tcp': { hostPort: 25575, hostIp: '127.0.0.1' } },
  environment: { SERVER_JARFILE: 'server.jar' },
  limits: { memory: '2048m', cpu: '2', disk: '5g', swap: -1, pids: 512 },
  startup: 'java -Xmx{{SERVER_MEMORY}}M -jar {{SERVER_JARFILE}}',
  done: ['Done (', 'regex:^ready$'],
  stop: '^C',
  stopTimeout: 30,
  crashRestart: true,
};

/** One valid payload per action (and a serverId when it needs one). */
const actions: Record<Action, { payload: unknown; serverId?: string }> = {
  create_server: { payload: { serverId: 's1', eggConfig: egg } },
  start_server: { payload: {}, serverId: 's1' },
  stop_server: { payload: { signal: 'SIGINT', timeout: 10 }, serverId: 's1' },
  restart_server: { payload: { timeout: 0 }, serverId: 's1' },
  kill_server: { payload: {}, serverId: 's1' },
  delete_server: { payload: {}, serverId: 's1' },
  get_status: { payload: {}, serverId: 's1' },
  send_command: { payload: { command: 'say hi' }, serverId: 's1' },
  update_server: { payload: { environment: { A: 'b' }, limits: { memory: '1g' } }, serverId: 's1' },
  system_info: { payload: {} },
  list_servers: { payload: {} },
  list_files: {
    payload: { path: '/config', offset: 0, limit: 200, sort: 'size', order: 'desc' },
    serverId: 's1',
  },
  get_file: { payload: { path: 'server.properties' }, serverId: 's1' },
  reinstall_server: { payload: {}, serverId: 's1' },
  backup_create: {
    payload: {
      backupId: 'b1',
      format: 'tar.zst',
      ignore: ['logs/'],
      commandsBefore: ['save-off', 'save-all'],
      commandsAfter: ['save-on'],
      retain: 5,
      commandWaitSeconds: 2,
      locked: false,
    },
    serverId: 's1',
  },
  backup_list: { payload: { offset: 0, limit: 50 }, serverId: 's1' },
  backup_delete: { payload: { backupId: 'b1' }, serverId: 's1' },
  backup_restore: { payload: { backupId: 'b1', truncate: true }, serverId: 's1' },
  backup_lock: { payload: { backupId: 'b1', locked: true }, serverId: 's1' },
  write_file: {
    payload: { path: 'eula.txt', content: 'eula=true\n', expectedSha256: 'a'.repeat(64) },
    serverId: 's1',
  },
  stat_file: { payload: { path: 'server.properties' }, serverId: 's1' },
  create_directory: { payload: { path: 'world/region' }, serverId: 's1' },
  rename_file: { payload: { from: 'a.txt', to: 'b/a.txt' }, serverId: 's1' },
  copy_file: { payload: { from: 'world', to: 'world-copy' }, serverId: 's1' },
  delete_files: { payload: { root: '/logs', names: ['a.log', 'old'] }, serverId: 's1' },
  chmod_file: { payload: { path: 'start.sh', mode: '0755' }, serverId: 's1' },
  search_files: { payload: { path: '/', query: '.yml', limit: 50 }, serverId: 's1' },
  create_transfer: {
    payload: { direction: 'upload', path: 'world.zip', size: 10, ttlSeconds: 60 },
    serverId: 's1',
  },
  relay_transfer: { payload: { ticket: 'a'.repeat(43) } },
  transfer_push: {
    payload: {
      backupId: 'b1',
      url: `http://10.0.0.2:8080/transfers/${'a'.repeat(43)}`,
      ticket: 'a'.repeat(43),
      targetNodeId: 'n2',
      connectTimeoutMs: 10_000,
    },
    serverId: 's1',
  },
  docker_tunnel: { payload: { ticket: 'a'.repeat(43) } },
  backup_import: {
    payload: {
      backupId: 'b1',
      format: 'tar.zst',
      size: 10,
      sha256: 'a'.repeat(64),
      name: null,
      bytes: null,
      entries: null,
      ttlSeconds: 60,
    },
    serverId: 's1',
  },
  sftp_revoke: { payload: { userId: 'u1', serverId: 's1' } },
  file_compress: { payload: { root: '/', names: ['world'], format: 'zip' }, serverId: 's1' },
  file_decompress: { payload: { path: '/a.tar.gz', destination: '/x' }, serverId: 's1' },
  volume_backup: { payload: { volume: 'game-data', format: 'tar.zst', ttlSeconds: 60 } },
  volume_restore: {
    payload: { volume: 'game-data', size: 10, force: true, truncate: false, ttlSeconds: 60 },
  },
  volume_list_files: {
    payload: { volume: 'game-data', path: '/conf', offset: 0, limit: 50, sort: 'name', order: 'asc' },
  },
  volume_get_file: { payload: { volume: 'game-data', path: '/conf/a.txt' } },
  volume_file_download: { payload: { volume: 'game-data', path: '/conf/a.txt', ttlSeconds: 60 } },
  volume_file_upload: { payload: { volume: 'game-data', path: '/conf/b.txt', size: 3, ttlSeconds: 60 } },
  volume_create_directory: { payload: { volume: 'game-data', path: '/conf/new' } },
  volume_rename: { payload: { volume: 'game-data', from: '/conf/b.txt', to: '/conf/c.txt' } },
  volume_delete_files: { payload: { volume: 'game-data', root: '/conf', names: ['c.txt'] } },
  list_mods: {
    payload: { folders: [{ path: 'BepInEx/plugins', kind: 'bepinex' }], offset: 0, limit: 50 },
    serverId: 's1',
  },
  fence_servers: {
    payload: { servers: [{ serverId: 's1', fencedAt: '2026-01-01T00:00:00.000Z', reason: 'failover' }] },
  },
  stack_deploy: {
    payload: {
      project: 'demo',
      networks: [],
      volumes: [],
      services: [
        {
          name: 'web',
          container: 'demo-web-1',
          hash: 'a'.repeat(64),
          dependsOn: [],
          create: { Image: 'busybox' },
          connect: [],
        },
      ],
    },
  },
  stack_stop: { payload: { project: 'demo' } },
  stack_start: { payload: { project: 'demo' } },
  stack_remove: { payload: { project: 'demo', volumes: true } },
  stack_list: { payload: {} },
  stack_inspect: { payload: { project: 'demo' } },
  docker_containers: { payload: { offset: 0, limit: 100 } },
  player_action: { payload: { action: 'kick', id: '3', name: 'Sarge', reason: 'afk' }, serverId: 's1' },
  image_check: { payload: {}, serverId: 's1' },
  image_update_server: { payload: { readyTimeoutSeconds: 60, stableSeconds: 5 }, serverId: 's1' },
};

/** One bad payload per action that has a payload to get wrong. */
const badPayloads: Partial<Record<Action, unknown>> = {
  create_server: { serverId: 's1', eggConfig: { name: 'x' } },
  start_server: { unexpected: true },
  stop_server: { signal: 'SIGNOPE' },
  restart_server: { timeout: -1 },
  send_command: { command: '' },
  update_server: { limits: { memory: 'lots' } },
  list_files: { path: '/', limit: 1001 },
  get_file: { path: 'x'.repeat(5000) },
  write_file: { path: 'eula.txt', content: '€'.repeat(350_000) },
  backup_create: { format: 'zip' },
  backup_list: { limit: 101 },
  backup_delete: { backupId: '../x' },
  backup_restore: { backupId: 'b1', truncate: 'yes' },
  backup_lock: { backupId: 'b1' },
  stat_file: { path: 'x'.repeat(5000) },
  create_directory: { path: '' },
  rename_file: { from: 'a', to: 'x'.repeat(4097) },
  copy_file: { from: 'a' },
  delete_files: { names: Array.from({ length: 1001 }, (_, i) => `f${i}`) },
  chmod_file: { path: 'a', mode: '4755' },
  search_files: { query: '', limit: 10 },
  create_transfer: { direction: 'upload', path: 'a', size: -1 },
  relay_transfer: { ticket: '../x' },
  transfer_push: { backupId: 'b1', url: 'http://x/transfers/t', ticket: '../x', targetNodeId: 'n2' },
  docker_tunnel: { ticket: '../x' },
  backup_import: { backupId: 'b1', format: 'tar.zst', size: 10, sha256: 'nope' },
  sftp_revoke: { serverId: 's1' },
  file_compress: { names: [], format: 'tar.gz' },
  file_decompress: { path: '' },
  volume_backup: { volume: '../etc' },
  volume_restore: { volume: 'v', size: 0 },
  volume_list_files: { volume: '../etc', path: '/' },
  volume_get_file: { volume: 'v', path: 7 },
  volume_file_download: { volume: 'v', path: '' },
  volume_file_upload: { volume: 'v', path: '/a', size: -1 },
  volume_create_directory: { volume: '../v', path: '/a' },
  volume_rename: { volume: 'v', from: '/a' },
  volume_delete_files: { volume: 'v', names: [] },
  list_mods: { folders: [{ path: '../../etc', kind: 'other' }] },
  fence_servers: { servers: [{ serverId: '', fencedAt: 'yesterday', reason: 'x' }] },
  stack_deploy: { project: 'Demo', networks: [], volumes: [], services: [] },
  stack_stop: { project: '../x' },
  stack_remove: { project: 'demo', volumes: 'yes' },
  docker_containers: { unexpected: true, limit: 0 },
  player_action: { action: 'kick', id: '-1' },
  image_check: { registryAuth: 'x'.repeat(9000) },
  image_update_server: { readyTimeoutSeconds: 1 },
};

const usage = { used: '1m', percentage: 1, usedBytes: 1048576, limitBytes: 104857600 };
const events: Record<EventName, unknown> = {
  server_status_changed: { serverId: 's1', previousStatus: 'starting', currentStatus: 'running', pid: 7 },
  server_log: { serverId: 's1', logLevel: 'INFO', message: 'Done (1.2s)!', stream: 'stdout' },
  server_log_dropped: { serverId: 's1', count: 12, reason: 'throttled' },
  resource_update: {
    serverId: 's1',
    cpu: 12.5,
    memory: usage,
    network: { rx: 10, tx: 20 },
    disk: usage,
    uptime: 60,
  },
  server_crashed: { serverId: 's1', exitCode: 137, oomKilled: true, restarting: false, reason: 'oom' },
  server_update_progress: { serverId: 's1', stage: 'recreating' },
  players_update: { serverId: 's1', online: 1, max: 20, list: [{ name: 'steve', score: 3, bot: false }] },
  remote_console_state: {
    serverId: 's1',
    transport: 'quake3-rcon',
    state: 'wrong_password',
    message: 'refused',
  },
  install_output: { serverId: 's1', message: 'downloading' },
  install_completed: { serverId: 's1', success: true, exitCode: 0 },
  operation_progress: { operationId: 'op1', serverId: 's1', stage: 'killing', message: 'after 45 s' },
  image_pull_progress: {
    operationId: 'op1',
    serverId: 's1',
    layers: [{ id: 'abc', status: 'Downloading', current: 1, total: 2 }],
    done: false,
  },
  operation_completed: {
    operationId: 'op1',
    serverId: 's1',
    action: 'stop_server',
    success: false,
    error: { code: 'OPERATION_SUPERSEDED', message: 'killed' },
  },
  agent_hello: {
    protocolVersion: 1,
    agentVersion: '0.1.0',
    servers: [{ serverId: 's1', status: 'running', containerId: 'abc' }],
  },
};

const json = (v: unknown) => JSON.parse(JSON.stringify(v));

describe('every action', () => {
  it('the sample table covers every action', () => {
    assert.deepEqual(Object.keys(actions).sort(), Object.keys(actionPayloads).sort());
  });
  for (const [action, sample] of Object.entries(actions) as [
    Action,
    { payload: unknown; serverId?: string },
  ][]) {
    it(`${action} round-trips`, () => {
      const cmd = command(
        action,
        sample.payload as never,
        sample.serverId ? { serverId: sample.serverId } : {},
      );
      const r = parseAgentInbound(JSON.stringify(cmd));
      assert.equal(r.ok, true, r.ok ? '' : r.message);
      if (r.ok) assert.deepEqual(json(r.message), json(cmd));
    });
    const bad = badPayloads[action];
    if (bad !== undefined) {
      it(`${action} with a bad payload is CONFIG_INVALID, id kept`, () => {
        const cmd = { ...command(action, {} as never, { serverId: 's1' }), payload: bad };
        const r = parseAgentInbound(JSON.stringify(cmd));
        assert.equal(r.ok, false);
        if (!r.ok) {
          assert.equal(r.code, 'CONFIG_INVALID');
          assert.equal(r.id, cmd.id);
        }
      });
    }
  }
  it('a server action without a serverId is CONFIG_INVALID', () => {
    const r = parseAgentInbound(JSON.stringify(command('start_server', {})));
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.code, 'CONFIG_INVALID');
  });
  it('update_server adds no defaults: only the fields given change', () => {
    const r = parseAgentInbound(
      JSON.stringify(command('update_server', { environment: { A: 'b' } }, { serverId: 's1' })),
    );
    assert.equal(r.ok, true);
    if (r.ok && r.message.type === 'command')
      assert.deepEqual(r.message.payload, { environment: { A: 'b' } });
    else assert.fail('expected a command');
  });
  it('an envelope with a wrong type or shape is INVALID_MESSAGE', () => {
    for (const raw of [
      '[]',
      '{"type":"command"}',
      JSON.stringify({ ...command('get_status', {}, { serverId: 's1' }), timestamp: 'yesterday' }),
      JSON.stringify({ ...command('get_status', {}, { serverId: 's1' }), type: 'event' }),
      JSON.stringify({ id: 'p', type: 'ping' }),
    ]) {
      const r = parseAgentInbound(raw);
      assert.equal(r.ok, false, raw);
      if (!r.ok) assert.equal(r.code, 'INVALID_MESSAGE', raw);
    }
  });
});

describe('every event', () => {
  it('the sample table covers every event', () => {
    assert.deepEqual(Object.keys(events).sort(), Object.keys(eventData).sort());
  });
  for (const [name, data] of Object.entries(events) as [EventName, unknown][]) {
    it(`${name} round-trips and rejects wrong data`, () => {
      const msg = event(name, data as never, 'agent_1');
      const r = parsePanelInbound(JSON.stringify(msg));
      assert.equal(r.ok, true, r.ok ? '' : r.message);
      if (r.ok) assert.deepEqual(json(r.message), json(msg));
      const bad = parsePanelInbound(JSON.stringify({ ...msg, data: { serverId: 42 } }));
      assert.equal(bad.ok, false);
      if (!bad.ok) assert.equal(bad.code, 'INVALID_MESSAGE');
    });
  }
  it('an unknown event is INVALID_MESSAGE', () => {
    const r = parsePanelInbound(
      JSON.stringify({ ...event('server_log', { serverId: 's', message: 'x' }), event: 'nope' }),
    );
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.code, 'INVALID_MESSAGE');
  });
});

describe('responses, heartbeat, registration', () => {
  it('ok and error responses round-trip; an unknown error code is rejected', () => {
    for (const res of [
      okResponse('c1', { status: 'running' }, 'started'),
      errorResponse('c2', 'SERVER_NOT_FOUND', 'no'),
    ]) {
      const r = parsePanelInbound(JSON.stringify(res));
      assert.equal(r.ok, true);
      if (r.ok) assert.deepEqual(json(r.message), json(res));
    }
    const bad = parsePanelInbound(
      JSON.stringify({ ...errorResponse('c3', 'TIMEOUT', 'x'), error: { code: 'NOPE', message: 'x' } }),
    );
    assert.equal(bad.ok, false);
  });
  it('ping and pong round-trip', () => {
    const ping = { id: 'p1', type: 'ping', timestamp: new Date().toISOString() };
    assert.deepEqual(PingMessage.parse(json(ping)), ping);
    const r = parseAgentInbound(JSON.stringify(ping));
    assert.equal(r.ok && r.message.type, 'ping');
    const pong = {
      id: 'p1',
      type: 'pong',
      timestamp: new Date().toISOString(),
      data: { agentStatus: 'healthy', activeServers: 2, systemLoad: { cpu: 10, memory: 50, disk: 30 } },
    };
    assert.deepEqual(PongMessage.parse(json(pong)), pong);
    const p = parsePanelInbound(JSON.stringify(pong));
    assert.equal(p.ok, true);
    assert.equal(parsePanelInbound(JSON.stringify({ ...pong, data: { agentStatus: 'sleepy' } })).ok, false);
  });
  it('the seed registration request and response round-trip', () => {
    const req = {
      name: 'node-01',
      hostname: '192.168.1.100',
      port: 8080,
      capabilities: {
        maxMemory: '16GB',
        maxCpuCores: 8,
        dockerVersion: '24.0.0',
        supportedArchitectures: ['amd64', 'arm64'],
      },
      protocolVersion: 1,
    };
    assert.deepEqual(RegisterRequest.parse(json(req)), req);
    assert.equal(RegisterRequest.safeParse({ ...req, port: 70000 }).success, false);
    const res = {
      success: true,
      agent: {
        id: 'agent_uuid',
        token: 'jwt',
        websocketUrl: 'wss://panel.domain.com/ws/agents',
        refreshToken: 'r',
        expiresAt: '2030-01-01T00:00:00Z',
      },
    };
    assert.deepEqual(RegisterResponse.parse(json(res)), res);
    assert.equal(RegisterResponse.safeParse({ success: false, agent: res.agent }).success, false);
    assert.deepEqual(RefreshRequest.parse({ refreshToken: 'r' }), { refreshToken: 'r' });
    assert.equal(RefreshRequest.safeParse({ refreshToken: '' }).success, false);
  });
});
