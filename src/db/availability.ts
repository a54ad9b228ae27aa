import type { Logger } from '../log/logger.ts';
import type { Db } from './knex.ts';

/**
 * PostgreSQL SQLSTATEs that say "the server is not there for now", not "this statement is
 * wrong": class 08 (connection exception), 57P01 admin_shutdown (a fast or immediate stop, a
 * failover), 57P02 crash_shutdown, 57P03 cannot_connect_now (starting up, shutting down, in
 * recovery), 53300 too_many_connections.
 */
const PG_UNAVAILABLE = /^(08[0-9A-Z]{3}|57P0[123]|53300)$/;

/**
 * SQLite: the file is locked past its busy timeout (BUSY, LOCKED), cannot be opened or read
 * (CANTOPEN, IOERR: permissions changed, a disk gone), or the disk is full.
 */
const SQLITE_UNAVAILABLE = new Set(['SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_CANTOPEN', 'SQLITE_IOERR', 'SQLITE_FULL']);

/** Socket errors on the way to the database server. */
const NETWORK_UNAVAILABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
]);

/** node-postgres says these without a code (a socket closed under a client, a connect timeout). */
const PG_CLIENT_MESSAGES = [
  'Connection terminated',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
  'timeout exceeded when trying to connect',
];

/** What a client is told to wait before trying again while the database is away. */
export const RETRY_AFTER_SECONDS = 5;

/** The error_description of every `temporarily_unavailable`. */
export const UNAVAILABLE_DESCRIPTION = 'the service is temporarily unavailable; retry shortly';

/** An error already turned into the outage's answer (src/oidc/temporarily-unavailable.ts): oidc-provider's errors carry their code in `error`. */
export function isUnavailableAnswer(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { error?: unknown }).error === 'temporarily_unavailable';
}

type ErrorShape = { name?: unknown; code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };

/**
 * Whether `error` says the database cannot be reached right now (an outage, a restart, a
 * failover, a locked SQLite file) rather than that a statement or the code is wrong. Such a
 * request is answered 503 with Retry-After; anything else stays a 500. Looks one `cause` and an
 * AggregateError's members deep (Node reports a refused dual-stack connect as one).
 */
export function isDatabaseUnavailable(error: unknown, depth = 0): boolean {
  if (typeof error !== 'object' || error === null || depth > 2) return false;
  const { name, code, message, cause, errors } = error as ErrorShape;
  // tarn's acquire timeout: every connection busy or none can be made (acquireConnectionTimeout)
  if (name === 'KnexTimeoutError') return true;
  if (typeof code === 'string' && (PG_UNAVAILABLE.test(code) || SQLITE_UNAVAILABLE.has(code) || NETWORK_UNAVAILABLE.has(code))) return true;
  if (typeof message === 'string' && PG_CLIENT_MESSAGES.some((text) => message.includes(text))) return true;
  if (Array.isArray(errors) && errors.some((member) => isDatabaseUnavailable(member, depth + 1))) return true;
  return isDatabaseUnavailable(cause, depth + 1);
}

export type Availability = Readonly<{
  /** Records an error of a request; true when it is an outage (then answer 503). */
  failed(error: unknown): boolean;
  /** Whether the last thing seen of the database was an outage. */
  readonly down: boolean;
}>;

/**
 * Follows the database's state from what requests see, for the log: one warning when the
 * database goes away, one line when a statement succeeds again (with how long it was gone and
 * how many requests were turned away), instead of a line per failed request.
 */
export function watchAvailability(db: Db, log: Logger, now: () => number = Date.now): Availability {
  let downSince: number | undefined;
  let refused = 0;
  db.on('query-response', () => {
    if (downSince === undefined) return;
    log.warn('database available again', { unavailable_ms: now() - downSince, requests_refused: refused });
    downSince = undefined;
    refused = 0;
  });
  return {
    failed(error) {
      if (!isDatabaseUnavailable(error)) return false;
      refused += 1;
      if (downSince === undefined) {
        downSince = now();
        log.warn('database unavailable: answering 503 until it is back', { err: error });
      }
      return true;
    },
    get down() {
      return downSince !== undefined;
    },
  };
}
