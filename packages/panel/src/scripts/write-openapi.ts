/** Writes packages/panel/openapi.json from the routes (the snapshot test fails on drift). */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { build } from '../app.ts';
import { loadPanelConfig } from '../config/index.ts';

export async function currentOpenApi(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'cap-openapi-'));
  const app = await build(loadPanelConfig({ DATA_DIR: dir, PANEL_URL: 'http://localhost:8080' }), {
    logger: pino({ level: 'silent' }),
  });
  try {
    await app.ready();
    return `${JSON.stringify(app.swagger(), null, 2)}\n`;
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export const SNAPSHOT = new URL('../../openapi.json', import.meta.url).pathname;

if (import.meta.main) {
  writeFileSync(SNAPSHOT, await currentOpenApi());
  process.stdout.write(`wrote ${SNAPSHOT}\n`);
}
