/** The address players use (issue 14 item 6): never the 0.0.0.0 / :: a port binds. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PublicAddress } from '../nodes/service.ts';
import { playerAddress } from './mapping.ts';

const alloc = (ip: string, port = 25565) => ({ id: 'a', nodeId: 'n', ip, port, serverId: 's', pooled: true });

test('a server on 0.0.0.0 shows the node public address; on its own IP, that IP; else nothing', () => {
  assert.equal(playerAddress(alloc('0.0.0.0'), 'play.example.com'), 'play.example.com:25565');
  assert.equal(playerAddress(alloc('::', 27015), '2001:db8::1'), '[2001:db8::1]:27015');
  assert.equal(playerAddress(alloc('203.0.113.7'), 'play.example.com'), '203.0.113.7:25565');
  assert.equal(playerAddress(alloc('0.0.0.0'), null), null);
  assert.equal(playerAddress(undefined, 'play.example.com'), null);
});

test('a public address is a hostname or an IP players can reach, without port or scheme', () => {
  for (const ok of ['play.example.com', 'localhost', '203.0.113.7', '2001:db8::1', 'node-1'])
    assert.ok(PublicAddress.safeParse(ok).success, ok);
  for (const bad of [
    '0.0.0.0',
    '::',
    'http://x.example',
    'x.example:25565',
    '',
    'a b',
    `${'a'.repeat(64)}.example`,
  ])
    assert.ok(!PublicAddress.safeParse(bad).success, bad);
});
