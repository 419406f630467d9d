/**
 * The node's container list from the Agent's cache (issue 11, list speed):
 * `GET /api/nodes/:id/docker-cache/containers` answers from a list the Agent keeps current from
 * Docker's event stream. Correctness first: a container made outside the Panel (`docker run`)
 * shows within a second, a renamed one under its new name, a removed one is gone within a second.
 * Real Panel, real Agent, real Docker Engine.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { docker, IMAGE, type Stack, startStack } from './harness.ts';

const LABEL = 'ctrl-alt-play.test';
const label = `docker-cache-${process.pid}`;

interface Listed {
  Id: string;
  Names: string[];
  State: string;
  Labels: Record<string, string>;
}

describe('Panel + Agent: the cached container list', () => {
  let stack: Stack;
  const list = async (q = '') => {
    const r = await stack.panel.api(
      stack.owner,
      'GET',
      `/api/nodes/${stack.nodeId}/docker-cache/containers${q}`,
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body as { containers: Listed[]; total: number; offset: number; syncedAt: string };
  };
  /** polls until `pred` holds; the time it took (ms) */
  const within = async (ms: number, pred: (l: Listed[]) => boolean, what: string) => {
    const t0 = Date.now();
    for (;;) {
      if (pred((await list()).containers)) return Date.now() - t0;
      assert.ok(Date.now() - t0 < ms, `${what} within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  before(async () => {
    stack = await startStack('docker-cache');
  });
  after(async () => {
    const l = await docker.listContainers({ all: true, filters: { label: [`${LABEL}=${label}`] } });
    await Promise.all(
      l.map((c) =>
        docker
          .getContainer(c.Id)
          .remove({ force: true })
          .catch(() => undefined),
      ),
    );
    await stack?.stop();
  });

  it('a container made outside shows within 1 s, its start and rename too; a removed one is gone within 1 s', async () => {
    // the cache holds the Engine's full list (other tests may add or remove some meanwhile:
    // every container the Engine lists before and after is in it)
    const before = new Set((await docker.listContainers({ all: true })).map((c) => c.Id));
    const cached = new Set((await list()).containers.map((c) => c.Id));
    const after = (await docker.listContainers({ all: true })).map((c) => c.Id);
    for (const id of after) if (before.has(id)) assert.ok(cached.has(id), `${id} is in the cached list`);

    const name = `cap-cache-${process.pid}`;
    const c = await docker.createContainer({
      Image: IMAGE,
      Cmd: ['sleep', '300'],
      name,
      Labels: { [LABEL]: label },
    });
    await within(1000, (l) => l.some((x) => x.Id === c.id && x.Names.includes(`/${name}`)), 'made outside');
    await c.start();
    await within(1000, (l) => l.some((x) => x.Id === c.id && x.State === 'running'), 'started');
    await c.rename({ name: `${name}-renamed` });
    await within(
      1000,
      (l) => l.some((x) => x.Id === c.id && x.Names.includes(`/${name}-renamed`)),
      'renamed',
    );
    await c.remove({ force: true });
    await within(1000, (l) => !l.some((x) => x.Id === c.id), 'removed');
  });

  it('pages with offset/limit; needs docker.read', async () => {
    const all = await list();
    const page = await list('?offset=0&limit=1');
    assert.equal(page.total, all.total);
    assert.equal(page.containers.length, Math.min(1, all.total));
    // a page from the middle is that slice of the whole (only the page crosses the Agent link);
    // other containers on this engine come and go: compared while the whole list stood still
    let checked = false;
    for (let i = 0; i < 10 && !checked; i++) {
      const before = await list();
      const mid = await list('?offset=1&limit=2');
      const after = await list();
      const ids = (l: { containers: Listed[] }) => l.containers.map((c) => c.Id).join(',');
      if (ids(before) !== ids(after)) continue;
      assert.equal(mid.total, before.total);
      assert.equal(mid.offset, 1);
      assert.deepEqual(
        mid.containers.map((c) => c.Id),
        before.containers.slice(1, 3).map((c) => c.Id),
      );
      checked = true;
    }
    assert.ok(checked, 'the list stood still for three requests at least once');
    const user = await stack.panel.userWithRole('user');
    const r = await stack.panel.api(user, 'GET', `/api/nodes/${stack.nodeId}/docker-cache/containers`);
    assert.equal(r.status, 403);
    assert.equal(r.body.code, 'PERMISSION_DENIED');
  });
});
