import fs from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';

export type Db = Knex;

/**
 * Opens the database named by DATABASE_URL. SQLite runs in WAL mode with a busy timeout, so
 * a CLI command and the server (or two servers) can share one file. A `schema` query
 * parameter on a postgres URL selects (and creates) a schema: tests use one per run.
 */
export function createDb(databaseUrl: string): Db {
  if (databaseUrl.startsWith('sqlite:')) {
    const filename = databaseUrl.slice('sqlite:'.length);
    if (filename !== ':memory:') fs.mkdirSync(path.dirname(path.resolve(filename)), { recursive: true });
    return knexFactory({
      client: 'sqlite3',
      connection: { filename },
      useNullAsDefault: true,
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
  url.searchParams.delete('schema');
  return knexFactory({
    client: 'pg',
    connection: { connectionString: url.toString() },
    searchPath: schema ? [schema] : undefined,
    pool: { min: 0, max: 10 },
  });
}

export function isSqlite(db: Db): boolean {
  return db.client.config.client === 'sqlite3';
}
