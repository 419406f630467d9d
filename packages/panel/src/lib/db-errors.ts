/** A unique-index violation, in SQLite (node:sqlite) or PostgreSQL (SQLSTATE 23505). */
export function isUniqueViolation(e: unknown): boolean {
  if (!e || typeof e !== 'object') return false;
  const err = e as { code?: unknown; message?: unknown };
  if (err.code === '23505') return true;
  return typeof err.message === 'string' && err.message.includes('UNIQUE constraint failed');
}

/** Connection-level SQLSTATEs and socket errors: the database is away, not the query wrong. */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  '57P01',
  '57P02',
  '57P03',
]);
const UNAVAILABLE_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'connection error and is not queryable',
];

/** The database cannot be reached (PostgreSQL down or restarting): answered 503 DATABASE_UNAVAILABLE. */
export function isDatabaseUnavailable(e: unknown): boolean {
  if (!e || typeof e !== 'object') return false;
  const err = e as { code?: unknown; message?: unknown };
  if (typeof err.code === 'string' && (UNAVAILABLE_CODES.has(err.code) || /^08[0-9A-Z]{3}$/.test(err.code)))
    return true;
  return (
    typeof err.message === 'string' && UNAVAILABLE_MESSAGES.some((m) => (err.message as string).includes(m))
  );
}
