import fs from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Knex } from 'knex';
import { createDb, type Db } from '../../src/db/knex.ts';
import { freshDatabaseUrl, ROOT, tempDir } from './harness.ts';

const dir = path.join(ROOT, 'migrations');

const source: Knex.MigrationSource<string> = {
  async getMigrations() {
    return (await fs.readdir(dir)).filter((name) => /^\d{14}_[a-z0-9_]+\.ts$/.test(name)).sort();
  },
  getMigrationName: (name) => name,
  getMigration: async (name) => import(pathToFileURL(path.join(dir, name)).href),
};

/**
 * A fresh database migrated up to just before `migration` (a file name in migrations/), to test
 * that migration on rows written before it. `drop()` removes it (its schema on PostgreSQL).
 */
export async function databaseBefore(migration: string): Promise<{ db: Db; config: Knex.MigratorConfig; drop: () => Promise<void> }> {
  const db = createDb(freshDatabaseUrl(tempDir()));
  const schema = db.client.config.searchPath?.[0] as string | undefined;
  if (schema) await db.raw('CREATE SCHEMA IF NOT EXISTS ??', [schema]);
  const config: Knex.MigratorConfig = { migrationSource: source, schemaName: schema };
  for (;;) {
    const [, pending] = (await db.migrate.list(config)) as [unknown[], Array<{ file?: string } | string>];
    const next = pending[0];
    if (!next || (typeof next === 'string' ? next : next.file) === migration) break;
    await db.migrate.up(config);
  }
  return {
    db,
    config,
    drop: async () => {
      if (schema) await db.raw('DROP SCHEMA IF EXISTS ?? CASCADE', [schema]);
      await db.destroy();
    },
  };
}
