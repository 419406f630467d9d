/**
 * The projection's feature check on console lines of stopped servers (issue 15 item 4: at 20,000
 * servers, one row lookup per server a minute stalled the Panel): a server's template is learned
 * once (it never changes), a template's features are kept per template, a raw-image server costs
 * no lookup at all; a line that calls for a feature still raises it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EventMessage } from '@cap/protocol';
import { pino } from 'pino';
import type { EventBus } from '../../bus/index.ts';
import type { ServersTable } from '../../db/schema.ts';
import type { ConsoleMarks } from '../../relay/console-marks.ts';
import type { LiveStore } from '../../relay/live-store.ts';
import type { OperationsService } from '../operations/service.ts';
import type { TemplatesService } from '../templates/service.ts';
import { AgentEventProjection } from './projection.ts';
import type { ServersRepo } from './repo.ts';

const EULA = 'You need to agree to the EULA in order to run the server. Go to eula.txt for more info.';

function setup(rows: Record<string, Pick<ServersTable, 'id' | 'node_id' | 'template_id'>>) {
  const counts = { rows: 0, templates: 0 };
  const published: { kind: string; serverId?: string; feature?: string }[] = [];
  const repo = {
    findById: async (id: string) => {
      counts.rows += 1;
      return Object.hasOwn(rows, id) ? rows[id] : undefined;
    },
  } as unknown as ServersRepo;
  const templates = {
    template: async (id: string) => {
      counts.templates += 1;
      return { id, features: id === 'tpl-eula' ? ['eula'] : [] };
    },
  } as unknown as TemplatesService;
  const live = { status: () => 'offline' } as unknown as LiveStore;
  const bus = { publish: (e: { kind: string }) => published.push(e) } as unknown as EventBus;
  const projection = new AgentEventProjection({
    repo,
    templates,
    live,
    bus,
    log: pino({ level: 'silent' }),
    operations: {} as OperationsService,
  });
  const line = (serverId: string, message: string) =>
    projection.handleEvent('node-1', {
      type: 'event',
      timestamp: new Date().toISOString(),
      event: 'server_log',
      data: { serverId, message },
    } as EventMessage);
  return { projection, counts, published, line };
}

describe('the projection: template features of stopped servers', () => {
  it('a raw-image server tracked with its row costs no lookup, however many lines', async () => {
    const { projection, counts, line } = setup({});
    projection.track('s-raw', 'node-1', null);
    for (let i = 0; i < 50; i++) await line('s-raw', `tick ${i}`);
    assert.deepEqual(counts, { rows: 0, templates: 0 });
  });

  it('tracked without its template: the row is read once, the template once per template', async () => {
    const rows = {
      's-a': { id: 's-a', node_id: 'node-1', template_id: 'tpl-plain' },
      's-b': { id: 's-b', node_id: 'node-1', template_id: 'tpl-plain' },
    };
    const { projection, counts, line } = setup(rows);
    projection.track('s-a', 'node-1');
    projection.track('s-b', 'node-1');
    for (let i = 0; i < 20; i++) {
      await line('s-a', `tick ${i}`);
      await line('s-b', `tick ${i}`);
    }
    assert.deepEqual(counts, { rows: 2, templates: 1 });
  });

  it("a line that calls for the template's feature still raises it", async () => {
    const { projection, published, line } = setup({});
    projection.track('s-mc', 'node-1', 'tpl-eula');
    await line('s-mc', 'Loading libraries');
    assert.equal(projection.pendingFeature('s-mc'), undefined);
    await line('s-mc', EULA);
    assert.equal(projection.pendingFeature('s-mc')?.feature, 'eula');
    assert.ok(
      published.some((e) => e.kind === 'server.feature' && e.serverId === 's-mc' && e.feature === 'eula'),
    );
  });

  it('a server forgotten and tracked again on another template: its new template counts', async () => {
    const { projection, line } = setup({});
    projection.track('s-x', 'node-1', null);
    await line('s-x', EULA);
    assert.equal(projection.pendingFeature('s-x'), undefined);
    projection.forget('s-x');
    projection.track('s-x', 'node-1', 'tpl-eula');
    await line('s-x', EULA);
    assert.equal(projection.pendingFeature('s-x')?.feature, 'eula');
  });
});

describe('the projection: console marks off the node’s critical path', () => {
  /** marks whose writes end when the test says so; reads answer "none" */
  function slowMarks() {
    const pending: { serverId: string; seq: number; done: () => void }[] = [];
    let most = 0;
    let reading = 0;
    let mostReads = 0;
    const marks = {
      // a read takes a turn (a round trip)
      load: () =>
        new Promise<undefined>((resolve) => {
          reading += 1;
          mostReads = Math.max(mostReads, reading);
          setImmediate(() => {
            reading -= 1;
            resolve(undefined);
          });
        }),
      write: (serverId: string, m: { seq: number }) =>
        new Promise<void>((done) => {
          pending.push({ serverId, seq: m.seq, done });
          most = Math.max(most, pending.length);
        }),
    } as unknown as ConsoleMarks;
    return { marks, pending, most: () => most, mostReads: () => mostReads };
  }

  it("a node's lines of one tick: their marks read together and all written at once; published after their marks, in the node's order, and a status after them", async () => {
    const { marks, pending, most, mostReads } = slowMarks();
    const published: { kind: string; serverId?: string }[] = [];
    const projection = new AgentEventProjection({
      repo: { update: async () => undefined } as unknown as ServersRepo,
      templates: {} as TemplatesService,
      live: { status: () => 'running', setStatus: () => 'running' } as unknown as LiveStore,
      bus: { publish: (e: { kind: string }) => published.push(e) } as unknown as EventBus,
      log: pino({ level: 'silent' }),
      operations: {} as OperationsService,
      marks,
    });
    const ts = new Date().toISOString();
    const done: Promise<void>[] = [];
    for (let i = 0; i < 20; i++) {
      projection.track(`s${i}`, 'node-1', null);
      // as the hub hands them on: one after the other, nothing awaited
      done.push(
        projection.handleEvent('node-1', {
          type: 'event',
          timestamp: ts,
          event: 'server_log',
          data: { serverId: `s${i}`, message: `line ${i}`, seq: 1, epoch: 'e' },
        } as EventMessage),
      );
    }
    done.push(
      projection.handleEvent('node-1', {
        type: 'event',
        timestamp: ts,
        event: 'server_status_changed',
        data: { serverId: 's0', previousStatus: 'running', currentStatus: 'stopping' },
      } as EventMessage),
    );
    for (let i = 0; i < 50 && pending.length < 20; i++) await new Promise((r) => setImmediate(r));
    // every mark asked for before any was stored (awaiting each: one at a time)
    assert.equal(most(), 20);
    // the node's 20 stored marks read together (with the first line's), not one after the other
    assert.equal(mostReads(), 20);
    assert.equal(published.length, 0, 'nothing published before its mark is stored');
    // the last write ends first: still published in the node's order
    for (const p of [...pending].reverse()) p.done();
    await Promise.all(done);
    assert.deepEqual(
      published.map((e) => `${e.kind} ${e.serverId}`),
      [...Array.from({ length: 20 }, (_, i) => `server.console s${i}`), 'server.status s0'],
    );
    assert.deepEqual(
      projection.takeAcks('node-1').map((a) => a.serverId),
      Array.from({ length: 20 }, (_, i) => `s${19 - i}`),
    );
  });
});
