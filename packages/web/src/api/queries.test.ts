import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QueryClient } from '@tanstack/react-query';
import { applyLiveMessage, keys, newerLive } from './queries.ts';
import type { Dashboard, PanelNode, Server, Telemetry } from './types.ts';

// typed as the Panel's answers (openapi.gen.ts): tsc refuses a fixture the Panel would not send
function server(id: string, nodeId: string): Server {
  return {
    id,
    name: id,
    nodeId,
    status: 'running',
    nodeOnline: true,
    desiredState: 'running',
    image: 'ctrl-alt-play/busybox:latest',
    startup: '',
    startupDisplay: '',
    environment: {},
    ports: {},
    limits: {},
    done: null,
    stop: null,
    stopTimeout: null,
    templateId: null,
    variables: null,
    allocation: null,
    address: null,
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
    stats: null,
    lastUpdate: null,
    ownerId: null,
    backupLimit: null,
    failover: { enabled: false, afterSeconds: 300 },
    permissions: [],
  };
}

function node(id: string): PanelNode {
  return {
    id,
    name: id,
    online: true,
    lastHeartbeatAt: null,
    protocolVersion: 1,
    systemInfo: null,
    load: null,
    serverCount: 1,
    defaultLimits: null,
    transferUrl: null,
    effectiveDefaultLimits: {},
    publicAddress: null,
    agentRefusal: null,
    hostname: null,
    capabilities: null,
    createdAt: '2026-01-01T00:00:00.000Z',
    capacity: { memory: unknownCapacity(0), disk: unknownCapacity(0), cpu: unknownCapacity(-1) },
    tags: [],
    location: null,
    health: null,
  };
}

function unknownCapacity(overallocate: number): PanelNode['capacity']['memory'] {
  return { total: null, source: null, overallocate, limit: null, allocated: 0, free: null };
}

test('node_status offline marks that node’s servers nodeOnline: false in every cached view, and back', () => {
  const qc = new QueryClient();
  const a = server('a', 'n1');
  const b = server('b', 'n2');
  qc.setQueryData<Server[]>(keys.servers, [a, b]);
  qc.setQueryData<Dashboard>(keys.dashboard, {
    nodes: [node('n1'), node('n2')],
    servers: [a, b],
    totals: { servers: 2, running: 2, nodes: 2, online: 2, cpu: 0, memoryBytes: 0 },
    players: { online: 0, max: 0, byServer: [], tracked: false },
  });
  qc.setQueryData<Telemetry>(keys.telemetry('a'), {
    server: a,
    status: 'running',
    stats: null,
    console: [],
    metrics: [],
    feature: null,
  });

  applyLiveMessage(qc, { type: 'node_status', nodeId: 'n1', online: false });
  const online = (list: Server[] | undefined) => list?.map((s) => [s.id, s.nodeOnline]);
  assert.deepEqual(online(qc.getQueryData<Server[]>(keys.servers)), [
    ['a', false],
    ['b', true],
  ]);
  const dash = qc.getQueryData<Dashboard>(keys.dashboard);
  assert.deepEqual(online(dash?.servers), [
    ['a', false],
    ['b', true],
  ]);
  assert.deepEqual(
    dash?.nodes.map((n) => [n.id, n.online]),
    [
      ['n1', false],
      ['n2', true],
    ],
  );
  assert.equal(qc.getQueryData<Telemetry>(keys.telemetry('a'))?.server.nodeOnline, false);

  applyLiveMessage(qc, { type: 'node_status', nodeId: 'n1', online: true });
  assert.equal(qc.getQueryData<Telemetry>(keys.telemetry('a'))?.server.nodeOnline, true);
  assert.deepEqual(online(qc.getQueryData<Server[]>(keys.servers)), [
    ['a', true],
    ['b', true],
  ]);
  qc.clear();
});

test('a fetch that began before a live status answers with the live one, not its older copy', async () => {
  const qc = new QueryClient();
  let answer!: (list: Server[]) => void;
  const pending = newerLive(
    () => new Promise<Server[]>((r) => (answer = r)),
    (list, fix) => list.map(fix),
  );
  // the Agent's `running` arrives while the list request is out; the Panel answered `starting`
  applyLiveMessage(qc, { type: 'status', serverId: 's-race', status: 'running' });
  answer([
    { ...server('s-race', 'n1'), status: 'starting' },
    { ...server('s-other', 'n1'), status: 'offline' },
  ]);
  const list = await pending;
  assert.equal(list[0]?.status, 'running');
  assert.equal(list[1]?.status, 'offline', 'servers without a newer live status are as answered');
  // a fetch begun after the live message is newer than it: its answer stands
  const later = await newerLive(
    async (): Promise<Server[]> => [{ ...server('s-race', 'n1'), status: 'stopping' }],
    (l, fix) => l.map(fix),
  );
  assert.equal(later[0]?.status, 'stopping');
});
