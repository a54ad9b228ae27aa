/**
 * What may be said about an error outside the process (logs, /readyz, CLI output). Database
 * drivers put bound values and row contents in their messages (PostgreSQL: `invalid input syntax
 * for type bigint: "…"`, a key in `detail`); knex prefixes the SQL. A database error is therefore
 * reduced to its engine code, and the SQL (with `?` placeholders: knex runs with
 * `compileSqlOnError: false`) is kept only for the log.
 */
export type SafeError = Readonly<{ type: string; message: string; code?: string; sql?: string; stack?: string }>;

/** What the shape check below vouches for: a message; the rest only if present. */
type ErrorLike = { message: string; name?: string; stack?: string; code?: unknown; severity?: unknown };

/** Errors by shape, not `instanceof`: native drivers may make them in another realm. */
function isError(value: unknown): value is ErrorLike {
  return typeof value === 'object' && value !== null && typeof (value as ErrorLike).message === 'string';
}

/** sqlite3 codes (`SQLITE_BUSY`) and PostgreSQL SQLSTATEs (5 characters, with a severity). */
function databaseErrorCode(error: unknown): string | undefined {
  if (!isError(error)) return undefined;
  const { code, severity } = error;
  if (typeof code !== 'string') return undefined;
  if (/^SQLITE_[A-Z_]+$/.test(code)) return code;
  if (/^[0-9A-Z]{5}$/.test(code) && typeof severity === 'string') return code;
  return undefined;
}

/** The first line of a stack is the message: keep only the frames. */
function frames(stack: string | undefined): string | undefined {
  return (
    stack
      ?.split('\n')
      .filter((line) => /^\s+at /.test(line))
      .join('\n') || undefined
  );
}

export function safeError(error: unknown, options: { withStack?: boolean } = {}): SafeError {
  const withStack = options.withStack ?? false;
  if (!isError(error)) return { type: typeof error, message: 'a non-Error value was thrown' };
  const code = databaseErrorCode(error);
  if (code !== undefined) {
    // knex writes `<sql> - <driver message>`; the driver's part may hold values, the SQL does not
    const at = error.message.indexOf(' - ');
    const sql =
      at > 0 && /^\s*(select|insert|update|delete|with|create|alter|drop|pragma)\b/i.test(error.message)
        ? error.message.slice(0, at)
        : undefined;
    return {
      type: 'DatabaseError',
      message: `database error ${code}`,
      code,
      ...(typeof sql === 'string' ? { sql: sql.slice(0, 500) } : {}),
      ...(withStack ? { stack: frames(error.stack) } : {}),
    };
  }
  return {
    type: error.name ?? 'Error',
    message: error.message.split('\n')[0].slice(0, 500),
    ...(withStack && error.stack ? { stack: error.stack } : {}),
  };
}
