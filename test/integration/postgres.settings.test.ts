import { loadConfig } from '../../src/config/config.ts';
import { createDb } from '../../src/db/knex.ts';
import { openStorage } from '../../src/storage.ts';
import { freshDatabaseUrl, TEST_PG_URL, tempDir } from '../support/harness.ts';

const KEK = 'A'.repeat(43);

// PostgreSQL-only settings and races; the SQLite run says it skipped them.
if (TEST_PG_URL) {
  describe('PostgreSQL', () => {
    test('DATABASE_STATEMENT_TIMEOUT cancels a long statement; DATABASE_POOL_MAX bounds the pool', async () => {
      const db = createDb(freshDatabaseUrl(tempDir(), 'postgres'), { statementTimeoutMs: 200, poolMax: 3 });
      try {
        await expect(db.raw('select pg_sleep(2)')).rejects.toThrow(/statement timeout/);
        expect((await db.raw('show statement_timeout')).rows[0].statement_timeout).toBe('200ms');
        expect(db.client.pool.max).toBe(3);
      } finally {
        await db.destroy();
      }
    });

    test("start-up waits for another instance's migration longer than DATABASE_STATEMENT_TIMEOUT", async () => {
      const url = freshDatabaseUrl(tempDir(), 'postgres');
      const schema = new URL(url).searchParams.get('schema')!;
      const other = createDb(url);
      const conn = await other.client.acquireConnection();
      try {
        // another instance is migrating: it holds the lock for 1.5 s, past a 1 s statement timeout
        await other.raw('select pg_advisory_lock(hashtext(?))', [`portcullis migrate ${schema}`]).connection(conn);
        // (a knex query runs only when awaited or then-ed)
        const release = setTimeout(
          () =>
            void other
              .raw('select pg_advisory_unlock(hashtext(?))', [`portcullis migrate ${schema}`])
              .connection(conn)
              .then(() => undefined),
          1500,
        );
        const config = loadConfig({ DATABASE_URL: url, PORTCULLIS_KEK: KEK, DATABASE_STATEMENT_TIMEOUT: '1s' });
        const started = Date.now();
        const { db } = await openStorage(config);
        clearTimeout(release);
        expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
        await db.destroy();
      } finally {
        await other.client.releaseConnection(conn);
        await other.destroy();
      }
    });

    test('?sslmode=require asks for TLS: this server has none, so the connection is refused rather than sent in clear', async () => {
      const url = new URL(freshDatabaseUrl(tempDir(), 'postgres'));
      url.searchParams.set('sslmode', 'require');
      const db = createDb(url.toString());
      try {
        await expect(db.raw('select 1')).rejects.toThrow(/SSL/i);
      } finally {
        await db.destroy();
      }
    });
  });
} else {
  test.skip('PostgreSQL settings skipped: set PORTCULLIS_TEST_PG=postgres://… to run them', () => {});
}
