import { createDb } from '../../src/db/knex.ts';
import { migrate } from '../../src/db/migrate.ts';
import { freshDatabaseUrl, instanceEnv, tempDir, TEST_PG_URL } from '../support/harness.ts';
import { cliProcess } from '../support/process.ts';

test('eight `portcullis` commands racing on a new database all succeed, and migrate once', async () => {
  const dir = tempDir();
  const env = instanceEnv(dir, freshDatabaseUrl(dir));
  const results = await Promise.all(Array.from({ length: 8 }, () => cliProcess(env, 'resource', 'list')));
  for (const result of results) {
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  }
  const db = createDb(env.DATABASE_URL);
  try {
    const applied = await db('knex_migrations').select('name');
    expect(applied.length).toBe(new Set(applied.map((row: { name: string }) => row.name)).size);
    expect(applied.length).toBeGreaterThan(0);
  } finally {
    await db.destroy();
  }
}, 60_000);

// knex makes its bookkeeping tables on first use (look for the lock row, insert one if none):
// handles doing that at once on a new SQLite file used to insert one row each, after which
// knex's lock could never be taken and every start-up waited out its minute (seen in CI).
// (PostgreSQL takes an advisory lock around all of it: src/db/migrate.ts)
(TEST_PG_URL ? test.skip : test)(
  'handles migrating a new SQLite file at once leave knex one lock row, round after round',
  async () => {
    for (let round = 0; round < 40; round += 1) {
      const url = freshDatabaseUrl(tempDir(), 'sqlite');
      const handles = [createDb(url), createDb(url), createDb(url)];
      try {
        await Promise.all(handles.map((handle) => migrate(handle)));
        expect(await handles[0]('knex_migrations_lock').select('is_locked')).toEqual([{ is_locked: 0 }]);
      } finally {
        await Promise.all(handles.map((handle) => handle.destroy()));
      }
    }
  },
  60_000,
);
