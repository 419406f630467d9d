import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { command, event, parseAgentInbound, parsePanelInbound, sizeToBytes } from './index.ts';

describe('protocol envelope', () => {
  it('round-trips the seed create_server command', () => {
    const seed = {
      id: 'msg_001',
      type: 'command',
      timestamp: '2025-01-23T10:00:00Z',
      agentId: 'agent_uuid',
      action: 'create_server',
      payload: {
        serverId: 'server_123',
        eggConfig: {
          name: 'minecraft-java',
          image: 'ghcr.io/pterodactyl/yolks:java_17',
          ports: { '25565': 25565 },
          environment: { SERVER_JARFILE: 'server.jar', MINECRAFT_VERSION: '1.20.4' },
          limits: { memory: '2048m', cpu: '2', disk: '5g' },
          startup: 'java -Xms128M -Xmx{{SERVER_MEMORY}}M -jar {{SERVER_JARFILE}}',
        },
      },
    };
    const r = parseAgentInbound(JSON.stringify(seed));
    assert.equal(r.ok, true);
    if (r.ok) assert.deepEqual(JSON.parse(JSON.stringify(r.message)), seed);
  });

  it('rejects an unknown action with UNKNOWN_ACTION and keeps the id', () => {
    const cmd = command('get_status', {}, { serverId: 's1' });
    const r = parseAgentInbound(JSON.stringify({ ...cmd, action: 'nope' }));
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.code, 'UNKNOWN_ACTION');
      assert.equal(r.id, cmd.id);
    }
  });

  it('rejects non-JSON with INVALID_MESSAGE', () => {
    const r = parseAgentInbound('{nope');
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.code, 'INVALID_MESSAGE');
  });

  it('rejects a bad payload with CONFIG_INVALID', () => {
    const r = parseAgentInbound(
      JSON.stringify({ ...command('send_command', { command: 'x' }, { serverId: 's1' }), payload: {} }),
    );
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.code, 'CONFIG_INVALID');
  });

  it('rejects a serverId that could escape a path', () => {
    const r = parseAgentInbound(JSON.stringify(command('get_status', {}, { serverId: '../etc' })));
    assert.equal(r.ok, false);
  });

  it('parses the seed status event and checks event data', () => {
    const seed = {
      type: 'event',
      timestamp: '2025-01-23T10:05:00Z',
      event: 'server_status_changed',
      data: { serverId: 'server_123', previousStatus: 'starting', currentStatus: 'running', pid: 1234 },
    };
    const r = parsePanelInbound(JSON.stringify(seed));
    assert.equal(r.ok, true);
    const bad = parsePanelInbound(
      JSON.stringify({ ...seed, data: { serverId: 'x', currentStatus: 'flying' } }),
    );
    assert.equal(bad.ok, false);
    const built = parsePanelInbound(JSON.stringify(event('server_log', { serverId: 's', message: 'hi' })));
    assert.equal(built.ok, true);
  });

  it('reads the seed sizes', () => {
    assert.equal(sizeToBytes('2048m'), 2048 * 1024 * 1024);
    assert.equal(sizeToBytes('5g'), 5 * 1024 ** 3);
    assert.equal(sizeToBytes(512), 512 * 1024 * 1024);
  });
});

it('names inherited from Object.prototype are unknown actions and events, not a crash', () => {
  const timestamp = new Date().toISOString();
  for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']) {
    const a = parseAgentInbound(JSON.stringify({ id: 'c1', type: 'command', timestamp, action: name }));
    assert.deepEqual([a.ok, !a.ok && a.code, !a.ok && a.id], [false, 'UNKNOWN_ACTION', 'c1']);
    const e = parsePanelInbound(JSON.stringify({ type: 'event', timestamp, event: name, data: {} }));
    assert.deepEqual([e.ok, !e.ok && e.code], [false, 'INVALID_MESSAGE']);
    const t = parsePanelInbound(JSON.stringify({ id: 'x', type: name, timestamp }));
    assert.deepEqual([t.ok, !t.ok && t.code], [false, 'INVALID_MESSAGE']);
  }
  // an id that is no usable id (too long, not a string) is not echoed
  const long = parseAgentInbound(JSON.stringify({ id: 'x'.repeat(100_000), type: 'nope' }));
  assert.equal(!long.ok && long.id, undefined);
});
