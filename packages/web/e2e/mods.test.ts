/**
 * The Mods tab in real Chromium against a real Panel, a real Agent, the real Docker Engine and a
 * local stand-in of Modrinth's API: a Paper-named egg's server shows the tab; a plugin uploaded
 * from the tab is listed with its plugin.yml name and version, switched off (the file renamed to
 * .disabled on disk) and on again; the catalog is searched for the server's game version and a
 * plugin installed from it appears in the list; the template is updated from a newer egg
 * (preview of the differences, then applied). Screenshots: test-artifacts/screenshots/m*.png.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { RunningAgent } from '@cap/agent';
import { jar } from '@cap/agent/mods/mods.fixture.ts';
import type { RunningPanel } from '@cap/panel';
import { type ModrinthStandIn, startModrinthStandIn } from '@cap/panel/modules/mods/modrinth.fixture.ts';
import type { Page } from 'playwright-core';
import {
  createServer,
  type E2E,
  importEgg,
  openE2E,
  openServer,
  ownerWithNode,
  SHOTS,
  stepper,
} from './harness.ts';

const run = randomBytes(3).toString('hex');
const OWNER = { email: `mowner-${run}@example.test`, password: `pw-${run}-owner-secret` };
const WAIT = 60_000;
const EGG = readFileSync(new URL('./fixtures/egg-busybox-paper-mods.json', import.meta.url), 'utf8');

let e2e: E2E | undefined;
let modrinth: ModrinthStandIn | undefined;
let panel: RunningPanel;
let page: Page;
let agentDir: string;
let agent: RunningAgent | undefined;
let nodeId: string | undefined;
let serverId = '';

const byTestId = (id: string) => page.locator(`[data-testid="${id}"]`);
const row = (file: string) => page.locator(`[data-testid="mod-row"][data-file="${file}"]`);
const shot = (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`) });

before(async () => {
  modrinth = await startModrinthStandIn([
    {
      id: 'Vebnzrzj',
      slug: 'luckperms',
      title: 'LuckPerms',
      description: 'A permissions plugin for Minecraft servers',
      author: 'Luck',
      loaders: ['bukkit', 'paper', 'spigot'],
      versions: [
        {
          id: 'v5420',
          number: '5.4.120',
          gameVersions: ['1.20.4'],
          filename: 'LuckPerms-Bukkit-5.4.120.jar',
          body: await jar({ 'plugin.yml': 'name: LuckPerms\nversion: 5.4.120\nauthor: Luck\n' }),
        },
      ],
    },
  ]);
  e2e = await openE2E(
    'mods',
    { width: 1400, height: 900 },
    {
      PANEL_MODRINTH_URL: modrinth.url,
      PANEL_OUTBOUND_ALLOW_PRIVATE: '1',
    },
  );
  ({ panel, page, agentDir } = e2e);
});

after(async () => {
  await e2e?.close({ agent, nodeId });
  await modrinth?.close();
});

test('the Mods tab: upload, switch off and on, install from the catalog', { timeout: 240_000 }, async (t) => {
  const step = stepper(t, () => page, 'm-');
  const plugins = () => readdir(join(agentDir, 'servers', serverId, 'plugins'));

  await step('an owner, a node, a server from a Paper-named egg', async () => {
    ({ nodeId, agent } = await ownerWithNode(e2e, {
      owner: OWNER,
      nodeName: `m-node-${run}`,
      timeout: WAIT,
    }));
    const templateId = await importEgg(page, EGG, 'egg-paper.json');
    serverId = await createServer(page, {
      name: `m-server-${run}`,
      nodeId,
      templateId,
      port: 27000 + Math.floor(Math.random() * 2000),
    });
    await openServer(panel, page, serverId, WAIT);
    await byTestId('tab-mods').click();
    await byTestId('mods-tab').waitFor({ timeout: WAIT });
    await byTestId('state-empty').waitFor({ timeout: WAIT });
  });

  await step('a plugin uploaded from the tab is listed with its name and version', async () => {
    await page.locator('[data-testid="mods-tab"] input[type="file"]').setInputFiles({
      name: 'EssentialsX-2.20.1.jar',
      mimeType: 'application/java-archive',
      buffer: await jar({ 'plugin.yml': 'name: Essentials\nversion: 2.20.1\nauthors: [zenexer, md_5]\n' }),
    });
    await row('EssentialsX-2.20.1.jar').waitFor({ timeout: WAIT });
    assert.equal(
      (await row('EssentialsX-2.20.1.jar').locator('[data-testid="mod-name"]').textContent())?.trim(),
      'Essentials',
    );
    assert.equal(
      (await row('EssentialsX-2.20.1.jar').locator('[data-testid="mod-version"]').textContent())?.trim(),
      '2.20.1',
    );
    assert.match((await row('EssentialsX-2.20.1.jar').textContent()) ?? '', /by zenexer, md_5/);
    await shot('m1-mod-listed');
  });

  await step('switched off: renamed to .disabled on disk; on again', async () => {
    await row('EssentialsX-2.20.1.jar').locator('[data-testid="mod-toggle"]').click({ force: true });
    await page
      .locator('[data-testid="mod-row"][data-file="EssentialsX-2.20.1.jar.disabled"][data-enabled="false"]')
      .waitFor({ timeout: WAIT });
    assert.deepEqual(await plugins(), ['EssentialsX-2.20.1.jar.disabled']);
    await shot('m2-mod-disabled');
    await row('EssentialsX-2.20.1.jar.disabled').locator('[data-testid="mod-toggle"]').click({ force: true });
    await page
      .locator('[data-testid="mod-row"][data-file="EssentialsX-2.20.1.jar"][data-enabled="true"]')
      .waitFor({ timeout: WAIT });
    assert.deepEqual(await plugins(), ['EssentialsX-2.20.1.jar']);
  });

  await step('the catalog is searched for the game version; an install lands in the list', async () => {
    assert.equal(
      await byTestId('catalog-version').inputValue(),
      '1.20.4',
      'prefilled from MINECRAFT_VERSION',
    );
    await byTestId('catalog-query').fill('perm');
    await byTestId('catalog-search').click();
    await byTestId('catalog-result').first().waitFor({ timeout: WAIT });
    assert.match((await byTestId('catalog-results').textContent()) ?? '', /LuckPerms/);
    await byTestId('catalog-install').first().click();
    await byTestId('catalog-installed').waitFor({ timeout: WAIT });
    await row('LuckPerms-Bukkit-5.4.120.jar').waitFor({ timeout: WAIT });
    assert.equal(
      (
        await row('LuckPerms-Bukkit-5.4.120.jar').locator('[data-testid="mod-version"]').textContent()
      )?.trim(),
      '5.4.120',
    );
    assert.deepEqual((await plugins()).sort(), ['EssentialsX-2.20.1.jar', 'LuckPerms-Bukkit-5.4.120.jar']);
    await shot('m3-catalog-installed');
  });

  await step('removed from the tab', async () => {
    await row('EssentialsX-2.20.1.jar').locator('[data-testid="mod-remove"]').click();
    await row('EssentialsX-2.20.1.jar').waitFor({ state: 'detached', timeout: WAIT });
    assert.deepEqual(await plugins(), ['LuckPerms-Bukkit-5.4.120.jar']);
  });

  await step(
    "the template is updated from a newer egg: the preview, then applied; the server's page still works",
    async () => {
      const server = await page.evaluate(async (id) => (await fetch(`/api/servers/${id}`)).json(), serverId);
      await page.goto(`${panel.url}/templates/${server.templateId}`);
      await byTestId('page-template-detail').waitFor({ timeout: WAIT });
      const next = JSON.parse(EGG) as { description: string; variables: { env_variable: string }[] };
      next.description = 'Version two of the test egg';
      next.variables.push({
        name: 'Difficulty',
        description: '',
        env_variable: 'DIFFICULTY',
        default_value: 'normal',
        user_viewable: true,
        user_editable: true,
        rules: 'required|string',
        field_type: 'text',
      } as never);
      await byTestId('template-update').click();
      await page.locator('.mantine-Modal-content input[type="file"]').setInputFiles({
        name: 'egg-paper-v2.json',
        mimeType: 'application/json',
        buffer: Buffer.from(JSON.stringify(next)),
      });
      await byTestId('template-update-changes').waitFor({ timeout: WAIT });
      const changes = (await byTestId('template-update-changes').textContent()) ?? '';
      assert.match(changes, /description/);
      assert.match(changes, /variables\.DIFFICULTY/);
      await shot('m4-template-update-preview');
      await byTestId('template-update-apply').click();
      await byTestId('template-update-applied').waitFor({ timeout: WAIT });
      await page.keyboard.press('Escape');
      await page.getByText('Version two of the test egg').first().waitFor({ timeout: WAIT });
      assert.deepEqual(e2e?.pageErrors, []);
    },
  );
});
