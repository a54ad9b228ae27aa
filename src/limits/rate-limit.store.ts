import { RateLimiterMemory, RateLimiterPostgres, RateLimiterRes, RateLimiterSQLite, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { isSqlite, type Db } from '../db/knex.ts';

/** Made by migrations/20261129120000_rate_limits.ts: the library never creates tables here. */
const TABLE = 'rate_limits';

type Row = { points: number; expire: number | string | null };

/**
 * rate-limiter-flexible's SQLite store, its one write done through knex. The library's own knex
 * path hands the connection back to the pool before its statement has run (`return` without
 * `await` inside try/finally in `_upsertTransaction`): with knex's single SQLite connection, a
 * transaction elsewhere in the app then starts on it mid-statement and fails ("cannot start a
 * transaction within a transaction"; tried with 200 of each in parallel). The statement is the
 * library's, one atomic INSERT … ON CONFLICT … RETURNING, so no savepoint is needed either.
 * Reads and deletes (`_get`, `_delete`) await their connection properly and are left as they are.
 */
class KnexSqliteRateLimiter extends RateLimiterSQLite {
  async _upsert(key: string, points: number, msDuration: number, forceExpire = false): Promise<Row> {
    const db = (this as unknown as { client: Db }).client;
    const now = Date.now();
    const expire = msDuration > 0 ? now + msDuration : null;
    // on SQLite, knex's raw() resolves to the rows the statement returned
    const rows = forceExpire
      ? await db.raw<Row[]>(`INSERT OR REPLACE INTO ${TABLE} (key, points, expire) VALUES (?, ?, ?) RETURNING points, expire`, [
          key,
          points,
          expire,
        ])
      : await db.raw<Row[]>(
          `INSERT INTO ${TABLE} (key, points, expire) VALUES (?, ?, ?)
         ON CONFLICT(key) DO UPDATE SET
           points = CASE WHEN expire IS NULL OR expire > ? THEN points + excluded.points ELSE excluded.points END,
           expire = CASE WHEN expire IS NULL OR expire > ? THEN expire ELSE excluded.expire END
         RETURNING points, expire`,
          [key, points, expire, now, now],
        );
    return rows[0];
  }
}

export type CounterStore = 'database' | 'memory';

/**
 * A fixed-window counter: `points` per `durationSeconds` for each key, named `name` (the key
 * prefix in the table). `database`: one atomic upsert per count, shared by every instance (and
 * every process on one SQLite file); should the database fail, each instance counts alone in
 * memory meanwhile (the library's insurance limiter) rather than let everything through or
 * refuse everyone. With `blockInMemory`, a key past its limit is then refused from this
 * process's memory until its window ends, so a flood past the limit costs no writes (not for
 * counts that may be given back: the block would outlive them). `memory`: this process only.
 */
export function createCounter(
  db: Db,
  spec: Readonly<{ name: string; points: number; durationSeconds: number; store: CounterStore; blockInMemory: boolean }>,
): RateLimiterAbstract {
  const common = { keyPrefix: spec.name, points: spec.points, duration: spec.durationSeconds };
  if (spec.store === 'memory') return new RateLimiterMemory(common);
  const options = {
    ...common,
    storeClient: db,
    storeType: 'knex',
    tableName: TABLE,
    tableCreated: true,
    clearExpiredByTimeout: false, // the purge job deletes ended windows (purgeEndedWindows)
    inMemoryBlockOnConsumed: spec.blockInMemory ? spec.points + 1 : 0,
    insuranceLimiter: new RateLimiterMemory(common),
  };
  return isSqlite(db) ? new KnexSqliteRateLimiter(options) : new RateLimiterPostgres(options);
}

/** What a refusal says: how long until the window ends. Anything else is a failure to pass on. */
export function refusal(error: unknown): { retryAfterMs: number } | undefined {
  return error instanceof RateLimiterRes ? { retryAfterMs: error.msBeforeNext } : undefined;
}

/** Deletes counters whose window has ended; returns how many. */
export async function purgeEndedWindows(db: Db, now: number): Promise<number> {
  return db(TABLE).where('expire', '<', now).delete();
}
