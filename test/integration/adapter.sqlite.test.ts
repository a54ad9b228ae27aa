import { createDb } from '../../src/db/knex.ts';
import { migrate, rollbackAll } from '../../src/db/migrate.ts';
import { adapterContract } from '../support/adapter.contract.ts';
import { freshDatabaseUrl, tempDir } from '../support/harness.ts';

adapterContract(
  'sqlite',
  async () => {
    const db = createDb(freshDatabaseUrl(tempDir(), 'sqlite'));
    await migrate(db);
    return db;
  },
  async (db) => {
    await rollbackAll(db); // the down migrations run too
    await db.destroy();
  },
);
