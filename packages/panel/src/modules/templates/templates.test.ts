/**
 * Templates through the API: the whole egg corpus (shared/eggs, 47 files) imported over HTTP,
 * export → import round trips, uuid conflicts and ?replace, built-ins, delete while in use.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CORPUS, eggFiles, MALFORMED } from '@cap/protocol/templates/corpus.fixture.ts';
import { importTemplate, type Template } from '@cap/protocol/templates/index.ts';
import { FakeAgent } from '../../../test/fake-agent.ts';
import { type Session, startTestPanel, type TestPanel } from '../../../test/helpers.ts';

const meaning = (t: Template) => {
  const { source, ...rest } = t;
  return { ...rest, updateUrl: source.updateUrl };
};

describe('templates API', () => {
  let panel: TestPanel;
  let owner: Session;
  let spectator: Session;
  before(async () => {
    panel = await startTestPanel();
    owner = await panel.login();
    spectator = await panel.userWithRole('spectator');
  });
  after(async () => panel.stop());

  test('the built-in game templates are there at start, once', async () => {
    const list = await panel.api(spectator, 'GET', '/api/templates');
    assert.equal(list.status, 200);
    const builtin = list.body
      .filter((t: { builtin: boolean }) => t.builtin)
      .map((t: { name: string }) => t.name);
    for (const name of ['OpenTTD', 'OpenArena', 'Teeworlds']) assert.ok(builtin.includes(name), name);
    assert.equal(await panel.app.panel.templates.ensureBuiltins(), 0, 'a second pass adds nothing');
  });

  test('an admin sets the remote console (issue 12); it is validated, exported, and others may not', async () => {
    const list = await panel.api(owner, 'GET', '/api/templates');
    const oa = list.body.find((t: { name: string; builtin: boolean }) => t.name === 'OpenArena' && t.builtin);
    const path = `/api/templates/${oa.id}/remote-console`;
    const before = await panel.api(owner, 'GET', `/api/templates/${oa.id}`);
    assert.deepEqual(before.body.template.remoteConsole, {
      transport: 'quake3-rcon',
      passwordVariable: 'RCON_PASSWORD',
    });
    const denied = await panel.api(spectator, 'PUT', path, { remoteConsole: null });
    assert.equal(denied.status, 403, JSON.stringify(denied.body));
    const bad = await panel.api(owner, 'PUT', path, {
      remoteConsole: { transport: 'source-rcon', passwordVariable: 'NOT_A_VARIABLE' },
    });
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    assert.equal(bad.body.code, 'VALIDATION_FAILED');
    assert.equal(bad.body.location, 'remoteConsole.passwordVariable');
    const unknown = await panel.api(owner, 'PUT', path, { remoteConsole: { transport: 'telnet' } });
    assert.equal(unknown.status, 400, JSON.stringify(unknown.body));
    const set = await panel.api(owner, 'PUT', path, {
      remoteConsole: { transport: 'source-rcon', port: 25575, passwordVariable: 'RCON_PASSWORD' },
    });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    assert.deepEqual(set.body.template.remoteConsole, {
      transport: 'source-rcon',
      port: 25575,
      passwordVariable: 'RCON_PASSWORD',
    });
    const egg = JSON.parse(
      await fetch(`${panel.url}/api/templates/${oa.id}/export`, { headers: owner.headers }).then((r) =>
        r.text(),
      ),
    );
    assert.deepEqual(egg.remote_console, {
      transport: 'source-rcon',
      port: 25575,
      passwordVariable: 'RCON_PASSWORD',
    });
    // null: stdin, kept as such: the start-up pass over the built-ins does not put theirs back
    const off = await panel.api(owner, 'PUT', path, { remoteConsole: null });
    assert.equal(off.status, 200);
    assert.deepEqual(off.body.template.remoteConsole, { transport: 'stdin' });
    await panel.app.panel.templates.ensureBuiltins();
    const still = await panel.api(owner, 'GET', `/api/templates/${oa.id}`);
    assert.deepEqual(still.body.template.remoteConsole, { transport: 'stdin' });
    // a built-in stored before issue 12 (no remoteConsole at all) gets the one its file declares
    const row = await panel.app.panel.templates.template(oa.id);
    const { remoteConsole: _rc, ...old } = row;
    await panel.app.panel.db
      .updateTable('templates')
      .set({ template: JSON.stringify(old) })
      .where('id', '=', oa.id)
      .execute();
    await panel.app.panel.templates.ensureBuiltins();
    const upgraded = await panel.api(owner, 'GET', `/api/templates/${oa.id}`);
    assert.deepEqual(upgraded.body.template.remoteConsole, before.body.template.remoteConsole);
    const back = await panel.api(owner, 'PUT', path, { remoteConsole: before.body.template.remoteConsole });
    assert.equal(back.status, 200);
  });

  test('imports the whole corpus through the API: well-formed ones stored, malformed ones located', async () => {
    const files = eggFiles(CORPUS);
    assert.equal(files.length, 47);
    let created = 0;
    let conflicts = 0;
    let rejected = 0;
    const started = performance.now();
    for (const file of files) {
      const rel = relative(CORPUS, file);
      const r = await panel.api(owner, 'POST', '/api/templates/import', {
        content: readFileSync(file, 'utf8'),
        filename: file.split('/').pop(),
      });
      const expected = MALFORMED[rel];
      if (expected) {
        assert.equal(r.status, 400, rel);
        assert.equal(r.body.code, 'TEMPLATE_INVALID', rel);
        assert.equal(r.body.location, expected, rel);
        rejected++;
        continue;
      }
      if (r.status === 409) {
        // the same uuid again (an older version of an egg already stored): not overwritten…
        assert.equal(r.body.code, 'CONFLICT', rel);
        const before = await panel.api(owner, 'GET', `/api/templates/${r.body.details.id}`);
        // …until asked to
        const again = await panel.api(owner, 'POST', '/api/templates/import?replace=true', {
          content: readFileSync(file, 'utf8'),
          filename: file.split('/').pop(),
        });
        assert.equal(again.status, 200, rel);
        assert.equal(again.body.replaced, true);
        assert.equal(again.body.template.id, r.body.details.id, 'replaced in place');
        assert.equal(before.status, 200);
        conflicts++;
        continue;
      }
      assert.equal(r.status, 201, `${rel}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.replaced, false);
      created++;
    }
    const ms = performance.now() - started;
    assert.equal(rejected, 5);
    assert.equal(created + conflicts, 42);
    console.log(
      `API import: ${created} created, ${conflicts} same-uuid (replaced on request), ${rejected} rejected; ${ms.toFixed(0)} ms`,
    );
    // nothing half-imported: only the created ones (+ built-ins) exist
    const list = await panel.api(owner, 'GET', '/api/templates');
    assert.equal(list.body.filter((t: { builtin: boolean }) => !t.builtin).length, created);
  });

  test('every stored template exports to PTDL_v2 and imports back unchanged in meaning', async () => {
    const list = await panel.api(owner, 'GET', '/api/templates');
    assert.ok(list.body.length >= 40);
    for (const summary of list.body) {
      const full = await panel.api(owner, 'GET', `/api/templates/${summary.id}`);
      assert.equal(full.status, 200);
      const res = await fetch(`${panel.url}/api/templates/${summary.id}/export`, {
        headers: owner.headers,
      });
      assert.equal(res.status, 200);
      assert.match(
        res.headers.get('content-disposition') ?? '',
        /^attachment; filename="egg-[a-z0-9-]+\.json"$/,
      );
      const text = await res.text();
      assert.equal(JSON.parse(text).meta.version, 'PTDL_v2');
      const back = importTemplate(text, { filename: 'x.json' }).template;
      assert.deepEqual(meaning(back), meaning(full.body.template), summary.name);
      if (summary.uuid) {
        // the export carries the uuid: importing it again is a conflict, not a duplicate
        const dup = await panel.api(owner, 'POST', '/api/templates/import', {
          content: text,
          filename: 'x.json',
        });
        assert.equal(dup.status, 409);
        assert.equal(dup.body.code, 'CONFLICT');
      }
    }
  });

  test('a spectator gets no default of a hidden variable, and no export', async () => {
    const egg = JSON.parse(
      readFileSync(
        fileURLToPath(new URL('../../../../../templates/builtin/openttd.json', import.meta.url)),
        'utf8',
      ),
    );
    // a template whose hidden ADMIN_PASSWORD has a default
    const secret = 'default-secret-123';
    for (const v of egg.variables) if (v.env_variable === 'ADMIN_PASSWORD') v.default_value = secret;
    egg.name = 'OpenTTD with a default password';
    const imp = await panel.api(owner, 'POST', '/api/templates/import', { content: JSON.stringify(egg) });
    assert.equal(imp.status, 201, JSON.stringify(imp.body));
    const id = imp.body.template.id;
    const asSpectator = await panel.api(spectator, 'GET', `/api/templates/${id}`);
    assert.equal(asSpectator.status, 200);
    assert.ok(!JSON.stringify(asSpectator.body).includes(secret));
    const asOwner = await panel.api(owner, 'GET', `/api/templates/${id}`);
    assert.ok(JSON.stringify(asOwner.body).includes(secret));
    assert.equal((await panel.api(spectator, 'GET', `/api/templates/${id}/export`)).status, 403);
    assert.equal((await panel.api(owner, 'DELETE', `/api/templates/${id}`)).status, 204);
  });

  test('a malformed body field path; a spectator cannot import; unknown ids are 404', async () => {
    const bad = await panel.api(owner, 'POST', '/api/templates/import', {
      content: JSON.stringify({ meta: { version: 'PTDL_v2' }, name: 'x', docker_images: {}, variables: [] }),
      filename: 'x.json',
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'TEMPLATE_INVALID');
    assert.ok(bad.body.location, 'a field path');
    const yamlBad = await panel.api(owner, 'POST', '/api/templates/import', {
      content: 'meta:\n  version: PTDL_v2\nname: [unclosed\n',
      filename: 'x.yaml',
    });
    assert.equal(yamlBad.body.code, 'TEMPLATE_INVALID');
    assert.match(yamlBad.body.location, /^line \d+, column \d+$/);
    const forbidden = await panel.api(spectator, 'POST', '/api/templates/import', { content: '{}' });
    assert.equal(forbidden.status, 403);
    assert.equal((await panel.api(owner, 'GET', '/api/templates/t_nope')).body.code, 'NOT_FOUND');
    assert.equal((await panel.api(owner, 'DELETE', '/api/templates/t_nope')).body.code, 'NOT_FOUND');
  });

  test('two parallel imports of the same uuid: one stored, one CONFLICT', async () => {
    const egg = (name: string) =>
      JSON.stringify({
        meta: { version: 'PTDL_v2' },
        uuid: '5b0f2a8e-0000-4000-8000-00000000race',
        name,
        author: 'a@x.test',
        docker_images: { main: 'ctrl-alt-play/busybox:latest' },
        startup: 'sh',
        config: { files: '{}', startup: '{}', logs: '{}', stop: '^C' },
        scripts: { installation: { script: '', container: '', entrypoint: 'bash' } },
        variables: [],
      });
    const rs = await Promise.all(
      ['one', 'two'].map((n) => panel.api(owner, 'POST', '/api/templates/import', { content: egg(n) })),
    );
    assert.deepEqual(rs.map((r) => r.status).sort(), [201, 409]);
    const stored = rs.find((r) => r.status === 201)?.body.template;
    // a re-import of that uuid updates it only when asked, in place
    const refused = await panel.api(owner, 'POST', '/api/templates/import', { content: egg('three') });
    assert.equal(refused.body.code, 'CONFLICT');
    assert.equal(refused.body.details.id, stored.id);
    const replaced = await panel.api(owner, 'POST', '/api/templates/import?replace=true', {
      content: egg('three'),
    });
    assert.equal(replaced.status, 200);
    assert.equal(replaced.body.template.id, stored.id);
    assert.equal((await panel.api(owner, 'GET', `/api/templates/${stored.id}`)).body.name, 'three');
  });

  test('a template in use cannot be deleted', async () => {
    const node = await panel.createNode(owner);
    const agent = await FakeAgent.start({ panelUrl: panel.url, agentSecret: node.agentSecret });
    try {
      const list = await panel.api(owner, 'GET', '/api/templates');
      const tpl = list.body.find((t: { name: string }) => t.name === 'OpenTTD');
      const s = await panel.api(owner, 'POST', '/api/servers?wait=true', {
        name: 'ttd',
        nodeId: node.id,
        templateId: tpl.id,
      });
      assert.equal(s.status, 201, JSON.stringify(s.body));
      const refused = await panel.api(owner, 'DELETE', `/api/templates/${tpl.id}`);
      assert.equal(refused.status, 409);
      assert.equal(refused.body.code, 'CONFLICT');
      assert.equal((await panel.api(owner, 'DELETE', `/api/servers/${s.body.id}`)).status, 204);
      assert.equal((await panel.api(owner, 'DELETE', `/api/templates/${tpl.id}`)).status, 204);
      assert.equal((await panel.api(owner, 'GET', `/api/templates/${tpl.id}`)).status, 404);
    } finally {
      await agent.close();
    }
  });
});

describe('built-ins stored before player tracking (issue 12 item 2)', () => {
  test('get the players their files declare at the next start; an admin-made change is kept', async () => {
    const panel = await startTestPanel();
    try {
      const t = panel.app.panel.templates;
      const db = panel.app.panel.db;
      const rows = await db.selectFrom('templates').selectAll().where('builtin', '=', 1).execute();
      // as a database from before issue 12 holds them
      for (const r of rows) {
        const { players: _gone, ...old } = JSON.parse(r.template);
        await db
          .updateTable('templates')
          .set({ template: JSON.stringify(old) })
          .where('id', '=', r.id)
          .execute();
      }
      const arena = rows.find((r) => r.name === 'OpenArena')!;
      const custom = { query: 'gamedig:q3a', intervalSeconds: 60 };
      const stored = JSON.parse(
        (await db.selectFrom('templates').selectAll().where('id', '=', arena.id).executeTakeFirstOrThrow())
          .template,
      );
      await db
        .updateTable('templates')
        .set({ template: JSON.stringify({ ...stored, players: custom }) })
        .where('id', '=', arena.id)
        .execute();
      assert.equal(await t.addBuiltinPlayers(), 3);
      const byName = new Map(
        (await Promise.all(rows.map((r) => t.template(r.id)))).map((x) => [x.name, x.players]),
      );
      assert.deepEqual(byName.get('OpenTTD'), {
        query: 'gamedig:openttd',
        intervalSeconds: 30,
        kick: 'kick {id}',
        ban: 'ban {id}',
      });
      assert.deepEqual(byName.get('Teeworlds'), {
        query: 'teeworlds',
        intervalSeconds: 30,
        kick: 'kick {id}',
        ban: 'ban {id}',
      });
      // the admin's query is kept; only the kick command it did not have is added (issue 12)
      assert.deepEqual(byName.get('OpenArena'), { ...custom, kick: ['clientkick {id}', 'kick "{name}"'] });
      assert.equal(await t.addBuiltinPlayers(), 0, 'a second pass changes nothing');
    } finally {
      await panel.stop();
    }
  });
});
