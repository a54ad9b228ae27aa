/** Which integrity rule a failed statement broke, on SQLite or PostgreSQL (else undefined). */
export function violatedConstraint(error: unknown): 'unique' | 'foreign_key' | undefined {
  const { code, message } = error as { code?: unknown; message?: unknown };
  const text = typeof message === 'string' ? message : '';
  if (code === '23505' || text.includes('UNIQUE constraint failed')) return 'unique';
  if (code === '23503' || text.includes('FOREIGN KEY constraint failed')) return 'foreign_key';
  return undefined;
}
