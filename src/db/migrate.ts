import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Knex } from 'knex';
import { isSqlite, type Db } from './knex.ts';

const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

type Migration = { up(knex: Knex): Promise<void>; down(knex: Knex): Promise<void> };

/** Loads migrations/*.ts through our own import(), so knex never guesses a loader. */
const source: Knex.MigrationSource<string> = {
  async getMigrations() {
    return (await fs.readdir(MIGRATIONS_DIR)).filter((name) => /^\d{14}_[a-z0-9_]+\.ts$/.test(name)).sort();
  },
  getMigrationName(name) {
    return name;
  },
  async getMigration(name) {
    return (await import(pathToFileURL(path.join(MIGRATIONS_DIR, name)).href)) as Migration;
  },
};

/**
 * Applies every pending migration. On PostgreSQL, instances starting together take turns under
 * an advisory lock (per schema): knex's own lock row only exists once its tables do, and two
 * processes creating those tables at once make one of them fail.
 */
export async function migrate(db: Db): Promise<void> {
  const schema = db.client.config.searchPath?.[0] as string | undefined;
  if (isSqlite(db)) {
    await migrateSqlite(db);
    return;
  }
  const lockName = `portcullis migrate ${schema ?? 'public'}`;
  const conn = await db.client.acquireConnection();
  try {
    await db.raw('select pg_advisory_lock(hashtext(?))', [lockName]).connection(conn);
    try {
      if (schema) await db.raw('CREATE SCHEMA IF NOT EXISTS ??', [schema]);
      await db.migrate.latest({ migrationSource: source, schemaName: schema });
    } finally {
      await db.raw('select pg_advisory_unlock(hashtext(?))', [lockName]).connection(conn);
    }
  } finally {
    await db.client.releaseConnection(conn);
  }
}

/**
 * SQLite has no advisory lock: processes starting together on one file may collide creating
 * knex's own tables, or find its lock row taken. Each migration runs in a transaction, so the
 * loser retries (bounded: about 6 s) and then finds the work done or does what is left.
 */
async function migrateSqlite(db: Db, attempts = 40): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await db.migrate.latest({ migrationSource: source });
      return;
    } catch (error) {
      const raced = /already exists|already locked|SQLITE_BUSY/i.test((error as Error).message);
      if (!raced || attempt >= attempts) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 200));
    }
  }
}

export async function rollbackAll(db: Db): Promise<void> {
  const schema = db.client.config.searchPath?.[0] as string | undefined;
  await db.migrate.rollback({ migrationSource: source, schemaName: schema }, true);
}
