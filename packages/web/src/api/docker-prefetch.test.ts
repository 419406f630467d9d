import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { QueryClient } from '@tanstack/react-query';
import { prefetchDockerList } from './docker.ts';

/** The query keys prefetched at boot for an address (nothing is fetched: prefetchQuery is caught). */
function prefetched(pathname: string): string[] {
  const keys: string[] = [];
  const qc = {
    prefetchQuery: (o: { queryKey: readonly unknown[] }) => {
      keys.push(JSON.stringify(o.queryKey));
      return Promise.resolve();
    },
  } as unknown as QueryClient;
  prefetchDockerList(qc, pathname);
  return keys;
}

test("a node's container list is asked for at boot: the node list, its first rows, the whole list", () => {
  const list = ['["docker-nodes"]', '["docker","n1","containers","head"]', '["docker","n1","containers"]'];
  assert.deepEqual(prefetched('/docker/n1/containers'), list);
  assert.deepEqual(prefetched('/docker/n1'), list);
  assert.deepEqual(prefetched('/docker/n1/'), list);
  assert.deepEqual(prefetched('/docker/a%20b'), [
    '["docker-nodes"]',
    '["docker","a b","containers","head"]',
    '["docker","a b","containers"]',
  ]);
});

test('other addresses: the node list only under /docker, else nothing', () => {
  assert.deepEqual(prefetched('/docker'), ['["docker-nodes"]']);
  assert.deepEqual(prefetched('/docker/all'), ['["docker-nodes"]']);
  assert.deepEqual(prefetched('/docker/%E0%A4%A'), ['["docker-nodes"]']);
  assert.deepEqual(prefetched('/docker/n1/images'), []);
  assert.deepEqual(prefetched('/docker/n1/containers/abc'), []);
  assert.deepEqual(prefetched('/servers/x'), []);
  assert.deepEqual(prefetched('/'), []);
});
