/**
 * What another replica sends over the broker is read as hostile as any socket's input: the size
 * checked before a byte is decoded, strict UTF-8, JSON, and only a plain object taken; its fields
 * read as own properties (never the prototype's: `constructor`, `__proto__`).
 */
export type WireObject = Record<string, unknown>;

const decoder = new TextDecoder('utf-8', { fatal: true });

/** The message's JSON object; null when over `maxBytes`, not UTF-8, not JSON or not an object. */
export function wireObject(data: Uint8Array, maxBytes: number): WireObject | null {
  if (data.byteLength > maxBytes) return null;
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(data));
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  return value as WireObject;
}

/** A field of a message, as an own property only. */
export function own(o: WireObject, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}
