/** A unique-index violation, in SQLite (node:sqlite) or PostgreSQL (SQLSTATE 23505). */
export function isUniqueViolation(e: unknown): boolean {
  if (!e || typeof e !== 'object') return false;
  const err = e as { code?: unknown; message?: unknown };
  if (err.code === '23505') return true;
  return typeof err.message === 'string' && err.message.includes('UNIQUE constraint failed');
}
