import { createDb } from '../../src/db/knex.ts';
import { migrate, rollbackAll } from '../../src/db/migrate.ts';
import { adapterContract } from '../support/adapter.contract.ts';
import { freshDatabaseUrl, TEST_PG_URL, tempDir } from '../support/harness.ts';

// The PostgreSQL suite runs when PORTCULLIS_TEST_PG names a server (`.ci/run` sets it).
if (TEST_PG_URL) {
  adapterContract(
    'postgres',
    async () => {
      const db = createDb(freshDatabaseUrl(tempDir(), 'postgres'));
      await migrate(db);
      return db;
    },
    async (db) => {
      const schema = db.client.config.searchPath[0] as string;
      await rollbackAll(db);
      await db.raw('DROP SCHEMA IF EXISTS ?? CASCADE', [schema]);
      await db.destroy();
    },
  );
} else {
  test.skip('PostgreSQL adapter contract skipped: set PORTCULLIS_TEST_PG=postgres://… to run it', () => {});
}
