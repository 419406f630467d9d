import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type DomainEvent, InProcessBus } from './index.ts';

const online = (nodeId: string): DomainEvent => ({ kind: 'node.online', nodeId });

test('subscribers get each event in subscription order, per publish; kinds filter; * gets all', () => {
  const bus = new InProcessBus({ error: () => undefined });
  const seen: string[] = [];
  bus.subscribe('node.online', (e) => {
    seen.push(`a:${e.nodeId}`);
  });
  bus.subscribe('*', (e) => {
    seen.push(`b:${e.kind}`);
  });
  bus.subscribe('node.offline', (e) => {
    seen.push(`c:${e.nodeId}`);
  });
  bus.publish(online('n1'));
  bus.publish({ kind: 'node.offline', nodeId: 'n1' });
  bus.publish(online('n2'));
  assert.deepEqual(seen, ['a:n1', 'b:node.online', 'b:node.offline', 'c:n1', 'a:n2', 'b:node.online']);
});

test('a throwing or rejecting subscriber is logged and never stops the others', async () => {
  const errors: object[] = [];
  const bus = new InProcessBus({ error: (o) => errors.push(o) });
  const seen: string[] = [];
  bus.subscribe('*', () => {
    throw new Error('boom');
  });
  bus.subscribe('*', async () => {
    throw new Error('async boom');
  });
  bus.subscribe('node.online', (e) => {
    seen.push(e.nodeId);
  });
  bus.publish(online('n1'));
  bus.publish(online('n2'));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen, ['n1', 'n2']);
  assert.equal(errors.length, 4);
  assert.match(JSON.stringify(errors), /boom/);
});

test('unsubscribe stops delivery', () => {
  const bus = new InProcessBus({ error: () => undefined });
  let n = 0;
  const off = bus.subscribe('node.online', () => {
    n++;
  });
  bus.publish(online('n1'));
  off();
  bus.publish(online('n1'));
  assert.equal(n, 1);
});

test("one process: an 'others' subscriber hears nothing (there is no other replica), 'everywhere' all", () => {
  const bus = new InProcessBus({ error: () => undefined });
  const seen: string[] = [];
  bus.subscribe('node.online', (e) => void seen.push(`others:${e.nodeId}`), 'others');
  bus.subscribe('node.online', (e) => void seen.push(`everywhere:${e.nodeId}`), 'everywhere');
  bus.subscribe('node.online', (e) => void seen.push(`origin:${e.nodeId}`), 'origin');
  bus.publish(online('n1'));
  assert.deepEqual(seen, ['everywhere:n1', 'origin:n1']);
});
