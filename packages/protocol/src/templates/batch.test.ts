import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CodedError } from '../errors.ts';
import { importTemplates, TemplateImportRequest } from './batch.ts';
import type { Template } from './template.ts';

const good = JSON.stringify({
  meta: { version: 'PTDL_v2' },
  name: 'Good',
  author: 'a',
  docker_images: { d: 'local/x:1' },
  startup: './run',
  variables: [
    {
      name: 'X',
      description: '',
      env_variable: 'X',
      default_value: '',
      user_viewable: true,
      user_editable: true,
      rules: 'nullable|frobnicate',
    },
  ],
});
const badVariable = good.replace('"env_variable":"X"', '"env_variable":"X Y"');

describe('importTemplates', () => {
  it('stores only files that import completely, and reports each', async () => {
    const stored: Template[] = [];
    const reports = await importTemplates(
      [
        { file: 'good.json', content: good },
        { file: 'bad.json', content: badVariable },
        { file: 'broken.yaml', content: 'meta: [' },
      ],
      {
        check: false,
        store: async (t) => {
          stored.push(t);
          return `id-${stored.length}`;
        },
      },
    );
    assert.deepEqual(
      stored.map((t) => t.name),
      ['Good'],
    );
    assert.deepEqual(
      reports.map((r) => [r.file, r.ok, r.code, r.location, r.id]),
      [
        ['good.json', true, undefined, undefined, 'id-1'],
        ['bad.json', false, 'TEMPLATE_INVALID', 'variables[0].env_variable', undefined],
        ['broken.yaml', false, 'TEMPLATE_INVALID', 'line 1, column 8', undefined],
      ],
    );
    assert.deepEqual(
      reports[0]?.warnings?.map((w) => w.location),
      ['variables[0].rules'],
    );
  });

  it('stores nothing with check, and reports a store failure by its code', async () => {
    let calls = 0;
    const checked = await importTemplates([{ file: 'g.json', content: good }], {
      check: true,
      store: async () => {
        calls++;
        return 'x';
      },
    });
    assert.equal(calls, 0);
    assert.equal(checked[0]?.ok, true);
    const failed = await importTemplates([{ file: 'g.json', content: good }], {
      check: false,
      store: async () => {
        throw new CodedError('CONFLICT', 'exists');
      },
    });
    assert.equal(failed[0]?.code, 'CONFLICT');
    await assert.rejects(importTemplates([], { check: false }));
  });

  it('validates the API request body', () => {
    assert.equal(TemplateImportRequest.safeParse({ content: good, filename: 'egg.json' }).success, true);
    assert.equal(TemplateImportRequest.safeParse({ content: '' }).success, false);
    assert.equal(TemplateImportRequest.safeParse({}).success, false);
  });
});
