/**
 * Regular-expression denial of service (issue 8 item 8): egg rules are data written by strangers,
 * and the Panel evaluates them on its event loop. Template rules run in linear time (RE2), a
 * pattern RE2 cannot run is refused at import with its location, and the built-in rules cope with
 * long values. Timings here are generous bounds: the point is no exponential blow-up.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Json, type Session, startTestPanel, type TestPanel } from '../helpers.ts';

function egg(rules: string, name = 'ReDoS'): Json {
  return {
    meta: { version: 'PTDL_v2' },
    name,
    author: 'evil@x.test',
    description: '',
    docker_images: { Main: 'ctrl-alt-play/busybox:latest' },
    startup: './game {{VALUE}}',
    config: { files: '{}', startup: '{}', logs: '{}', stop: 'quit' },
    scripts: { installation: { script: '', container: 'ctrl-alt-play/busybox:latest', entrypoint: 'sh' } },
    variables: [
      {
        name: 'Value',
        description: '',
        env_variable: 'VALUE',
        default_value: '',
        user_viewable: true,
        user_editable: true,
        rules,
        field_type: 'text',
      },
    ],
  };
}

describe('template rules cannot stall the Panel', () => {
  let panel: TestPanel;
  let owner: Session;
  let nodeId: string;
  const importEgg = (rules: string, name?: string) =>
    panel.api(owner, 'POST', '/api/templates/import', { content: JSON.stringify(egg(rules, name)) });

  /** Runs the request while polling /api/health; returns the request's result and the worst health latency. */
  async function whileHealthy<T>(
    work: () => Promise<T>,
  ): Promise<{ result: T; ms: number; worstHealthMs: number }> {
    let done = false;
    let worst = 0;
    const poll = (async () => {
      while (!done) {
        const t = performance.now();
        const r = await fetch(`${panel.url}/api/health`);
        assert.equal(r.status, 200);
        await r.text();
        worst = Math.max(worst, performance.now() - t);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const t0 = performance.now();
    const result = await work();
    const ms = performance.now() - t0;
    done = true;
    await poll;
    return { result, ms, worstHealthMs: worst };
  }

  before(async () => {
    panel = await startTestPanel();
    owner = await panel.login();
    nodeId = (await panel.createNode(owner)).id;
  });
  after(() => panel.stop());

  test('regex:/^(a+)+$/ against 30 × a + ! is judged at once while /health answers', async () => {
    const imported = await importEgg('required|regex:/^(a+)+$/', 'catastrophic');
    assert.equal(imported.status, 201, JSON.stringify(imported.body));
    const templateId = imported.body.template.id as string;
    for (const value of ['a'.repeat(30) + '!', 'a'.repeat(20_000) + '!']) {
      const { result, ms, worstHealthMs } = await whileHealthy(() =>
        panel.api(owner, 'POST', '/api/servers?wait=true', {
          name: 'redos',
          nodeId,
          templateId,
          environment: { VALUE: value },
        }),
      );
      assert.equal(result.status, 400, JSON.stringify(result.body).slice(0, 300));
      assert.equal(result.body.code, 'VALIDATION_FAILED');
      assert.equal(result.body.details.VALUE[0].rule, 'regex:/^(a+)+$/');
      assert.ok(ms < 1000, `the check took ${ms.toFixed(0)} ms`);
      assert.ok(worstHealthMs < 1000, `/health waited ${worstHealthMs.toFixed(0)} ms`);
    }
    // and the rule still does its job
    const ok = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'fine',
      nodeId,
      templateId,
      environment: { VALUE: 'aaaa' },
    });
    assert.equal(ok.body.code, 'AGENT_OFFLINE', JSON.stringify(ok.body));
  });

  test('a pattern RE2 cannot run (backreference, lookaround) is refused at import with its location', async () => {
    for (const rules of [
      'required|regex:/^(a+)\\1$/',
      'regex:/^(?=a)a+$/',
      'string|regex:/^(?!x).*$/',
      'regex:/(/',
    ]) {
      const r = await importEgg(rules);
      assert.equal(r.status, 400, `${rules}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'TEMPLATE_INVALID');
      assert.equal(r.body.location, 'variables[0].rules');
      assert.match(r.body.message, /regex/);
    }
  });

  test('built-in rules on long values answer quickly too', async () => {
    const imported = await importEgg('required|string|url|alpha_dash|numeric|max:64', 'builtins');
    assert.equal(imported.status, 201, JSON.stringify(imported.body));
    const templateId = imported.body.template.id as string;
    for (const value of [
      `http://${'a'.repeat(30_000)} `,
      `${'1'.repeat(30_000)}x`,
      `${' '.repeat(30_000)}1x`,
    ]) {
      const { result, ms, worstHealthMs } = await whileHealthy(() =>
        panel.api(owner, 'POST', '/api/servers?wait=true', {
          name: 'long',
          nodeId,
          templateId,
          environment: { VALUE: value },
        }),
      );
      assert.equal(result.status, 400);
      assert.equal(result.body.code, 'VALIDATION_FAILED');
      assert.ok(ms < 1000, `the check took ${ms.toFixed(0)} ms`);
      assert.ok(worstHealthMs < 1000, `/health waited ${worstHealthMs.toFixed(0)} ms`);
    }
  });
});
