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

const REDACTED = '[redacted]';

/**
 * Fields whose value is a secret, by what the name says the value is: passwords, client secrets,
 * token values (`token`, `access_token`, `id_token_hint`…, but not `token_type` or
 * `token_format`), authorization headers, cookies, TOTP secrets and codes, recovery and
 * enrolment codes, seeds, private keys and the KEK. A short common name such as `code` (an exit
 * code, an error code) is not among them: see OAUTH_PARAMETERS.
 */
const SECRET_FIELD =
  /^(?:authorization|proxy-authorization|cookies?|set-cookie|kek|totp|seed)$|password|secret|(?:^|_)token(?:_hint)?$|private|recovery_codes?$|enrolment_code|client_assertion|code_verifier|_seed$|^totp_/i;

/**
 * Where OAuth request parameters travel (a logged form body, query or parameter object): there
 * `code` is an authorization code, and a secret.
 */
const OAUTH_PARAMETERS = /^(?:body|form|query|params|parameters|search)$/i;

/** `name=value` pairs in a URL query or form body whose value is a secret. */
const SECRET_PARAMETER =
  /(^|[?&;\s])(code|client_secret|client_assertion|code_verifier|access_token|refresh_token|id_token|id_token_hint|token|password|enrolment_code|recovery_code|logout_hint)=([^&#\s"']*)/gi;

/** `"name": "value"` pairs in a logged JSON text whose value is a secret. */
const SECRET_JSON_MEMBER =
  /("(?:code|client_secret|client_assertion|code_verifier|access_token|refresh_token|id_token|token|password|enrolment_code|recovery_code)"\s*:\s*)"(?:[^"\\]|\\.)*"/gi;

/** A text with the values of secret query, form or JSON parameters replaced. */
export function redactParameters(text: string): string {
  return text
    .replace(SECRET_PARAMETER, (_, before: string, name: string) => `${before}${name}=${REDACTED}`)
    .replace(SECRET_JSON_MEMBER, `$1"${REDACTED}"`);
}

const MAX_DEPTH = 4;

function redactValue(key: string, value: unknown, inParameters: boolean, depth: number): unknown {
  if (SECRET_FIELD.test(key) || (inParameters && key.toLowerCase() === 'code')) return value === undefined ? value : REDACTED;
  if (typeof value === 'string') return redactParameters(value);
  if (value === null || typeof value !== 'object' || value instanceof Error) return value;
  if (depth >= MAX_DEPTH) return REDACTED;
  const nested = inParameters || OAUTH_PARAMETERS.test(key);
  if (Array.isArray(value)) return value.map((item: unknown) => redactValue('', item, nested, depth + 1));
  if (value instanceof URLSearchParams || value instanceof URL) return redactParameters(value.toString());
  if (Buffer.isBuffer(value)) return REDACTED;
  return redactFields(value as Record<string, unknown>, nested, depth + 1);
}

function redactFields(fields: Record<string, unknown>, inParameters = false, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields))
    // `err` is left whole for its serializer (safeError), whose output is redacted in turn: an
    // error from another realm (a native driver's, a test VM's) is no `instanceof Error` here
    out[key] = key === 'err' ? value : redactValue(key, value, inParameters, depth);
  return out;
}

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
    child: (bindings: Record<string, unknown>) => wrap(p.child(redactFields(bindings))),
  });
}

/**
 * Structured JSON logs (pino), one object a line on stdout: `level` and `time` (ISO) first,
 * then `pid`, the fields, and `msg`. `write` replaces stdout (tests).
 *
 * Callers never pass bodies, headers or cookies (the rule); the net under it redacts by what a
 * value is: a secret-bearing field at any depth (SECRET_FIELD), `code` among OAuth parameters,
 * and secret parameters inside any logged text (a URL's query string, a form body).
 */
export function createLogger(level: LogLevel, write?: (line: string) => void): Logger {
  const destination: DestinationStream | undefined = write ? { write } : undefined;
  const options: pino.LoggerOptions = {
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }), log: (fields) => redactFields(fields) },
    // `err` fields go through safeError: a database error is logged by its code and SQL, never
    // with the values its driver put in the message
    serializers: { err: (error: unknown) => redactFields({ ...safeError(error, { withStack: true }) }) },
  };
  return wrap(destination ? pino(options, destination) : pino(options));
}
