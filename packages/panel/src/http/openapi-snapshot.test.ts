import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { currentOpenApi, SNAPSHOT } from '../scripts/write-openapi.ts';

test('the committed OpenAPI document matches the routes (regenerate: node packages/panel/src/scripts/write-openapi.ts)', async () => {
  const committed = readFileSync(SNAPSHOT, 'utf8');
  assert.equal(await currentOpenApi(), committed);
});
