import { CodedError } from '@cap/protocol';
import { type ConfigContext, decide } from './placeholders.ts';

/**
 * `xml` rewriter. Keys are dotted element paths from the root element
 * (`MyConfigDedicated.SessionSettings.MaxPlayers`), `*` matching any child. The text is edited in
 * place, so the declaration, comments, attributes and formatting of the rest stay byte for byte.
 * It is a small, strict scanner rather than a full XML library: no DTD entities are expanded.
 */

interface XmlElement {
  name: string;
  /** offset of `<` of the start tag */
  start: number;
  /** offset just after the start tag's `>` */
  openEnd: number;
  /** offset of `<` of the end tag (= openEnd when self-closing) */
  closeStart: number;
  selfClosing: boolean;
  children: XmlElement[];
}

function xmlError(text: string, at: number, message: string): never {
  const before = text.slice(0, at);
  const line = before.split('\n').length;
  const column = at - before.lastIndexOf('\n');
  throw new CodedError('CONFIG_INVALID', `not valid XML: ${message} at line ${line}, column ${column}`);
}

/** The element tree with offsets; the returned node is a virtual document holding the root. */
export function scanXml(text: string): XmlElement {
  const doc: XmlElement = {
    name: '#document',
    start: 0,
    openEnd: 0,
    closeStart: text.length,
    selfClosing: false,
    children: [],
  };
  const stack: XmlElement[] = [doc];
  let i = 0;
  const skipTo = (needle: string, from: number): number => {
    const at = text.indexOf(needle, from);
    if (at < 0) xmlError(text, from, `missing "${needle}"`);
    return at + needle.length;
  };
  while (i < text.length) {
    const lt = text.indexOf('<', i);
    if (lt < 0) break;
    if (text.startsWith('<?', lt)) i = skipTo('?>', lt + 2);
    else if (text.startsWith('<!--', lt)) i = skipTo('-->', lt + 4);
    else if (text.startsWith('<![CDATA[', lt)) i = skipTo(']]>', lt + 9);
    else if (text.startsWith('<!', lt)) {
      // DOCTYPE, with an optional [internal subset]
      let j = lt + 2;
      let depth = 0;
      while (j < text.length && !(text[j] === '>' && depth === 0)) {
        if (text[j] === '[') depth++;
        else if (text[j] === ']') depth--;
        j++;
      }
      if (j >= text.length) xmlError(text, lt, 'unterminated declaration');
      i = j + 1;
    } else if (text[lt + 1] === '/') {
      const m = /^<\/([^\s>]+)\s*>/.exec(text.slice(lt, lt + 512));
      if (!m) xmlError(text, lt, 'bad end tag');
      const open = stack.pop();
      if (!open || open === doc || open.name !== m![1]) xmlError(text, lt, `unexpected </${m![1]}>`);
      open!.closeStart = lt;
      i = lt + m![0].length;
    } else {
      const name = /^<([A-Za-z_:][\w:.-]*)/.exec(text.slice(lt, lt + 512))?.[1];
      if (!name) xmlError(text, lt, 'bad start tag');
      // walk the attributes, whose quoted values may hold '>'
      let j = lt + 1 + name!.length;
      let quote = '';
      while (j < text.length) {
        const c = text[j];
        if (quote) {
          if (c === quote) quote = '';
        } else if (c === '"' || c === "'") quote = c;
        else if (c === '>') break;
        j++;
      }
      if (j >= text.length) xmlError(text, lt, 'unterminated start tag');
      const selfClosing = text[j - 1] === '/';
      const el: XmlElement = {
        name: name!,
        start: lt,
        openEnd: j + 1,
        closeStart: j + 1,
        selfClosing,
        children: [],
      };
      stack[stack.length - 1]!.children.push(el);
      if (!selfClosing) stack.push(el);
      i = j + 1;
    }
  }
  if (stack.length > 1)
    xmlError(text, stack[stack.length - 1]!.start, `<${stack[stack.length - 1]!.name}> is never closed`);
  if (doc.children.length !== 1) xmlError(text, 0, 'a document needs exactly one root element');
  return doc;
}

