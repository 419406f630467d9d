import assert from 'node:assert/strict';
import { mkdir, mkdtemp, open, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ListModsPayload } from '@cap/protocol';
import { peMeta } from './metadata.ts';
import { dllWithVersion, jar, versionInfo } from './mods.fixture.ts';
import { countsAsMod, listMods } from './mods.ts';

let root: string;
let outside: string;

before(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'cap-mods-'));
  outside = await mkdtemp(path.join(tmpdir(), 'cap-mods-out-'));
  await mkdir(path.join(root, 'plugins'));
  await mkdir(path.join(root, 'mods'));
  await mkdir(path.join(root, 'BepInEx/plugins/MoreSlots'), { recursive: true });
  await writeFile(
    path.join(root, 'plugins/Essentials.jar'),
    await jar({
      'plugin.yml':
        'name: Essentials\nversion: 2.20.1\nauthors: [zenexer, md_5]\napi-version: "1.20"\ndescription: Provides an essential, core set of commands.\n',
      'com/x/Main.class': Buffer.alloc(64),
    }),
  );
  await writeFile(
    path.join(root, 'plugins/WorldEdit.jar.disabled'),
    await jar({ 'plugin.yml': 'name: WorldEdit\nversion: 7.3.0\nauthor: sk89q\n' }),
  );
  await writeFile(path.join(root, 'plugins/readme.txt'), 'not a mod');
  await writeFile(path.join(root, 'plugins/broken.jar'), Buffer.from('PK\x03\x04 but not really a zip'));
  await writeFile(
    path.join(root, 'plugins/huge-meta.jar'),
    await jar({ 'plugin.yml': `name: Huge\ndescription: ${'x'.repeat(300 * 1024)}\n` }),
  );
  await writeFile(
    path.join(root, 'plugins/proto.jar'),
    await jar({
      'plugin.yml': 'name: !!js/function "return process.exit()"\n__proto__: { polluted: yes }\n',
    }),
  );
  await writeFile(path.join(outside, 'secret.jar'), await jar({ 'plugin.yml': 'name: Secret\n' }));
  await symlink(path.join(outside, 'secret.jar'), path.join(root, 'plugins/linked.jar'));
  await writeFile(
    path.join(root, 'mods/sodium.jar'),
    await jar({
      'fabric.mod.json': JSON.stringify({
        schemaVersion: 1,
        id: 'sodium',
        version: '0.5.8',
        name: 'Sodium',
        description: 'A rendering engine',
        authors: ['jellysquid3', { name: 'IMS' }],
        depends: { minecraft: '>=1.20.4' },
      }),
    }),
  );
  await writeFile(
    path.join(root, 'mods/jei.jar'),
    await jar({
      'META-INF/mods.toml': [
        'modLoader="javafml"',
        'loaderVersion="[47,)"',
        '[[mods]]',
        'modId="jei"',
        'version="15.2.0.27"',
        'displayName="Just Enough Items"',
        "description='''Item and recipe viewing'''",
        '[[dependencies.jei]]',
        'modId="minecraft"',
        'mandatory=true',
        'versionRange="[1.20.1,1.21)"',
      ].join('\n'),
    }),
  );
  await writeFile(
    path.join(root, 'mods/create.jar'),
    await jar({
      'META-INF/MANIFEST.MF': 'Manifest-Version: 1.0\r\nImplementation-Version: 0.5.1.f\r\n',
      'META-INF/mods.toml':
        '[[mods]]\nmodId="create"\nversion="$' + '{file.jarVersion}"\ndisplayName="Create"\n',
    }),
  );
  const dll = dllWithVersion(
    versionInfo(
      {
        ProductName: 'MoreSlots',
        FileVersion: '1.4.2',
        CompanyName: 'Randy',
        FileDescription: 'More inventory slots',
      },
      [1, 4, 2, 0],
    ),
  );
  await writeFile(path.join(root, 'BepInEx/plugins/Valheim.Plus.dll'), dll);
  await writeFile(path.join(root, 'BepInEx/plugins/MoreSlots/MoreSlots.dll'), dll);
  await writeFile(
    path.join(root, 'BepInEx/plugins/garbage.dll'),
    Buffer.concat([Buffer.from('MZ'), Buffer.alloc(62, 0xff)]),
  );
});
after(async () => {
  await rm(root, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

const page = (folders: unknown, extra: object = {}) => ListModsPayload.parse({ folders, ...extra });

describe('listMods', () => {
  test('Bukkit plugins: plugin.yml read, disabled ones marked, non-jars left out, a symlink never followed', async () => {
    const r = await listMods(root, page([{ path: 'plugins', kind: 'bukkit' }]));
    const byFile = new Map(r.mods.map((m) => [m.file, m]));
    assert.deepEqual(
      [...byFile.keys()],
      ['Essentials.jar', 'WorldEdit.jar.disabled', 'broken.jar', 'huge-meta.jar', 'proto.jar'],
    );
    assert.equal(r.total, 5);
    const ess = byFile.get('Essentials.jar');
    assert.equal(ess?.enabled, true);
    assert.equal(ess?.path, 'plugins/Essentials.jar');
    assert.deepEqual(ess?.meta, {
      source: 'plugin.yml',
      id: 'Essentials',
      name: 'Essentials',
      version: '2.20.1',
      description: 'Provides an essential, core set of commands.',
      authors: ['zenexer', 'md_5'],
      requires: '1.20',
    });
    const we = byFile.get('WorldEdit.jar.disabled');
    assert.equal(we?.enabled, false);
    assert.equal(we?.meta?.version, '7.3.0');
    assert.deepEqual(we?.meta?.authors, ['sk89q']);
    assert.equal(byFile.get('broken.jar')?.meta, null);
    assert.match(byFile.get('broken.jar')?.problem ?? '', /not a jar/);
    assert.match(byFile.get('huge-meta.jar')?.problem ?? '', /too big/);
    // a YAML tag or a __proto__ key is data, never code or a prototype
    assert.equal(({} as { polluted?: unknown }).polluted, undefined);
    assert.equal(byFile.has('linked.jar'), false);
  });

  test('Fabric and Forge metadata', async () => {
    const r = await listMods(root, page([{ path: 'mods', kind: 'forge' }]));
    assert.deepEqual(
      r.mods.map((m) => m.file),
      ['create.jar', 'jei.jar', 'sodium.jar'],
    );
    // Forge's version placeholder is the manifest's Implementation-Version
    assert.deepEqual(r.mods[0]?.meta, {
      source: 'META-INF/mods.toml',
      id: 'create',
      name: 'Create',
      version: '0.5.1.f',
    });
    assert.deepEqual(r.mods[1]?.meta, {
      source: 'META-INF/mods.toml',
      id: 'jei',
      name: 'Just Enough Items',
      version: '15.2.0.27',
      description: 'Item and recipe viewing',
      requires: 'minecraft [1.20.1,1.21)',
    });
    const fab = await listMods(root, page([{ path: 'mods', kind: 'fabric' }]));
    const sodium = fab.mods.find((m) => m.file === 'sodium.jar');
    assert.deepEqual(sodium?.meta, {
      source: 'fabric.mod.json',
      id: 'sodium',
      name: 'Sodium',
      version: '0.5.8',
      description: 'A rendering engine',
      authors: ['jellysquid3', 'IMS'],
      requires: 'minecraft >=1.20.4',
    });
  });

  test('BepInEx: a DLL version resource, a plugin folder, a malformed PE', async () => {
    const r = await listMods(root, page([{ path: 'BepInEx/plugins', kind: 'bepinex' }]));
    const byFile = new Map(r.mods.map((m) => [m.file, m]));
    assert.deepEqual([...byFile.keys()], ['MoreSlots', 'Valheim.Plus.dll', 'garbage.dll']);
    const expected = {
      source: 'version resource',
      name: 'MoreSlots',
      version: '1.4.2',
      description: 'More inventory slots',
      authors: ['Randy'],
    };
    assert.deepEqual(byFile.get('Valheim.Plus.dll')?.meta, expected);
    assert.equal(byFile.get('MoreSlots')?.type, 'directory');
    assert.deepEqual(byFile.get('MoreSlots')?.meta, expected);
    assert.equal(byFile.get('garbage.dll')?.meta, null);
    assert.match(byFile.get('garbage.dll')?.problem ?? '', /PE/);
  });

  test('pages across folders, missing folders reported, paths confined', async () => {
    const folders = [
      { path: 'plugins', kind: 'bukkit' },
      { path: 'mods', kind: 'fabric' },
      { path: 'nothing/here', kind: 'other' },
    ];
    const p1 = await listMods(root, page(folders, { limit: 4 }));
    const p2 = await listMods(root, page(folders, { offset: 4, limit: 4 }));
    assert.equal(p1.total, 8);
    assert.deepEqual(p1.missing, ['nothing/here']);
    assert.deepEqual(
      [...p1.mods, ...p2.mods].map((m) => m.path),
      [
        'plugins/Essentials.jar',
        'plugins/WorldEdit.jar.disabled',
        'plugins/broken.jar',
        'plugins/huge-meta.jar',
        'plugins/proto.jar',
        'mods/create.jar',
        'mods/jei.jar',
        'mods/sodium.jar',
      ],
    );
    assert.equal(ListModsPayload.safeParse({ folders: [{ path: '../etc', kind: 'other' }] }).success, false);
    assert.equal(ListModsPayload.safeParse({ folders: [{ path: '/etc', kind: 'other' }] }).success, false);
    await symlink(outside, path.join(root, 'escape'));
    await assert.rejects(listMods(root, page([{ path: 'escape', kind: 'other' }])), {
      code: 'PATH_OUTSIDE_ROOT',
    });
  });

  test('which entries count as mods', () => {
    assert.equal(countsAsMod('bukkit', 'x.jar', false), true);
    assert.equal(countsAsMod('bukkit', 'x.jar.disabled', false), true);
    assert.equal(countsAsMod('bukkit', 'config', true), false);
    assert.equal(countsAsMod('source', 'sourcemod', true), true);
    assert.equal(countsAsMod('source', 'metamod.vdf', false), true);
    assert.equal(countsAsMod('other', '.hidden', false), false);
  });
});

describe('peMeta against hostile files', () => {
  test('truncated and self-referencing PE files give a problem, never a throw', async () => {
    const good = dllWithVersion(versionInfo({ ProductName: 'A' }, [1, 0, 0, 0]));
    const dir = await mkdtemp(path.join(tmpdir(), 'cap-pe-'));
    try {
      for (const [name, body] of [
        ['truncated', good.subarray(0, 0x210)],
        [
          'bad-lfanew',
          Buffer.concat([good.subarray(0, 0x3c), Buffer.from([0xff, 0xff, 0xff, 0x7f]), good.subarray(0x40)]),
        ],
        [
          'loop',
          (() => {
            const b = Buffer.from(good);
            b.writeUInt32LE(0x80000000, 0x200 + 20); // RT_VERSION points back at the root directory
            return b;
          })(),
        ],
        [
          'huge-length',
          (() => {
            const b = Buffer.from(good);
            b.writeUInt32LE(0x7fffffff, 0x200 + 0x4c);
            return b;
          })(),
        ],
      ] as const) {
        const f = path.join(dir, name);
        await writeFile(f, body);
        const fh = await open(f, 'r');
        try {
          const r = await peMeta(fh, body.length);
          assert.equal(r.meta, null, name);
          assert.ok(r.problem, name);
        } finally {
          await fh.close();
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
