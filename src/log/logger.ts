import { pino, type DestinationStream } from 'pino';
import { safeError } from './safe-error.ts';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
export type Logger = Readonly<{
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A line written at `info` whatever LOG_LEVEL says, except `silent`: that the server is listening. */
  notice(msg: string, fields?: Record<string, unknown>): void;
  /** A logger whose every line carries `bindings` (e.g. the request id). */
  child(bindings: Record<string, unknown>): Logger;
}>;

/**
 * Field names that could carry a secret. Callers never pass bodies, headers or cookies (the
 * rule); this is the net under it: such a field, at the top level or one level down, is
 * written as "[redacted]".
 */
const SECRET_FIELDS = [
  'password',
  'secret',
  'client_secret',
  'token',
  'access_token',
  'refresh_token',
  'id_token',
  'code',
  'authorization',
  'cookie',
  'cookies',
  'headers',
  'body',
  'totp',
  'recovery_code',
  'private_jwk',
  'kek',
];

function wrap(p: pino.Logger): Logger {
  const at =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (msg: string, fields: Record<string, unknown> = {}) =>
      p[level](fields, msg);
  return Object.freeze({
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    notice: (msg: string, fields: Record<string, unknown> = {}) => {
      if (p.level !== 'silent') p.child({}, { level: 'info' }).info(fields, msg);
    },
    child: (bindings: Record<string, unknown>) => wrap(p.child(bindings)),
  });
}

/**
 * Structured JSON logs (pino), one object a line on stdout: `level` and `time` (ISO) first,
 * then `pid`, the fields, and `msg`. `write` replaces stdout (tests).
 */
export function createLogger(level: LogLevel, write?: (line: string) => void): Logger {
  const destination: DestinationStream | undefined = write ? { write } : undefined;
  const options: pino.LoggerOptions = {
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    // `err` fields go through safeError: a database error is logged by its code and SQL, never
    // with the values its driver put in the message
    serializers: { err: (error: unknown) => safeError(error, { withStack: true }) },
    redact: { paths: [...SECRET_FIELDS, ...SECRET_FIELDS.map((name) => `*.${name}`)], censor: '[redacted]' },
  };
  return wrap(destination ? pino(options, destination) : pino(options));
}
