/**
 * Hidden template variables (user_viewable: false) are written by games into config files and
 * console lines; for those who may not see them (spectators) such values are replaced. Only values
 * of at least MIN_SECRET_CHARS characters: redacting "1" or "on" would blank ordinary text.
 */
export const HIDDEN_MARK = '[hidden]';
export const MIN_SECRET_CHARS = 4;

/** The values to hide, longest first (so a value containing another is replaced whole). */
export function secretValues(values: Iterable<string>): string[] {
  const out = new Set<string>();
  for (const v of values) if (v.length >= MIN_SECRET_CHARS) out.add(v);
  return [...out].sort((a, b) => b.length - a.length);
}

export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (out.includes(s)) out = out.split(s).join(HIDDEN_MARK);
  return out;
}
