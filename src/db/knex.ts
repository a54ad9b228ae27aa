import fs from 'node:fs';
import path from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import knexFactory from 'knex';
import type { Knex } from 'knex';

export type Db = Knex;

export type DbOptions = Readonly<{ poolMax?: number; statementTimeoutMs?: number }>;

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
      connection: { filename },
      useNullAsDefault: true,
      // an error's message carries the SQL with `?` placeholders, never the bound values
      compileSqlOnError: false,
      pool: {
        min: 1,
        max: 1,
        afterCreate(conn: { exec(sql: string, done: (error: Error | null) => void): void }, done: (error: Error | null, conn: unknown) => void) {
          conn.exec('PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;', (error) => done(error, conn));
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
    compileSqlOnError: false,
    connection: {
      connectionString: url.toString(),
      ssl,
      application_name: 'portcullis',
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

/** Pool figures for /metrics: connections in use, idle, and requests waiting for one. */
export function poolUse(db: Db): { used: number; free: number; pending: number } {
  const pool = (db.client as { pool?: { numUsed(): number; numFree(): number; numPendingAcquires(): number } }).pool;
  if (!pool) return { used: 0, free: 0, pending: 0 };
  return { used: pool.numUsed(), free: pool.numFree(), pending: pool.numPendingAcquires() };
}

export function isSqlite(db: Db): boolean {
  return db.client.config.client === 'sqlite3';
}

/** One round trip to the database (readiness): rejects when it cannot answer. */
export async function ping(db: Db): Promise<void> {
  await db.raw('select 1');
}
