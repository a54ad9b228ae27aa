import fs from 'node:fs';
import path from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import knexFactory from 'knex';
import type { Knex } from 'knex';
import type { Logger } from '../log/logger.ts';

export type Db = Knex;

export type DbOptions = Readonly<{ poolMax?: number; statementTimeoutMs?: number; log?: Logger }>;

/**
 * knex's warnings that are `debug` here: about a connection (one a failed request while the
 * database is away: the outage is logged once, availability.ts), and about its migration lock
 * held by another process (SQLite: a racing process waits its turn, src/db/migrate.ts).
 */
const CONNECTION_NOISE =
  /^(Acquire connection error|Connection Error):|^Can't take lock to run migrations|^If you are sure migrations are not running/;

/**
 * knex writes its warnings, errors and deprecations with console.log, as plain coloured text:
 * they go to our JSON log instead, first line only (the rest is a stack), with any credentials
 * of a connection URL taken out. Connection errors and a migration lock held elsewhere are `debug`.
 */
function knexLog(log: Logger | undefined): Knex.Config['log'] {
  if (!log) return undefined;
  const line = (message: unknown) => {
    const text = typeof message === 'string' ? message : message instanceof Error ? message.message : JSON.stringify(message);
    return `knex: ${(text.split('\n')[0] ?? '').replace(/\/\/[^/@\s]*@/g, '//[redacted]@').slice(0, 500)}`;
  };
  return {
    warn: (message: unknown) => {
      const text = line(message);
      if (CONNECTION_NOISE.test(text.slice('knex: '.length))) log.debug(text);
      else log.warn(text);
    },
    error: (message: unknown) => log.error(line(message)),
    // knex hands this one the finished sentence, whatever its typings say
    deprecate: (message: unknown) => log.warn(line(message)),
    debug: (message: unknown) => log.debug(line(message)),
  };
}

/**
 * Opens the database named by DATABASE_URL. SQLite runs in WAL mode with a busy timeout, so
 * a CLI command and the server (or two servers) can share one file. A `schema` query
 * parameter on a postgres URL selects (and creates) a schema: tests use one per run.
 * `options` (DATABASE_POOL_MAX, DATABASE_STATEMENT_TIMEOUT) apply to PostgreSQL only.
 */
export function createDb(databaseUrl: string, options: DbOptions = {}): Db {
  if (databaseUrl.startsWith('sqlite:')) {
    const filename = databaseUrl.slice('sqlite:'.length);
    if (filename !== ':memory:') fs.mkdirSync(path.dirname(path.resolve(filename)), { recursive: true });
    return knexFactory({
      client: 'sqlite3',
      log: knexLog(options.log),
      connection: { filename },
      useNullAsDefault: true,
      // an error's message carries the SQL with `?` placeholders, never the bound values
      compileSqlOnError: false,
      pool: {
        min: 1,
        max: 1,
        afterCreate(
          conn: { exec(sql: string, done: (error: Error | null) => void): void },
          done: (error: Error | null, conn: unknown) => void,
        ) {
          conn.exec(
            'PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;',
            (error) => done(error, conn),
          );
        },
      },
    });
  }
  const url = new URL(databaseUrl);
  const schema = url.searchParams.get('schema') ?? undefined;
  const ssl = sslOptions(url.searchParams.get('sslmode'), url.searchParams.get('sslrootcert'));
  for (const param of ['schema', 'sslmode', 'sslrootcert']) url.searchParams.delete(param);
  return knexFactory({
    client: 'pg',
    log: knexLog(options.log),
    compileSqlOnError: false,
    connection: {
      connectionString: url.toString(),
      ssl,
      application_name: 'portcullis',
      // a connection attempt to a server that is not answering (a failover under way) gives up
      // after 5 s, and TCP keepalive finds an idle connection whose server vanished without a word;
      // knex drops a connection that errored or ended before lending it again (no restart needed)
      connectionTimeoutMillis: 5000,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      ...(options.statementTimeoutMs ? { statement_timeout: options.statementTimeoutMs } : {}),
    },
    searchPath: schema ? [schema] : undefined,
    // fail a request after 10 s without a connection rather than queue it for a minute
    pool: { min: 0, max: options.poolMax ?? 10 },
    acquireConnectionTimeout: 10_000,
  });
}

/**
 * libpq's sslmode, spelt out for node-postgres (whose own parsing of it differs by version):
 * `require` encrypts without checking the certificate, `verify-ca` checks the chain,
 * `verify-full` the chain and the host name. `prefer` cannot fall back here: it means off.
 */
function sslOptions(mode: string | null, rootCert: string | null): false | ConnectionOptions {
  if (mode === null || mode === 'disable' || mode === 'prefer') return false;
  if (mode === 'require') return { rejectUnauthorized: false };
  const ca = rootCert ? fs.readFileSync(rootCert, 'utf8') : undefined;
  if (mode === 'verify-ca') return { rejectUnauthorized: true, ca, checkServerIdentity: () => undefined };
  return { rejectUnauthorized: true, ca };
}

/**
 * The parts of knex's client we use, which its typings leave as `any`: the config it was made
 * with (above), its pool (absent until first used), and a connection held across statements.
 */
type KnexClient = {
  config: Pick<Knex.Config, 'client' | 'searchPath'>;
  pool?: { numUsed(): number; numFree(): number; numPendingAcquires(): number };
  acquireConnection(): Promise<unknown>;
  releaseConnection(connection: unknown): Promise<void>;
};

function clientOf(db: Db): KnexClient {
  return db.client as KnexClient;
}

/** Pool figures for /metrics: connections in use, idle, and requests waiting for one. */
export function poolUse(db: Db): { used: number; free: number; pending: number } {
  const pool = clientOf(db).pool;
  if (!pool) return { used: 0, free: 0, pending: 0 };
  return { used: pool.numUsed(), free: pool.numFree(), pending: pool.numPendingAcquires() };
}

export function isSqlite(db: Db): boolean {
  return clientOf(db).config.client === 'sqlite3';
}

/** The PostgreSQL schema selected by the URL's `schema` parameter, if any. */
export function schemaOf(db: Db): string | undefined {
  const searchPath = clientOf(db).config.searchPath;
  return typeof searchPath === 'string' ? searchPath : searchPath?.[0];
}

/** Runs `use` on one connection of the pool held throughout (session state such as advisory locks). */
export async function withConnection<T>(db: Db, use: (connection: unknown) => Promise<T>): Promise<T> {
  const client = clientOf(db);
  const connection = await client.acquireConnection();
  try {
    return await use(connection);
  } finally {
    await client.releaseConnection(connection);
  }
}

/** `column IS NULL OR column <operator> value`, as one parenthesised condition of a query. */
export function isNullOr(column: string, operator: '<' | '<=' | '>', value: number): Knex.QueryCallback {
  return (q) => void q.whereNull(column).orWhere(column, operator, value);
}

/** One round trip to the database (readiness): rejects when it cannot answer. */
/**
 * The value for a row's `updated_at` on a change at `at`: at least one past its value, so every
 * change makes a new version even within one millisecond (the admin API's ETags are it).
 */
export function nextVersion(db: Db, at: number): Knex.Raw {
  return db.raw('CASE WHEN updated_at < ? THEN ? ELSE updated_at + 1 END', [at, at]);
}

export async function ping(db: Db): Promise<void> {
  await db.raw('select 1');
}
