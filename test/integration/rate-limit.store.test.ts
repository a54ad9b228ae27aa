import { createDb, type Db } from '../../src/db/knex.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createCounter, purgeEndedWindows, refusal } from '../../src/limits/rate-limit.store.ts';
import { freshDatabaseUrl, tempDir } from '../support/harness.ts';

/**
 * rate-limiter-flexible's counters in our own table, on the engine of the run (SQLite, or
 * PostgreSQL with PORTCULLIS_TEST_PG): atomic across connections, harmless to the rest of the
 * app's queries, and still counting when the database is gone.
 */
let url: string;
let db: Db;
let other: Db;

beforeAll(async () => {
  url = freshDatabaseUrl(tempDir());
  db = createDb(url);
  await migrate(db);
  other = createDb(url);
});

afterAll(async () => {
  await db?.destroy();
  await other?.destroy();
});

const spec = (name: string, points: number) => ({ name, points, durationSeconds: 600, store: 'database' as const, blockInMemory: true });

async function outcomes(attempts: Array<Promise<unknown>>) {
  const settled = await Promise.allSettled(attempts);
  const refused = settled.filter((s) => s.status === 'rejected' && refusal(s.reason)).length;
  const failed = settled.filter((s) => s.status === 'rejected' && !refusal(s.reason)).map((s) => (s as PromiseRejectedResult).reason);
  return { passed: settled.filter((s) => s.status === 'fulfilled').length, refused, failed };
}

test('30 parallel counts over two connection pools, limit 5: exactly 5 pass', async () => {
  const [a, b] = [createCounter(db, spec('atomic', 5)), createCounter(other, spec('atomic', 5))];
  expect(await outcomes(Array.from({ length: 30 }, (_, i) => (i % 2 ? a : b).consume('k')))).toEqual({
    passed: 5,
    refused: 25,
    failed: [],
  });
  expect(await db('rate_limits').where({ key: 'atomic:k' }).first()).toMatchObject({ key: 'atomic:k' });
});

test("counting never gets in the way of the app's own transactions on the same pool", async () => {
  await db.schema.createTable('scratch', (t) => {
    t.increments('id');
    t.string('v');
  });
  const counter = createCounter(db, spec('busy', 1_000_000));
  const work = Array.from({ length: 100 }, (_, i) => [
    counter.consume(`k${i % 7}`),
    db.transaction(async (trx) => {
      await trx('scratch').insert({ v: 'a' });
      await trx('scratch').where('v', 'a').update({ v: 'b' });
    }),
  ]).flat();
  expect(await outcomes(work)).toEqual({ passed: 200, refused: 0, failed: [] });
  expect(Number((await db('scratch').count({ n: '*' }))[0].n)).toBe(100);
});

test('a refusal says how long until the window ends', async () => {
  const counter = createCounter(db, spec('window', 1));
  await counter.consume('k');
  const error = await counter.consume('k').catch((e: unknown) => e);
  expect(refusal(error)!.retryAfterMs).toBeGreaterThan(590_000);
  expect(refusal(error)!.retryAfterMs).toBeLessThanOrEqual(600_000);
  expect(refusal(new Error('not a refusal'))).toBeUndefined();
});

test('ended windows are purged; live ones stay', async () => {
  const counter = createCounter(db, spec('purge', 5));
  await counter.consume('live');
  await db('rate_limits').insert({ key: 'purge:ended', points: 3, expire: Date.now() - 1000 });
  expect(await purgeEndedWindows(db, Date.now())).toBeGreaterThanOrEqual(1);
  expect(await db('rate_limits').where({ key: 'purge:ended' }).first()).toBeUndefined();
  expect(await db('rate_limits').where({ key: 'purge:live' }).first()).toBeDefined();
});

test('when the database is gone, each process counts in memory instead of failing', async () => {
  const lost = createDb(url);
  const counter = createCounter(lost, spec('insured', 3));
  await lost.destroy();
  expect(await outcomes(Array.from({ length: 5 }, () => counter.consume('k')))).toEqual({ passed: 3, refused: 2, failed: [] });
});