export function escapeXmlText(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function unescapeXml(s: string): string {
  return s
    .replace(/<!\[CDATA\[([\s\S]*?)\]\]>/g, '$1')
    .replace(/&(lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);/g, (_m, e: string) => {
      if (e.startsWith('#x')) return String.fromCodePoint(Number.parseInt(e.slice(2), 16));
      if (e.startsWith('#')) return String.fromCodePoint(Number(e.slice(1)));
      return { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" }[e] ?? '';
    });
}

function lineIndent(text: string, at: number): string {
  const lineStart = text.lastIndexOf('\n', at - 1) + 1;
  return /^[ \t]*/.exec(text.slice(lineStart))?.[0] ?? '';
}

/** One edit to the text: the first element path that needs a change, applied; null when none. */
function editOnce(
  text: string,
  segs: string[],
  spec: unknown,
  ctx: ConfigContext,
  seen: Set<string>,
): string | null {
  const doc = scanXml(text);
  const visit = (el: XmlElement, i: number, id: string): string | null => {
    const seg = segs[i]!;
    const matches = el.children.filter((c) => seg === '*' || c.name === seg);
    const last = i === segs.length - 1;
    if (matches.length === 0) {
      if (seg === '*') return null;
      // create the missing element(s) before the parent's end tag
      const key = `${id}/+${seg}`;
      if (seen.has(key)) return null;
      seen.add(key);
      const d = last ? decide(spec, undefined, ctx) : ({ set: true, value: '' } as const);
      if (!d.set) return null;
      let inner = last ? escapeXmlText(String(d.value)) : '';
      for (let k = segs.length - 1; k > i; k--) inner = `<${segs[k]}>${inner}</${segs[k]}>`;
      const made = `<${seg}>${inner}</${seg}>`;
      if (el.name === '#document') return null;
      const indent = lineIndent(text, el.start);
      const childIndent = el.children[0] ? lineIndent(text, el.children[0].start) : `${indent}  `;
      if (el.selfClosing) {
        const openTag = text.slice(el.start, el.openEnd - 2).trimEnd();
        return `${text.slice(0, el.start)}${openTag}>\n${childIndent}${made}\n${indent}</${el.name}>${text.slice(el.openEnd)}`;
      }
      const before = text.slice(0, el.closeStart);
      const trimmed = before.replace(/[ \t]*$/, '');
      const sep = trimmed.endsWith('\n') ? '' : '\n';
      return `${trimmed}${sep}${childIndent}${made}\n${indent}${text.slice(el.closeStart)}`;
    }
    for (const [n, m] of matches.entries()) {
      const mid = `${id}/${m.name}[${n}]`;
      if (!last) {
        const r = visit(m, i + 1, mid);
        if (r !== null) return r;
        continue;
      }
      if (seen.has(mid)) continue;
      seen.add(mid);
      if (m.children.length > 0) continue; // an element with children is not a value
      const current = m.selfClosing ? '' : unescapeXml(text.slice(m.openEnd, m.closeStart));
      const d = decide(spec, current, ctx);
      if (!d.set) continue;
      const value = escapeXmlText(String(d.value));
      if (m.selfClosing) {
        const openTag = text.slice(m.start, m.openEnd - 2).trimEnd();
        return `${text.slice(0, m.start)}${openTag}>${value}</${m.name}>${text.slice(m.openEnd)}`;
      }
      return text.slice(0, m.openEnd) + value + text.slice(m.closeStart);
    }
    return null;
  };
  return visit(doc, 0, '');
}

export function rewriteXml(content: string, find: Record<string, unknown>, ctx: ConfigContext): string {
  let text = content;
  for (const [match, spec] of Object.entries(find)) {
    const segs = match.split('.').filter((s) => s !== '');
    if (segs.length === 0) continue;
    if (text.trim() === '') text = `<?xml version="1.0" encoding="utf-8"?>\n<${segs[0]}>\n</${segs[0]}>\n`;
    const seen = new Set<string>();
    // re-scan after every edit: offsets move; `seen` makes each element count once
    for (let guard = 0; guard < 10_000; guard++) {
      const next = editOnce(text, segs, spec, ctx, seen);
      if (next === null) break;
      text = next;
    }
  }
  return text;
}
