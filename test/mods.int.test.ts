/**
 * The mod manager end to end (issue 13 item 4), with the real Panel, a real Agent and the real
 * Docker Engine, and a local stand-in of Modrinth's API: a Paper-named egg gets `plugins/`
 * (bukkit) inferred; a plugin uploaded through the file API is listed with its plugin.yml,
 * disabled (renamed, nothing deleted) and enabled again, then removed; the catalog is searched
 * with the folder's loaders and the server's game version, a project installed (checked by sha512,
 * streamed to the Agent), a tampered download refused with nothing written; paths outside the
 * declared folders and callers without the file permissions are refused.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { jar } from '../packages/agent/src/mods/mods.fixture.ts';
import {
  type ModrinthStandIn,
  startModrinthStandIn,
} from '../packages/panel/src/modules/mods/modrinth.fixture.ts';
import {
  createAccount,
  grantPermissions,
  type Session,
  type TestPanel,
} from '../packages/panel/test/helpers.ts';
import { type Stack, startStack } from './harness.ts';

const EGG = readFileSync(
  new URL('../packages/web/e2e/fixtures/egg-busybox-paper-mods.json', import.meta.url),
  'utf8',
);

describe('mod manager through the Panel', () => {
  let stack: Stack | undefined;
  let modrinth: ModrinthStandIn | undefined;
  let panel: TestPanel;
  let owner: Session;
  let serverId = '';
  let dir = '';
  let luckPerms: Buffer;

  before(async () => {
    luckPerms = await jar({
      'plugin.yml': 'name: LuckPerms\nversion: 5.4.120\nauthor: Luck\napi-version: "1.13"\n',
    });
    modrinth = await startModrinthStandIn([
      {
        id: 'Vebnzrzj',
        slug: 'luckperms',
        title: 'LuckPerms',
        description: 'A permissions plugin',
        author: 'Luck',
        loaders: ['bukkit', 'paper', 'spigot'],
        versions: [
          {
            id: 'v5420',
            number: '5.4.120',
            gameVersions: ['1.20.4'],
            filename: 'LuckPerms-Bukkit-5.4.120.jar',
            body: luckPerms,
          },
          {
            id: 'v5399',
            number: '5.3.99',
            gameVersions: ['1.19.4'],
            filename: 'LuckPerms-Bukkit-5.3.99.jar',
            body: Buffer.from('old'),
          },
        ],
      },
      {
        id: 'AANobbMI',
        slug: 'sodium',
        title: 'Sodium',
        description: 'A rendering engine',
        author: 'jellysquid3',
        loaders: ['fabric'],
        versions: [
          {
            id: 's1',
            number: '0.5.8',
            gameVersions: ['1.20.4'],
            filename: 'sodium.jar',
            body: Buffer.from('s'),
          },
        ],
      },
      {
        id: 'tampered1',
        slug: 'tampered',
        title: 'Tampered Perms',
        description: 'Its download does not match its hash',
        author: 'mallory',
        loaders: ['paper'],
        versions: [
          {
            id: 't1',
            number: '1.0',
            gameVersions: ['1.20.4'],
            filename: 'Tampered.jar',
            body: Buffer.from('evil'),
            tamper: true,
          },
        ],
      },
    ]);
    stack = await startStack('mods', {
      panelEnv: { PANEL_MODRINTH_URL: modrinth.url, PANEL_OUTBOUND_ALLOW_PRIVATE: '1' },
    });
    ({ panel, owner } = stack);
    const imported = await panel.api(owner, 'POST', '/api/templates/import', {
      content: EGG,
      filename: 'egg-paper.json',
    });
    assert.equal(imported.status, 201, JSON.stringify(imported.body));
    const created = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'mods',
      nodeId: stack.nodeId,
      templateId: imported.body.template.id,
      port: 26000 + Math.floor(Math.random() * 2000),
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    serverId = created.body.id as string;
    dir = path.join(stack.agentDir, 'servers', serverId);
  });
  after(async () => {
    await stack?.stop();
    await modrinth?.close();
  });

  const upload = async (rel: string, body: Buffer) => {
    const g = await panel.api(owner, 'POST', `/api/servers/${serverId}/files/transfers`, {
      direction: 'upload',
      path: rel,
      size: body.length,
    });
    assert.equal(g.status, 201, JSON.stringify(g.body));
    const res = await fetch(`${panel.url}${g.body.url as string}`, {
      method: 'PUT',
      body: new Uint8Array(body),
    });
    assert.equal(res.status, 200, await res.text());
  };
  const mods = async () => {
    const r = await panel.api(owner, 'GET', `/api/servers/${serverId}/mods`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };

  it('the folder is inferred from the egg; an uploaded plugin is listed, disabled, enabled and removed', async () => {
    const empty = await mods();
    assert.deepEqual(empty.folders, [{ path: 'plugins', kind: 'bukkit' }]);
    assert.deepEqual(empty.catalogs, { plugins: 'Modrinth' });
    await upload(
      'plugins/EssentialsX.jar',
      await jar({ 'plugin.yml': 'name: Essentials\nversion: 2.20.1\nauthors: [zenexer]\n' }),
    );
    await upload('plugins/notes.txt', Buffer.from('not a plugin'));
    const listed = await mods();
    assert.equal(listed.total, 1);
    assert.equal(listed.mods[0].path, 'plugins/EssentialsX.jar');
    assert.equal(listed.mods[0].enabled, true);
    assert.equal(listed.mods[0].meta.name, 'Essentials');
    assert.equal(listed.mods[0].meta.version, '2.20.1');

    const off = await panel.api(owner, 'POST', `/api/servers/${serverId}/mods/toggle`, {
      path: 'plugins/EssentialsX.jar',
      enabled: false,
    });
    assert.equal(off.status, 200, JSON.stringify(off.body));
    assert.deepEqual(off.body, { path: 'plugins/EssentialsX.jar.disabled', enabled: false });
    assert.deepEqual((await readdir(path.join(dir, 'plugins'))).sort(), [
      'EssentialsX.jar.disabled',
      'notes.txt',
    ]);
    const whileOff = await mods();
    assert.equal(whileOff.mods[0].enabled, false);
    assert.equal(whileOff.mods[0].meta.version, '2.20.1', 'a disabled plugin still shows what it is');

    const on = await panel.api(owner, 'POST', `/api/servers/${serverId}/mods/toggle`, {
      path: 'plugins/EssentialsX.jar.disabled',
      enabled: true,
    });
    assert.deepEqual(on.body, { path: 'plugins/EssentialsX.jar', enabled: true });
    assert.ok((await readdir(path.join(dir, 'plugins'))).includes('EssentialsX.jar'));

    const activity = await panel.api(owner, 'GET', `/api/servers/${serverId}/activity`);
    assert.equal(activity.status, 200);
    const actions = JSON.stringify(activity.body);
    assert.match(actions, /mod\.toggle/);

    const removed = await panel.api(owner, 'POST', `/api/servers/${serverId}/mods/remove`, {
      path: 'plugins/EssentialsX.jar',
    });
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    assert.deepEqual(await readdir(path.join(dir, 'plugins')), ['notes.txt']);
  });

  it('paths outside the declared folders and callers without the permission are refused', async () => {
    for (const p of [
      'plugins/../server.properties',
      'world/x.jar',
      'plugins',
      'plugins/a/b.jar',
      '../plugins/x.jar',
    ]) {
      const r = await panel.api(owner, 'POST', `/api/servers/${serverId}/mods/toggle`, {
        path: p,
        enabled: false,
      });
      assert.equal(r.status, 400, `${p}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'VALIDATION_FAILED', p);
    }
    const reader = await createAccount(panel, owner, 'mod-reader', 'user');
    await grantPermissions(panel, owner, serverId, reader, ['file.read']);
    assert.equal((await panel.api(reader, 'GET', `/api/servers/${serverId}/mods`)).status, 200);
    for (const [route, body] of [
      ['toggle', { path: 'plugins/notes.txt', enabled: false }],
      ['remove', { path: 'plugins/notes.txt' }],
      ['install', { folder: 'plugins', projectId: 'Vebnzrzj' }],
    ] as const) {
      const r = await panel.api(reader, 'POST', `/api/servers/${serverId}/mods/${route}`, body);
      assert.equal(r.status, 403, `${route}: ${JSON.stringify(r.body)}`);
    }
    const stranger = await createAccount(panel, owner, 'mod-stranger', 'user');
    assert.equal((await panel.api(stranger, 'GET', `/api/servers/${serverId}/mods`)).status, 404);
  });

  it('the catalog is searched for the folder loaders and game version; an install is checked and lands', async () => {
    const found = await panel.api(
      owner,
      'GET',
      `/api/servers/${serverId}/mods/catalog?folder=plugins&query=perms&gameVersion=1.20.4`,
    );
    assert.equal(found.status, 200, JSON.stringify(found.body));
    assert.equal(found.body.catalog, 'Modrinth');
    assert.deepEqual(
      found.body.projects.map((p: { title: string }) => p.title),
      ['LuckPerms', 'Tampered Perms'],
    );
    const search = modrinth?.requests.find((u) => u.pathname === '/v2/search');
    assert.ok(search);
    const facets = JSON.parse(search.searchParams.get('facets') ?? '[]') as string[][];
    assert.ok(facets[0]?.includes('categories:paper'), JSON.stringify(facets));
    assert.deepEqual(facets[1], ['versions:1.20.4']);
    // a fabric-only mod is not offered for a bukkit folder
    const sodium = await panel.api(
      owner,
      'GET',
      `/api/servers/${serverId}/mods/catalog?folder=plugins&query=sodium`,
    );
    assert.equal(sodium.body.total, 0);

    const installed = await panel.api(owner, 'POST', `/api/servers/${serverId}/mods/install`, {
      folder: 'plugins',
      projectId: 'Vebnzrzj',
      gameVersion: '1.20.4',
    });
    assert.equal(installed.status, 201, JSON.stringify(installed.body));
    assert.equal(installed.body.versionNumber, '5.4.120');
    const onDisk = await readFile(path.join(dir, 'plugins', 'LuckPerms-Bukkit-5.4.120.jar'));
    assert.equal(
      createHash('sha512').update(onDisk).digest('hex'),
      createHash('sha512').update(luckPerms).digest('hex'),
    );
    const listed = await mods();
    const lp = listed.mods.find((m: { file: string }) => m.file === 'LuckPerms-Bukkit-5.4.120.jar');
    assert.equal(lp?.meta?.name, 'LuckPerms');

    const before = (await readdir(path.join(dir, 'plugins'))).sort();
    const tampered = await panel.api(owner, 'POST', `/api/servers/${serverId}/mods/install`, {
      folder: 'plugins',
      projectId: 'tampered1',
    });
    assert.equal(tampered.status, 502, JSON.stringify(tampered.body));
    assert.equal(tampered.body.code, 'UPSTREAM_ERROR');
    assert.deepEqual((await readdir(path.join(dir, 'plugins'))).sort(), before, 'nothing written');
    assert.deepEqual(await readdir(path.join(panel.dataDir, 'tmp')), [], 'no download left behind');

    const noCatalog = await panel.api(owner, 'POST', `/api/servers/${serverId}/mods/install`, {
      folder: 'mods',
      projectId: 'AANobbMI',
    });
    assert.equal(noCatalog.status, 400);
  });
});
