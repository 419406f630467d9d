import { type ConfigContext, decide } from './placeholders.ts';

/**
 * Line-based rewriters: `file`, `properties` and `ini`. They touch only the lines they set, so
 * comments, blank lines, ordering and line endings of everything else stay as they were.
 */

function splitLines(content: string): { lines: string[]; eol: string; finalEol: boolean } {
  const eol = content.includes('\r\n') ? '\r\n' : '\n';
  const finalEol = content.endsWith('\n');
  const body = finalEol ? content.slice(0, content.endsWith('\r\n') ? -2 : -1) : content;
  return { lines: body === '' && !finalEol ? [] : body.split(/\r?\n/), eol, finalEol };
}

function joinLines(lines: string[], eol: string, finalEol: boolean): string {
  if (lines.length === 0) return '';
  return lines.join(eol) + (finalEol ? eol : '');
}

function scalar(v: string | number | boolean): string {
  return typeof v === 'string' ? v : String(v);
}

/**
 * `file`: a line starting with the key (after its indentation) is replaced by the value, as Wings'
 * text parser does. An if-value map compares the rest of the line after the key.
 */
export function rewriteFile(content: string, find: Record<string, unknown>, ctx: ConfigContext): string {
  const { lines, eol, finalEol } = splitLines(content);
  const out = lines.map((line) => {
    let t = line;
    for (const [match, spec] of Object.entries(find)) {
      const indent = /^[ \t]*/.exec(t)?.[0] ?? '';
      const body = t.slice(indent.length);
      if (match === '' || !body.startsWith(match)) continue;
      const d = decide(spec, body.slice(match.length).trim(), ctx);
      if (d.set) t = indent + scalar(d.value);
    }
    return t;
  });
  return joinLines(out, eol, finalEol);
}

// ---------------------------------------------------------------------------------------------
// properties (java.util.Properties syntax)

interface PropEntry {
  /** first and last physical line of the logical line (continuations with a trailing `\`) */
  first: number;
  last: number;
  indent: string;
  rawKey: string;
  key: string;
  sep: string;
  value: string;
}

function unescapeProp(s: string): string {
  return s.replace(/\\(u[0-9a-fA-F]{4}|.)/g, (_m, c: string) => {
    if (c.length === 5) return String.fromCharCode(Number.parseInt(c.slice(1), 16));
    return { t: '\t', n: '\n', r: '\r', f: '\f' }[c] ?? c;
  });
}

function escapePropValue(s: string): string {
  return s
    .replace(/\\/g, '\\\\')
    .replace(/\n/g, '\\n')
    .replace(/\r/g, '\\r')
    .replace(/^[ \t]/, (c) => `\\${c}`);
}

