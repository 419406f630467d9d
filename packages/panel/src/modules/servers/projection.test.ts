/**
 * The projection's feature check on console lines of stopped servers (issue 15 item 4: at 20,000
 * servers, one row lookup per server a minute stalled the Panel): a server's template is learned
 * once (it never changes), a template's features are kept per template, a raw-image server costs
 * no lookup at all; a line that calls for a feature still raises it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EventMessage } from '@cap/protocol';
import { sql } from 'kysely';
import { pino } from 'pino';
import type { DomainEvent, EventBus } from '../../bus/index.ts';
import { openSqlite } from '../../db/index.ts';
import type { ServersTable } from '../../db/schema.ts';
import { ConsoleMarks } from '../../relay/console-marks.ts';
import type { LiveStore } from '../../relay/live-store.ts';
import type { OperationsService } from '../operations/service.ts';
import type { TemplatesService } from '../templates/service.ts';
import { AgentEventProjection, INTENT_AHEAD } from './projection.ts';
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
    const shown: string[] = [];
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
      shown: (serverId: string, m: { seq: number }) => shown.push(`${serverId}:${m.seq}`),
    } as unknown as ConsoleMarks;
    return { marks, pending, shown, most: () => most, mostReads: () => mostReads };
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
    // acked (and stored as shown) once published: in the node's order
    assert.deepEqual(
      projection.takeAcks('node-1').map((a) => a.serverId),
      Array.from({ length: 20 }, (_, i) => `s${i}`),
    );
  });

  it('a line is acked (the Agent may forget it) only once its mark is stored AND it is published', async () => {
    const { marks, pending, shown } = slowMarks();
    const published: string[] = [];
    const projection = new AgentEventProjection({
      repo: {} as unknown as ServersRepo,
      templates: {} as TemplatesService,
      live: { status: () => 'running' } as unknown as LiveStore,
      bus: { publish: (e: { serverId: string }) => published.push(e.serverId) } as unknown as EventBus,
      log: pino({ level: 'silent' }),
      operations: {} as OperationsService,
      marks,
    });
    projection.track('a', 'n');
    projection.track('b', 'n');
    const ts = new Date().toISOString();
    const done = ['a', 'b'].map((serverId) =>
      projection.handleEvent('n', {
        type: 'event',
        timestamp: ts,
        event: 'server_log',
        data: { serverId, message: 'x', seq: 1, epoch: 'e' },
      } as EventMessage),
    );
    for (let i = 0; i < 50 && pending.length < 2; i++) await new Promise((r) => setImmediate(r));
    // b's mark is stored, but its publish waits behind a's (the node's order)
    pending[1]?.done();
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    assert.deepEqual(published, []);
    assert.deepEqual(projection.takeAcks('n'), [], 'stored but not published: not acked');
    assert.deepEqual(shown, []);
    pending[0]?.done();
    await Promise.all(done);
    assert.deepEqual(published, ['a', 'b']);
    assert.deepEqual(shown, ['a:1', 'b:1']);
    assert.deepEqual(
      projection.takeAcks('n').map((a) => a.serverId),
      ['a', 'b'],
    );
  });
});

describe('the projection: lines sent again after a Panel restart (ConsoleMarks: intent and shown)', () => {
  async function restarted(row: { epoch: string; seq: number; shown: number } | undefined) {
    const db = openSqlite(':memory:');
    await sql`create table console_marks (server_id text primary key, epoch text not null, seq bigint not null, shown bigint not null default 0)`.execute(
      db,
    );
    if (row)
      await sql`insert into console_marks (server_id, epoch, seq, shown) values ('s1', ${row.epoch}, ${row.seq}, ${row.shown})`.execute(
        db,
      );
    const marks = new ConsoleMarks(db, { warn: () => undefined }, { shownIdleMs: 60_000 });
    const published: DomainEvent[] = [];
    const projection = new AgentEventProjection({
      repo: {} as unknown as ServersRepo,
      templates: {} as TemplatesService,
      live: { status: () => 'running' } as unknown as LiveStore,
      bus: { publish: (e: DomainEvent) => published.push(e) } as unknown as EventBus,
      log: pino({ level: 'silent' }),
      operations: {} as OperationsService,
      marks,
    });
    projection.track('s1', 'n');
    const send = (first: number, last: number, epoch = 'e') =>
      projection.handleEvent('n', {
        type: 'event',
        timestamp: new Date().toISOString(),
        event: 'server_log',
        data: {
          serverId: 's1',
          message: Array.from({ length: last - first + 1 }, (_, i) => `l${first + i}`).join('\n'),
          seq: last,
          epoch,
        },
      } as EventMessage);
    return { db, marks, projection, published, send };
  }
  const consoles = (published: DomainEvent[]) =>
    published.flatMap((e) =>
      e.kind === 'server.console' ? [{ lines: e.lines, seq: e.seq, resent: e.resent }] : [],
    );

  it('a mark stored, its publish never happened (the kill): the lines sent again come out, flagged', async () => {
    // the dead process stored the intent 5 (lines 4, 5 about to be published), shown up to 3
    const { db, published, send } = await restarted({ epoch: 'e', seq: 5, shown: 3 });
    await send(4, 5);
    // before the fix: skipped as published (seq <= mark), lost
    assert.deepEqual(consoles(published), [{ lines: ['l4', 'l5'], seq: 5, resent: 2 }]);
    await db.destroy();
  });

  it('the three ranges: seq <= shown skipped, shown < seq <= intent published flagged, beyond the intent new', async () => {
    const { db, marks, published, send } = await restarted({ epoch: 'e', seq: 10, shown: 6 });
    await send(5, 12);
    await send(13, 13);
    assert.deepEqual(consoles(published), [
      { lines: ['l7', 'l8', 'l9', 'l10', 'l11', 'l12'], seq: 12, resent: 4 },
      { lines: ['l13'], seq: 13, resent: undefined },
    ]);
    // this process published them: sent again, they are skipped, not flagged again
    await send(9, 13);
    assert.equal(consoles(published).length, 2);
    // one write for all of them: the intent stored INTENT_AHEAD past the first message's last
    // line; the shown of 12 waits for the shown timer (or the server's next intent)
    assert.deepEqual(await marks.load('s1'), { epoch: 'e', seq: 12 + INTENT_AHEAD, shown: 6 });
    // the Agent started again (a new epoch): new, whatever the old marks
    await send(1, 2, 'f');
    assert.deepEqual(consoles(published).at(-1), { lines: ['l1', 'l2'], seq: 2, resent: undefined });
    await db.destroy();
  });

  it('the intent is stored INTENT_AHEAD lines ahead: one write per that many lines, then the next', async () => {
    const { db, marks, published, send } = await restarted(undefined);
    await send(1, 1);
    assert.deepEqual(await marks.load('s1'), { epoch: 'e', seq: 1 + INTENT_AHEAD, shown: 0 });
    for (let n = 2; n <= INTENT_AHEAD; n += 100) await send(n, Math.min(n + 99, INTENT_AHEAD + 1));
    // still the first write's: the lines up to it needed none
    assert.equal((await marks.load('s1'))?.seq, 1 + INTENT_AHEAD);
    await send(INTENT_AHEAD + 2, INTENT_AHEAD + 2);
    assert.equal((await marks.load('s1'))?.seq, INTENT_AHEAD + 2 + INTENT_AHEAD);
    assert.equal(consoles(published).flatMap((c) => c.lines).length, INTENT_AHEAD + 2, 'every line once');
    assert.ok(
      consoles(published).every((c) => c.resent === undefined),
      'none flagged',
    );
    await db.destroy();
  });

  it('killed with lines stored ahead: the next process publishes the re-sent and the new ones (flagged), none lost', async () => {
    const first = await restarted(undefined);
    await first.send(1, 3);
    assert.deepEqual(consoles(first.published), [{ lines: ['l1', 'l2', 'l3'], seq: 3, resent: undefined }]);
    // the kill: a new process on the same marks (shown never stored); the Agent sends 2..5 again
    const row = await first.marks.load('s1');
    assert.deepEqual(row, { epoch: 'e', seq: 3 + INTENT_AHEAD, shown: 0 });
    const next = await restarted(row);
    await next.send(2, 5);
    await next.send(6, 6);
    assert.deepEqual(consoles(next.published), [
      { lines: ['l2', 'l3', 'l4', 'l5'], seq: 5, resent: 4 },
      { lines: ['l6'], seq: 6, resent: 1 },
    ]);
    await first.db.destroy();
    await next.db.destroy();
  });

  it('shown equal to the intent (or no mark at all): nothing is flagged', async () => {
    const a = await restarted({ epoch: 'e', seq: 4, shown: 4 });
    await a.send(3, 6);
    assert.deepEqual(consoles(a.published), [{ lines: ['l5', 'l6'], seq: 6, resent: undefined }]);
    await a.db.destroy();
    const b = await restarted(undefined);
    await b.send(1, 2);
    assert.deepEqual(consoles(b.published), [{ lines: ['l1', 'l2'], seq: 2, resent: undefined }]);
    await b.db.destroy();
  });
});
