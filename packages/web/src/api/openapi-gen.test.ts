/**
 * The web's REST types (openapi.gen.ts) are what openapi-typescript makes of the Panel's committed
 * OpenAPI document, so a route change reaches the web: the Panel's snapshot test fails until
 * openapi.json is rewritten, this one until openapi.gen.ts is, and tsc then shows the web code
 * the change breaks. Regenerate: `npm run gen:api -w packages/web`.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { GENERATED, generateApiTypes, OPENAPI_DOC } from '../../scripts/gen-api.ts';

test('openapi.gen.ts is what the committed openapi.json generates', async () => {
  const committed = readFileSync(GENERATED, 'utf8');
  assert.equal(
    await generateApiTypes(),
    committed,
    'packages/web/src/api/openapi.gen.ts is stale: run `npm run gen:api -w packages/web`',
  );
});

test('a response field the Panel drops changes the generated types (the check can fail)', async () => {
  const doc = JSON.parse(readFileSync(OPENAPI_DOC, 'utf8'));
  const server = doc.paths['/api/servers/{id}'].get.responses['200'].content['application/json'].schema;
  assert.equal(server.properties.nodeOnline?.type, 'boolean');
  delete server.properties.nodeOnline;
  server.required = server.required.filter((k: string) => k !== 'nodeOnline');
  const changed = await generateApiTypes(JSON.stringify(doc));
  assert.notEqual(changed, readFileSync(GENERATED, 'utf8'));
});
