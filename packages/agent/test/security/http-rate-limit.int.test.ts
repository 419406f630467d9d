/**
 * Attack class: flooding and key guessing on the Agent's HTTP API. Requests are limited per
 * client address (a token bucket: AGENT_HTTP_RATE a second, twice that as a burst), before the
 * key is checked, so a guesser gets 429 RATE_LIMITED as fast as a flooder; /health needs no key.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Fixture, fixture, sleep } from '../helpers.ts';

const KEY = 'k_rate_limit_test_0123456789';
const RATE = 5;

describe('the Agent HTTP API rate limit', () => {
  let f: Fixture;
  let base: string;

  before(async () => {
    f = await fixture({ env: { AGENT_API_KEY: KEY, AGENT_HTTP_RATE: String(RATE) } });
    base = `http://127.0.0.1:${f.agent.httpPort}`;
  });
  after(() => f.cleanup());

  const command = (key: string) =>
    fetch(`${base}/api/command`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': key },
      body: JSON.stringify({
        id: 'r1',
        type: 'command',
        timestamp: new Date().toISOString(),
        action: 'list_servers',
      }),
    });

  test('a burst past the budget is answered 429 RATE_LIMITED with Retry-After; later requests pass', async () => {
    await sleep(2000); // a full bucket (2 × rate saved up at rate a second)
    const statuses: number[] = [];
    let limited: Response | undefined;
    for (let i = 0; i < 4 * RATE; i++) {
      const res = await command(KEY);
      statuses.push(res.status);
      if (res.status === 429) limited ??= res;
      else await res.body?.cancel();
    }
    const ok = statuses.filter((s) => s === 200).length;
    // the burst (2 × rate) plus what refilled while the loop ran, not the whole loop
    assert.ok(ok >= 2 * RATE && ok < 4 * RATE, `${ok} of ${statuses.length} passed: ${statuses.join(',')}`);
    assert.ok(limited, 'nothing was limited');
    const body = (await limited.json()) as { code: string };
    assert.equal(body.code, 'RATE_LIMITED');
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    await sleep(1000);
    assert.equal((await command(KEY)).status, 200);
  });

  test('key guessing is limited as well: wrong keys spend the same budget', async () => {
    // A burst of wrong keys empties the bucket; the right key sent at once after it must wait its
    // turn. A refill (one token per 1/RATE s) anywhere between the burst's first request and the
    // right key's answer would make a 200 legitimate (the bucket may have emptied early in the
    // burst), so a try where that much time passed proves nothing and is made again.
    const refillMs = 1000 / RATE;
    for (let attempt = 1; ; attempt++) {
      await sleep(2500); // a full bucket
      const t0 = performance.now();
      const guesses = await Promise.all(
        Array.from({ length: 6 * RATE }, async (_, i) => {
          const res = await command(`guess-${attempt}-${i}-xxxxxxxxxxxx`);
          await res.body?.cancel();
          return res.status;
        }),
      );
      const right = await command(KEY);
      await right.body?.cancel();
      const elapsed = performance.now() - t0;
      assert.ok(guesses.includes(401), guesses.join(','));
      assert.ok(guesses.filter((x) => x === 429).length >= 3 * RATE, guesses.join(','));
      if (right.status === 429) return;
      // a 200 this soon after the burst means the wrong keys did not spend the budget
      assert.ok(
        elapsed >= refillMs * 0.75,
        `right key got ${right.status} ${elapsed.toFixed(0)} ms after the burst began`,
      );
      assert.ok(attempt < 5, 'the machine was too slow to tell, five times over');
    }
  });

  test('/health needs no key', async () => {
    await sleep(1000);
    const res = await fetch(`${base}/health`);
    assert.equal(res.status, 200);
  });
});
