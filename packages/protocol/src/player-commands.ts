/**
 * Kick and ban through a server's console (issue 12): the template's command templates
 * (`players.kick` / `players.ban`, e.g. `clientkick {id}`, `kick {name}`, `banid 0 {id}`,
 * `kick "{name}"`) filled in safely. Placeholders: `{id}` (the game's id of the player from its
 * list: digits only), `{name}`, `{reason}`. A name or reason bare in the template (`kick {name}`)
 * must be one word of printable characters with no quote, backslash or `;`; inside quotes
 * (`kick "{name}"`, for a game whose console quotes) spaces are allowed too, still no quote,
 * backslash or `;` (no game here can escape them). Control characters and newlines never pass.
 * Several templates may be given: the first whose placeholders are all known is used, so a
 * template listing `clientkick {id}` before `kick {name}` kicks by id when the list gave one.
 */
import { z } from 'zod';
import { CodedError } from './errors.ts';

export const PLAYER_COMMAND_PLACEHOLDERS = ['id', 'name', 'reason'] as const;

/** One command template: one line, printable, only known placeholders, at least {id} or {name}. */
export const PlayerCommandTemplate = z
  .string()
  .min(1)
  .max(256)
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
  .regex(/^[^\u0000-\u001f\u007f-\u009f]*$/, 'one line of printable characters')
  .refine(
    (t) =>
      [...t.matchAll(/\{([^{}]*)\}/g)].every((m) => m[1] === 'id' || m[1] === 'name' || m[1] === 'reason'),
    {
      message: 'only the placeholders {id}, {name} and {reason}',
    },
  )
  .refine((t) => t.includes('{id}') || t.includes('{name}'), { message: 'needs {id} or {name}' });

/** `players.kick` / `players.ban`: one template, or several tried in order. */
export const PlayerCommand = z.union([PlayerCommandTemplate, z.array(PlayerCommandTemplate).min(1).max(4)]);
export type PlayerCommand = z.infer<typeof PlayerCommand>;

export const PlayerAction = z.enum(['kick', 'ban']);
export type PlayerAction = z.infer<typeof PlayerAction>;

/** Who is kicked or banned: the id the list gave, or the name; an optional reason. */
export const PlayerTarget = z
  .object({
    id: z
      .string()
      .regex(/^\d{1,20}$/)
      .optional(),
    name: z.string().min(1).max(64).optional(),
    reason: z.string().min(1).max(200).optional(),
  })
  .strict()
  .refine((t) => t.id !== undefined || t.name !== undefined, { message: 'give the name or the id' });
export type PlayerTarget = z.infer<typeof PlayerTarget>;

// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const NEVER = /["\\;]/;

function checkValue(kind: 'name' | 'reason', v: string, quoted: boolean): void {
  if (CONTROL.test(v))
    throw new CodedError('PLAYER_NAME_UNSAFE', `the ${kind} holds a control character or a line break`, {
      location: kind,
    });
  if (NEVER.test(v))
    throw new CodedError(
      'PLAYER_NAME_UNSAFE',
      `the ${kind} holds a quote, backslash or ";" the console cannot quote`,
      {
        location: kind,
      },
    );
  if (!quoted && /\s|'/.test(v))
    throw new CodedError(
      'PLAYER_NAME_UNSAFE',
      `the ${kind} holds a space or quote and this game's command does not quote it`,
      { location: kind },
    );
  if (v.trim() === '') throw new CodedError('PLAYER_NAME_UNSAFE', `the ${kind} is blank`, { location: kind });
}

function fill(template: string, t: PlayerTarget): string {
  let out = '';
  let last = 0;
  for (const m of template.matchAll(/\{(id|name|reason)\}/g)) {
    const at = m.index;
    const key = m[1] as 'id' | 'name' | 'reason';
    const quoted = template[at - 1] === '"' && template[at + m[0].length] === '"';
    let value: string;
    if (key === 'id') {
      if (t.id === undefined || !/^\d{1,20}$/.test(t.id))
        throw new CodedError('VALIDATION_FAILED', 'the id is 1 to 20 digits', { location: 'id' });
      value = t.id;
    } else {
      value = (key === 'name' ? t.name : t.reason) ?? '';
      checkValue(key, value, quoted);
    }
    out += template.slice(last, at) + value;
    last = at + m[0].length;
  }
  return out + template.slice(last);
}

/** Whether every template of the command needs the player's id (no name-only fallback). */
export function playerCommandNeedsId(command: PlayerCommand | undefined): boolean {
  const templates = command === undefined ? [] : Array.isArray(command) ? command : [command];
  return templates.length > 0 && templates.every((t) => t.includes('{id}'));
}

/**
 * The console command that does `action` to `target` by the template's `command`; throws
 * PLAYER_ACTION_UNSUPPORTED when the template has none (or none fits what is known of the
 * player: an id-only command and no id), PLAYER_NAME_UNSAFE for a name or reason that cannot be
 * put in the command safely.
 */
export function renderPlayerCommand(
  action: PlayerAction,
  command: PlayerCommand | undefined,
  target: PlayerTarget,
): string {
  const templates = command === undefined ? [] : Array.isArray(command) ? command : [command];
  if (templates.length === 0)
    throw new CodedError('PLAYER_ACTION_UNSUPPORTED', `this server's template declares no ${action} command`);
  const fits = (tpl: string) =>
    (!tpl.includes('{id}') || target.id !== undefined) &&
    (!tpl.includes('{name}') || target.name !== undefined) &&
    (!tpl.includes('{reason}') || target.reason !== undefined);
  // a template without {reason} is fine without a reason; one with it is used only when given
  const chosen = templates.find(fits) ?? templates.find((tpl) => fits(tpl.replace(/\s*\{reason\}/g, '')));
  if (chosen === undefined)
    throw new CodedError(
      'PLAYER_ACTION_UNSUPPORTED',
      `this server's ${action} command needs ${templates.some((t) => t.includes('{id}')) ? "the player's id" : "the player's name"}`,
    );
  const tpl = fits(chosen) ? chosen : chosen.replace(/\s*"?\{reason\}"?/g, '');
  const out = fill(tpl, target).trim();
  if (out.length > 4096) throw new CodedError('VALIDATION_FAILED', 'the command is too long');
  return out;
}
