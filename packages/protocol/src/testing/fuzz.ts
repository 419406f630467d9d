/**
 * A seeded, deterministic generator of hostile wire input, shared by the fuzz suites of the
 * Agent and the Panel. The seed comes from `FUZZ_SEED` (or is drawn) and is printed by the
 * suites, so a failure is reproduced with `FUZZ_SEED=<seed> node --test <file>`.
 *
 * Values that plain JSON cannot carry (1e400, which parses to Infinity; nesting thousands
 * deep) are written as sentinel strings and spliced into the text by `toWire`.
 */

/** Names every plain object inherits: looked up with `in` or `obj[name]` they are "found". */
export const INHERITED_NAMES = [
  'constructor',
  '__proto__',
  'toString',
  'hasOwnProperty',
  'valueOf',
  'isPrototypeOf',
  'propertyIsEnumerable',
  'toLocaleString',
  '__defineGetter__',
  '__lookupGetter__',
] as const;

const RAW = '\u0000raw:';

/** A JSON fragment spliced verbatim into the text by `toWire`. */
export function raw(text: string): string {
  return `${RAW}${text}\u0000`;
}

/** `value` as JSON text, with `raw(...)` fragments spliced in. */
export function toWire(value: unknown): string {
  // a sentinel string serialises as "\u0000raw:…\u0000"; put the fragment in its place
  return JSON.stringify(value).replace(/"\\u0000raw:(.*?)\\u0000"/g, (_m, text: string) =>
    text.replace(/\\"/g, '"'),
  );
}

/** JSON text of `depth` nested arrays or objects. */
export function deep(depth: number, kind: 'array' | 'object' = 'array'): string {
  return kind === 'array'
    ? `${'['.repeat(depth)}${']'.repeat(depth)}`
    : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

export function seedFromEnv(): number {
  const s = process.env.FUZZ_SEED;
  if (s && /^\d+$/.test(s)) return Number(s) >>> 0;
  return (Date.now() ^ (process.pid << 8)) >>> 0;
}

export interface FuzzLimits {
  /** longest string made, in characters (default 64 Ki) */
  maxString: number;
  /** deepest nesting made (default 10 000) */
  maxDepth: number;
}

export class Fuzz {
  readonly seed: number;
  readonly limits: FuzzLimits;
  #state: number;

  constructor(seed: number, limits: Partial<FuzzLimits> = {}) {
    this.seed = seed >>> 0;
    this.#state = this.seed || 1;
    this.limits = { maxString: 64 * 1024, maxDepth: 10_000, ...limits };
  }

  /** mulberry32: a uniform float in [0, 1) */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(max: number): number {
    return Math.floor(this.next() * max);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  name(): string {
    return this.pick(INHERITED_NAMES);
  }

  /** huge, negative, non-finite (as raw JSON) and non-integer numbers */
  number(): number | string {
    return this.pick<number | string>([
      1e308,
      -1e308,
      -1,
      -0.5,
      2 ** 53 + 2,
      -(2 ** 63),
      raw('1e400'),
      raw('-1e400'),
      raw('1e-400'),
      Number.MAX_SAFE_INTEGER,
      0.1,
    ]);
  }

  /** a long string of `bytes` characters (default up to limits.maxString) with awkward characters in it */
  longString(bytes = Math.min(this.limits.maxString, 1024 + this.int(this.limits.maxString))): string {
    const unit = this.pick(['a', '\u00e9', '"\\', '\u0001', '\ud83d\ude00', '%s%n', '../']);
    return unit.repeat(Math.ceil(bytes / unit.length)).slice(0, bytes);
  }

  /** any nasty value */
  value(): unknown {
    switch (this.int(7)) {
      case 0:
        return this.name();
      case 1:
        return this.number();
      case 2:
        return this.longString();
      case 3:
        return raw(deep(1 + this.int(this.limits.maxDepth), this.pick(['array', 'object'] as const)));
      case 4:
        return { [this.name()]: this.value() };
      case 5:
        return [this.number(), this.name()];
      default:
        return this.pick([null, true, false, '', {}, []]);
    }
  }

  /** `base` with one field replaced by a nasty value, or one inherited-name field added */
  mutate(base: Record<string, unknown>): Record<string, unknown> {
    const keys = Object.keys(base);
    const out: Record<string, unknown> = { ...base };
    if (keys.length > 0 && this.next() < 0.7) out[this.pick(keys)] = this.value();
    else Object.defineProperty(out, this.name(), { value: this.value(), enumerable: true });
    return out;
  }
}
