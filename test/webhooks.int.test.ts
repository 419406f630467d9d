/**
 * A crash that produces a Discord-shaped webhook carrying the last console lines (issue 13 item 2):
 * a real busybox server on the real Agent and Docker Engine prints lines and exits 7; a Panel-wide
 * Discord hook (to a loopback receiver, PANEL_OUTBOUND_ALLOW_PRIVATE=1) gets the crash embed with
 * the exit code and those lines, within Discord's limits; its delivery log says 204.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Json, until } from '../packages/panel/test/helpers.ts';
import { assertDiscordShape, type Receiver, startReceiver } from '../packages/panel/test/webhook-receiver.ts';
import { IMAGE, type Stack, startStack } from './harness.ts';

describe('Panel + Agent + Docker: a crash becomes a Discord webhook with the last console lines', () => {
  let stack: Stack;
  let rx: Receiver;

  before(async () => {
    rx = await startReceiver();
    stack = await startStack('webhooks', { panelEnv: { PANEL_OUTBOUND_ALLOW_PRIVATE: '1' } });
  });
  after(async () => {
    await stack?.stop();
    await rx?.close();
  });

  it('crash → embed with exit code 7 and the lines before it', { timeout: 120_000 }, async () => {
    const { panel, owner } = stack;
    const api = (m: string, p: string, b?: unknown) => panel.api(owner, m, p, b);
    const hook = await api('POST', '/api/webhooks', {
      name: 'crash reports',
      kind: 'discord',
      url: `${rx.url}/api/webhooks/42/crash-token-abcdefghijklmnopqrstuvwxyz`,
      events: ['server.crashed'],
    });
    assert.equal(hook.status, 201, JSON.stringify(hook.body));
    const created = await api('POST', '/api/servers?wait=true', {
      name: 'crashy',
      nodeId: stack.nodeId,
      image: IMAGE,
      startup: 'echo "booting the world"; echo "last-words: disk on fire"; sleep 1; exit 7',
      stopTimeout: 1,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const serverId = created.body.id as string;
    assert.equal((await api('POST', `/api/servers/${serverId}/power`, { action: 'start' })).status, 202);
    await until(() => rx.got.some((g) => /crashed/.test(g.json?.embeds?.[0]?.title ?? '')), 60_000);
    const body = (rx.got.find((g) => /crashed/.test(g.json?.embeds?.[0]?.title ?? '')) as Json).json;
    assertDiscordShape(body);
    const e = body.embeds[0];
    assert.equal(e.title, '💥 crashy crashed');
    assert.match(e.description, /Exit code \*\*7\*\*/);
    assert.match(e.description, /```\n[\s\S]*booting the world\n[\s\S]*last-words: disk on fire\n```$/);
    assert.deepEqual(e.fields[0], { name: 'Exit code', value: '7', inline: true });
    assert.equal(e.color, 0xe74c3c);
    const log = await api('GET', `/api/webhooks/${hook.body.id}/deliveries`);
    const d = log.body.deliveries.find((x: Json) => x.event === 'server.crashed');
    assert.equal(d.state, 'delivered');
    assert.equal(d.lastStatus, 204);
    await api('POST', `/api/servers/${serverId}/power`, { action: 'kill' }).catch(() => undefined);
  });
});
