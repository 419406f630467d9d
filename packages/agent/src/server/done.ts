/** "Done" detection: a console line tells us the game is ready. */

// CSI/OSC escape sequences, so colourised output still matches
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching terminal escapes is the point
const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g;

export function stripAnsi(s: string): string {
  return s.replace(ANSI, '');
}

export type DoneMatcher = (line: string) => boolean;

/** A substring, `regex:<expr>`, or a list where any item matches. Undefined/empty → null (no pattern). */
export function doneMatcher(done: string | readonly string[] | undefined): DoneMatcher | null {
  const items = (typeof done === 'string' ? [done] : (done ?? [])).filter((s) => s.length > 0);
  if (items.length === 0) return null;
  const tests = items.map((item): DoneMatcher => {
    if (item.startsWith('regex:')) {
      let re: RegExp;
      try {
        re = new RegExp(item.slice('regex:'.length));
      } catch {
        const literal = item;
        return (line) => line.includes(literal);
      }
      return (line) => re.test(line);
    }
    return (line) => line.includes(item);
  });
  return (line) => {
    const clean = stripAnsi(line);
    return tests.some((t) => t(clean));
  };
}
