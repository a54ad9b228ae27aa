export type LogLevel = 'info' | 'warn' | 'error' | 'silent';
export type Logger = Readonly<{
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}>;

const RANK: Record<LogLevel, number> = { info: 1, warn: 2, error: 3, silent: 4 };

/**
 * One JSON object a line on stdout. Callers pass facts, never request bodies or headers:
 * secrets (client secrets, passwords, keys, tokens) have no field to travel in.
 */
export function createLogger(level: LogLevel, write: (line: string) => void = (line) => process.stdout.write(line)): Logger {
  const emit = (at: Exclude<LogLevel, 'silent'>) => (msg: string, fields: Record<string, unknown> = {}) => {
    if (RANK[at] < RANK[level]) return;
    write(`${JSON.stringify({ time: new Date().toISOString(), level: at, msg, ...fields })}\n`);
  };
  return Object.freeze({ info: emit('info'), warn: emit('warn'), error: emit('error') });
}
