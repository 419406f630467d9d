import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CodedError } from '@cap/protocol';
import { lexical, parseListing, parseStat } from './helper.ts';

describe('volume helper: paths and the listing it prints', () => {
  it('`..` past the volume root is refused before anything runs', () => {
    assert.equal(lexical('/a/../b'), '/v/b');
    assert.equal(lexical('/'), '/v');
    for (const bad of ['../x', '/a/../../x', 'a\0b'])
      assert.throws(
        () => lexical(bad),
        (e) => e instanceof CodedError && e.code === 'PATH_OUTSIDE_ROOT',
      );
  });

  it('parses stat lines and a find listing whose names and link targets hold newlines', () => {
    assert.deepEqual(parseStat('a', 'regular file|12|640|1700000000'), {
      name: 'a',
      type: 'file',
      size: 12,
      mode: '0640',
      modifiedAt: '2023-11-14T22:13:20.000Z',
    });
    const out = Buffer.from(
      [
        'directory|4096|755|1700000000\n/v/d/sub\0',
        'regular empty file|0|644|1700000000\n/v/d/we\nird\0',
        'symbolic link|7|777|1700000000\n/v/d/l\0../x\ny\n/v/d/l\0',
        'fifo|0|644|1700000000\n/v/d/p\0',
      ].join(''),
    );
    const e = parseListing(out, '/v/d');
    assert.deepEqual(
      e.map((x) => [x.name, x.type, x.target]),
      [
        ['sub', 'directory', undefined],
        ['we\nird', 'file', undefined],
        ['l', 'symlink', '../x\ny'],
        ['p', 'other', undefined],
      ],
    );
  });
});
