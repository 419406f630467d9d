/** Kick/ban command templates filled in safely (issue 12). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PlayerCommand, playerCommandNeedsId, renderPlayerCommand } from './player-commands.ts';

describe('renderPlayerCommand', () => {
  it('prefers the id when the list gave one, else the name', () => {
    const q3 = ['clientkick {id}', 'kick {name}'];
    assert.equal(renderPlayerCommand('kick', q3, { id: '2', name: 'Sarge' }), 'clientkick 2');
    assert.equal(renderPlayerCommand('kick', q3, { name: 'Sarge' }), 'kick Sarge');
    assert.equal(renderPlayerCommand('ban', 'banid 0 {id}', { id: '7', name: 'x' }), 'banid 0 7');
    assert.equal(renderPlayerCommand('ban', 'ban {name} {reason}', { name: 'Steve' }), 'ban Steve');
    assert.equal(
      renderPlayerCommand('ban', 'ban {name} {reason}', { name: 'Steve', reason: 'grief' }),
      'ban Steve grief',
    );
    assert.equal(
      renderPlayerCommand('kick', 'kick "{name}"', { name: 'Bob the Builder' }),
      'kick "Bob the Builder"',
    );
  });
  it('refuses names the game cannot quote, with PLAYER_NAME_UNSAFE', () => {
    for (const [tpl, name] of [
      ['kick {name}', 'a\nquit'],
      ['kick {name}', 'a;quit'],
      ['kick "{name}"', 'a";quit;"'],
      ['kick "{name}"', 'a\\'],
      ['kick "{name}"', 'a\u0000b'],
      ['kick "{name}"', 'a\rb'],
      ['kick "{name}"', 'a\u2028b'],
      ['kick {name}', 'two words'],
      ['kick {name}', "it's"],
      ['kick "{name}"', '   '],
    ] as const)
      assert.throws(
        () => renderPlayerCommand('kick', tpl, { name }),
        { code: 'PLAYER_NAME_UNSAFE' },
        JSON.stringify(name),
      );
    assert.throws(() => renderPlayerCommand('ban', 'ban {name} {reason}', { name: 'a', reason: 'x;quit' }), {
      code: 'PLAYER_NAME_UNSAFE',
    });
  });
  it('no template, or an id-only one without an id: PLAYER_ACTION_UNSUPPORTED', () => {
    assert.throws(() => renderPlayerCommand('ban', undefined, { name: 'a' }), {
      code: 'PLAYER_ACTION_UNSUPPORTED',
    });
    assert.throws(() => renderPlayerCommand('kick', 'kick {id}', { name: 'a' }), {
      code: 'PLAYER_ACTION_UNSUPPORTED',
    });
  });
  it('templates are one printable line with known placeholders', () => {
    assert.ok(PlayerCommand.safeParse(['clientkick {id}', 'kick {name}']).success);
    for (const bad of [
      'kick {nick}',
      'kick\n{name}',
      'say hi',
      '',
      ['x {id}', 'y {id}', 'z {id}', 'w {id}', 'v {id}'],
    ])
      assert.equal(PlayerCommand.safeParse(bad).success, false, JSON.stringify(bad));
  });

  it('needs an id only when every template does (the UI hides Kick for players listed without one)', () => {
    assert.equal(playerCommandNeedsId('kick {id}'), true);
    assert.equal(playerCommandNeedsId(['clientkick {id}', 'kick "{name}"']), false);
    assert.equal(playerCommandNeedsId('ban {name}'), false);
    assert.equal(playerCommandNeedsId(undefined), false);
  });
});
