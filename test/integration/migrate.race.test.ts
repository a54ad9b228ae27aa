import { createDb } from '../../src/db/knex.ts';
import { freshDatabaseUrl, instanceEnv, tempDir } from '../support/harness.ts';
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