function escapePropKey(s: string): string {
  return escapePropValue(s).replace(/([=: \t#!])/g, '\\$1');
}

function propEntries(lines: string[]): PropEntry[] {
  const entries: PropEntry[] = [];
  for (let i = 0; i < lines.length; i++) {
    const first = i;
    let logical = lines[i]!;
    const trimmed = logical.trimStart();
    if (trimmed === '' || trimmed.startsWith('#') || trimmed.startsWith('!')) continue;
    // an odd number of trailing backslashes continues the line
    while (/(^|[^\\])(\\\\)*\\$/.test(logical) && i + 1 < lines.length) {
      i++;
      logical = logical.slice(0, -1) + lines[i]!.trimStart();
    }
    const m = /^([ \t\f]*)((?:\\.|[^=:\s\\])+)([ \t\f]*[=:]?[ \t\f]*)(.*)$/s.exec(logical);
    if (!m) continue;
    entries.push({
      first,
      last: i,
      indent: m[1]!,
      rawKey: m[2]!,
      key: unescapeProp(m[2]!),
      sep: m[3]!,
      value: unescapeProp(m[4]!),
    });
  }
  return entries;
}

export function rewriteProperties(
  content: string,
  find: Record<string, unknown>,
  ctx: ConfigContext,
): string {
  const { lines, eol, finalEol } = splitLines(content);
  for (const [key, spec] of Object.entries(find)) {
    const entries = propEntries(lines).filter((e) => e.key === key);
    if (entries.length === 0) {
      const d = decide(spec, undefined, ctx);
      if (d.set) lines.push(`${escapePropKey(key)}=${escapePropValue(scalar(d.value))}`);
      continue;
    }
    // bottom-up, so earlier line numbers stay valid when continuations collapse
    for (const e of entries.reverse()) {
      const d = decide(spec, e.value, ctx);
      if (!d.set) continue;
      const sepText = e.sep === '' ? '=' : e.sep;
      lines.splice(
        e.first,
        e.last - e.first + 1,
        `${e.indent}${e.rawKey}${sepText}${escapePropValue(scalar(d.value))}`,
      );
    }
  }
  return joinLines(lines, eol, finalEol || content === '');
}

// ---------------------------------------------------------------------------------------------
// ini

/** `[Section Name].Key` (the section may hold dots), `Section.Key`, or a bare `Key` (no section). */
export function splitIniKey(match: string): { section: string; key: string } {
  if (match.startsWith('[')) {
    const close = match.indexOf('].');
    if (close > 0) return { section: match.slice(1, close), key: match.slice(close + 2) };
  }
  const dot = match.indexOf('.');
  if (dot < 0) return { section: '', key: match };
  return { section: match.slice(0, dot), key: match.slice(dot + 1) };
}

const SECTION = /^\s*\[(.*)\]\s*$/;
const INI_KEY = /^(\s*)([^=;#\s[][^=]*?)(\s*=[ \t]*)(.*)$/;

function sectionRanges(lines: string[]): { name: string; header: number; end: number }[] {
  const ranges: { name: string; header: number; end: number }[] = [
    { name: '', header: -1, end: lines.length },
  ];
  lines.forEach((line, i) => {
    const m = SECTION.exec(line);
    if (!m) return;
    ranges[ranges.length - 1]!.end = i;
    ranges.push({ name: m[1]!, header: i, end: lines.length });
  });
  return ranges;
}

export function rewriteIni(content: string, find: Record<string, unknown>, ctx: ConfigContext): string {
  const { lines, eol, finalEol } = splitLines(content);
  const style = lines
    .map((l) => INI_KEY.exec(l)?.[3])
    .find((s) => s !== undefined)
    ?.includes(' ')
    ? ' = '
    : '=';
  for (const [match, spec] of Object.entries(find)) {
    const { section, key } = splitIniKey(match);
    const ranges = sectionRanges(lines);
    let range =
      ranges.find((r) => r.name === section) ??
      ranges.find((r) => r.name.toLowerCase() === section.toLowerCase());
    let done = false;
    if (range) {
      for (let i = range.header + 1; i < range.end; i++) {
        const m = INI_KEY.exec(lines[i]!);
        if (!m || m[2]!.trim() !== key) continue;
        done = true;
        const d = decide(spec, m[4]!.trim(), ctx);
        if (d.set) lines[i] = `${m[1]}${m[2]}${m[3]}${scalar(d.value)}`;
      }
      if (done) continue;
    }
    const d = decide(spec, undefined, ctx);
    if (!d.set) continue;
    const line = `${key}${style}${scalar(d.value)}`;
    if (!range) {
      if (section === '') {
        lines.unshift(line);
        continue;
      }
      if (lines.length > 0 && lines[lines.length - 1]!.trim() !== '') lines.push('');
      lines.push(`[${section}]`);
      range = { name: section, header: lines.length - 1, end: lines.length };
    }
    // after the section's last non-blank line
    let at = range.end;
    while (at - 1 > range.header && lines[at - 1]!.trim() === '') at--;
    lines.splice(at, 0, line);
  }
  return joinLines(lines, eol, finalEol || content === '');
}
