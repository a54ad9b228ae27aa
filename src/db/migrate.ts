import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Knex } from 'knex';
import { isSqlite, schemaOf, withConnection, type Db } from './knex.ts';

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
  if (isSqlite(db)) return migrateSqlite(db);
  const schema = schemaOf(db);
  const lockName = `portcullis migrate ${schema ?? 'public'}`;
  await withConnection(db, async (conn) => {
    await db.raw('select pg_advisory_lock(hashtext(?))', [lockName]).connection(conn);
    try {
      if (schema) await db.raw('CREATE SCHEMA IF NOT EXISTS ??', [schema]);
      await db.migrate.latest({ migrationSource: source, schemaName: schema });
    } finally {
      await db.raw('select pg_advisory_unlock(hashtext(?))', [lockName]).connection(conn);
    }
  });
}

// (two processes creating knex's own tables at once: one finds them made by the other)
const LOCK_CONTENTION = /SQLITE_BUSY|database is locked|already locked|MigrationLocked|already exists/;

/**
 * SQLite: several processes open one file (the server, `portcullis` commands, a second
 * instance). Nothing to apply is the common case and takes no lock; otherwise knex's lock
 * row decides, and a process that meets it taken (or SQLite's write lock) waits its turn.
 */
async function migrateSqlite(db: Db, waitMs = 60_000): Promise<void> {
  // bounded by time, not attempts: on a loaded machine the holder may take many seconds
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      if ((await pendingSqlite(db)) === 0) return;
      await db.migrate.latest({ migrationSource: source });
      return;
    } catch (error) {
      const contention = LOCK_CONTENTION.test(`${(error as Error).name} ${(error as Error).message}`);
      if (!contention || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 100));
    }
  }
}

/**
 * How many migrations are pending. knex makes its own tables on first use by looking for its
 * lock row and inserting one if there is none: two processes doing that at once on a new file
 * both insert, and with two rows its lock (`UPDATE … WHERE is_locked = 0` must change exactly
 * one) can never be taken again. The look-and-insert runs here in one write transaction
 * (BEGIN IMMEDIATE: the others wait for it, busy_timeout), on the pool's one connection.
 */
async function pendingSqlite(db: Db): Promise<number> {
  await db.raw('BEGIN IMMEDIATE');
  try {
    const [, pending] = (await db.migrate.list({ migrationSource: source })) as [unknown[], unknown[]];
    await db.raw('COMMIT');
    return pending.length;
  } catch (error) {
    await db.raw('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

export async function rollbackAll(db: Db): Promise<void> {
  await db.migrate.rollback({ migrationSource: source, schemaName: schemaOf(db) }, true);
}
