import { parseDocument } from 'yaml';
import { CodedError } from '../errors.ts';

/**
 * Parsing an egg file's text into plain data, with a precise location on failure.
 * JSON is strict RFC 8259, as PHP's json_decode (every unparseable egg in the corpus is rejected
 * by both); duplicate keys are accepted, last one wins, as in PHP. YAML is YAML 1.2 (core schema).
 */

export const MAX_TEMPLATE_BYTES = 4 * 1024 * 1024;

export type SourceSyntax = 'json' | 'yaml';

/** 1-based line and column of a UTF-16 offset; CRLF counts as one line break. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: end - lineStart + 1 };
}

export function formatLocation(pos: { line: number; column: number }): string {
  return `line ${pos.line}, column ${pos.column}`;
}

/** The syntax of a file: by extension when there is one, else by its first character. */
export function detectSyntax(text: string, filename?: string): SourceSyntax {
  const lower = filename?.toLowerCase() ?? '';
  if (lower.endsWith('.json')) return 'json';
  if (lower.endsWith('.yaml') || lower.endsWith('.yml')) return 'yaml';
  const first = /\S/.exec(text)?.[0];
  return first === '{' || first === '[' ? 'json' : 'yaml';
}

/** Parse a whole egg file. Throws CodedError TEMPLATE_INVALID with `line L, column C`. */
export function parseSource(text: string, syntax: SourceSyntax, prefix = ''): unknown {
  if (text.length > MAX_TEMPLATE_BYTES) {
    throw new CodedError('TEMPLATE_INVALID', `file is larger than ${MAX_TEMPLATE_BYTES} bytes`, {
      location: prefix || 'file',
    });
  }
  // Editors on Windows save a BOM; it carries no meaning.
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  return syntax === 'json' ? parseJson(body, prefix) : parseYaml(body, prefix);
}

function where(prefix: string, loc: string): string {
  return prefix ? `${prefix} (${loc})` : loc;
}

/** Strict JSON; on failure the offset comes from our own scanner, which always knows it. */
export function parseJson(text: string, prefix = ''): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const found = findJsonError(text);
    const offset = found?.offset ?? Number(/position (\d+)/.exec((e as Error).message)?.[1] ?? 0);
    const message = found?.message ?? (e as Error).message;
    throw new CodedError('TEMPLATE_INVALID', `invalid JSON: ${message}`, {
      location: where(prefix, formatLocation(lineColumn(text, offset))),
      cause: e,
    });
  }
}

function parseYaml(text: string, prefix: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true, version: '1.2' });
  const err = doc.errors[0];
  if (err) {
    const lp = err.linePos?.[0];
    const pos = lp ? { line: lp.line, column: lp.col } : lineColumn(text, err.pos[0]);
    throw new CodedError('TEMPLATE_INVALID', `invalid YAML: ${err.message.split('\n')[0]}`, {
      location: where(prefix, formatLocation(pos)),
    });
  }
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new CodedError('TEMPLATE_INVALID', `invalid YAML: ${(e as Error).message}`, {
      location: prefix || 'line 1, column 1',
    });
  }
}

function isJsonBlank(c: string | undefined): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\r';
}

/**
 * A validating scanner for JSON: where the first error is, and what was expected there.
 * JSON.parse does not always say (e.g. "Unexpected token '}', ..." has no position).
 */
export function findJsonError(text: string): { offset: number; message: string } | null {
  let i = 0;
  const n = text.length;
  class Stop {
    offset: number;
    message: string;
    constructor(offset: number, message: string) {
      this.offset = offset;
      this.message = message;
    }
  }
  const describe = (at: number): string =>
    at >= n
      ? 'end of input'
      : `character ${JSON.stringify(text[at])} (U+${text.charCodeAt(at).toString(16).toUpperCase().padStart(4, '0')})`;
  const fail = (at: number, expected: string): never => {
    throw new Stop(at, `unexpected ${describe(at)}, expected ${expected}`);
  };
  const ws = () => {
    while (i < n && isJsonBlank(text[i])) i++;
  };
  const str = () => {
    i++; // opening quote
    while (true) {
      if (i >= n) fail(i, "a closing '\"'");
      const c = text.charCodeAt(i);
      if (c === 34) {
        i++;
        return;
      }
      if (c < 0x20)
        throw new Stop(i, `control character U+${c.toString(16).padStart(4, '0')} inside a string`);
      if (c === 92) {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6)))
            throw new Stop(i, 'bad \\u escape (needs 4 hex digits)');
          i += 6;
          continue;
        }
        if (e !== undefined && '"\\/bfnrt'.includes(e)) {
          i += 2;
          continue;
        }
        throw new Stop(i, `bad escape \\${e ?? ''} in a string`);
      }
      i++;
    }
  };
  const num = () => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m || m[0] === '' || m[0] === '-') fail(i, 'a value');
    i += m![0].length;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      while (true) {
        ws();
        if (text[i] !== '"') fail(i, 'a property name in double quotes');
        str();
        ws();
        if (text[i] !== ':') fail(i, "':'");
        i++;
        value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return;
        }
        fail(i, "',' or '}'");
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      while (true) {
        value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return;
        }
        fail(i, "',' or ']'");
      }
    }
    if (c === '"') {
      str();
      return;
    }
    for (const word of ['true', 'false', 'null']) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return;
      }
    }
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
      num();
      return;
    }
    fail(i, 'a value');
  };
  try {
    value();
    ws();
    if (i < n) fail(i, 'end of input');
    return null;
  } catch (e) {
    if (e instanceof Stop) return { offset: e.offset, message: e.message };
    if (e instanceof RangeError) return null; // nested too deep for the scanner: use JSON.parse's word
    throw e;
  }
}
