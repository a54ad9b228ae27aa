import { createDb } from '../../src/db/knex.ts';
import { freshDatabaseUrl, instanceEnv, seedPartner, tempDir } from '../support/harness.ts';
import { basic, form } from '../support/http.ts';
import { startInProcess } from '../support/in-process.ts';

// SQLite's outage: another process holds the write lock past the 5 s busy timeout (a backup
// tool, a stuck CLI command). The request that must write is told 503 + Retry-After +
// `temporarily_unavailable`, not 500, and the next one after the lock is gone succeeds.
// SQLite only: the lock is SQLite's own (the PostgreSQL restart has outage.postgres.test.ts).
const sqliteOnly = process.env.PORTCULLIS_TEST_PG ? describe.skip : describe;

sqliteOnly('a SQLite file locked by another process', () => {
  test('SQLITE_BUSY after the busy timeout is a 503 with Retry-After; the server goes on once the lock is gone', async () => {
    const dir = tempDir();
    const url = freshDatabaseUrl(dir, 'sqlite');
    const server = await startInProcess(instanceEnv(dir, url));
    const locker = createDb(url);
    try {
      const partner = await seedPartner(server.env);
      await locker('resources').update({ token_format: 'opaque' }); // a stored token: the request must write
      const token = () =>
        fetch(`${server.local}/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(partner.clientId, partner.clientSecret) },
          body: form({ grant_type: 'client_credentials', scope: 'payments:read' }),
        });
      const trx = await locker.transaction();
      try {
        await trx.raw('create table write_lock_holder (x integer)'); // holds SQLite's write lock until rollback
        const refused = await token();
        expect({ status: refused.status, retryAfter: refused.headers.get('retry-after'), body: await refused.json() }).toEqual({
          status: 503,
          retryAfter: expect.stringMatching(/^\d+$/),
          body: expect.objectContaining({ error: 'temporarily_unavailable' }),
        });
      } finally {
        await trx.rollback();
      }
      const served = await token();
      expect(served.status).toBe(200);
      const messages = server.log.lines().map((line) => line.msg);
      expect(messages).toContain('database unavailable: answering 503 until it is back');
      expect(messages).toContain('database available again');
    } finally {
      await locker.destroy();
      await server.stop();
    }
  }, 30_000);
});
