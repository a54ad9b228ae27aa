import { randomBytes } from 'node:crypto';
import { verifyChain } from '../../src/audit/audit.service.ts';
import { createDb, type Db } from '../../src/db/knex.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createKeyring } from '../../src/keys/kek.ts';
import { maintainKeys } from '../../src/keys/signing-key.service.ts';
import { listKeys } from '../../src/keys/signing-key.store.ts';
import { cli, freshDatabaseUrl, instanceEnv, tempDir } from '../support/harness.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import { FAST_KEYS, fetchJwks } from '../support/keys.support.ts';

describe('N instances on one database', () => {
  test('racing instances create exactly one key per rotation period, audited once each', async () => {
    const dir = tempDir();
    const url = freshDatabaseUrl(dir);
    const keyring = createKeyring([randomBytes(32).toString('base64url')]);
    const policy = { intervalMs: 100_000, prepublishMs: 10_000, retainMs: 20_000, graceMs: 1000 };
    // three handles in this one process: on SQLite a handle waiting for the write lock holds one of
    // libuv's four pool threads, so more waiters than that would starve the lock's holder (the
    // audit append holds it across statements); instances are processes, each with its own pool
    const handles: Db[] = Array.from({ length: 3 }, () => createDb(url));
    try {
      await migrate(handles[0]);
      const t0 = 1_000_000_000_000;
      // each round, three instances wake at the same instant on the same rows
      for (const at of [t0, t0 + 50_000, t0 + 89_000, t0 + 95_000, t0 + 189_000, t0 + 189_001]) {
        await Promise.all(handles.map((db) => maintainKeys(db, keyring, policy, at)));
      }
      const rows = await listKeys(handles[0]);
      expect(rows.map((row) => row.rotation_slot)).toEqual([0, 1, 2]);
      expect(rows.map((row) => row.activates_at - t0)).toEqual([0, 100_000, 200_000]);
      expect(rows.map((row) => (row.retires_at === null ? null : row.retires_at - t0))).toEqual([100_000, 200_000, null]);
      // each key created on schedule is in the audit log once, by the instance that won its slot
      const audited = await handles[0]('audit_log').where({ action: 'keys.create' }).orderBy('seq').select('actor', 'target');
      expect(audited).toEqual(rows.map((row) => ({ actor: 'system', target: row.kid })));
      expect((await verifyChain(handles[0])).valid).toBe(true);
    } finally {
      await Promise.all(handles.map((db) => db.destroy()));
    }
  });

  describe('two servers', () => {
    let a: InProcessServer;
    let b: InProcessServer;

    afterAll(async () => {
      await Promise.all([a?.stop(), b?.stop()]);
    });

    test('one key per period, and both serve the same JWKS after each change', async () => {
      const dir = tempDir();
      const env = instanceEnv(dir, freshDatabaseUrl(dir), FAST_KEYS);
      [a, b] = await Promise.all([startInProcess(env), startInProcess(env)]);

      // each server logs each change with the key set it serves from then on (the JWKS, signer
      // first): both must go through the same sequence of sets
      const served = (server: InProcessServer) =>
        server.log
          .lines()
          .filter((line) => line.msg === 'signing keys changed')
          .map((line) => `${line.signing_kid} ${(line.published as string[]).join(',')}`);
      // (one may have started on a set the other reached by a change: line the two up first)
      await a.log.until(() => served(a).length >= 4, 20_000);
      await b.log.until(() => served(b).length >= 4, 20_000);
      const [sa, sb] = [served(a), served(b)];
      const [fromA, fromB] = sa.includes(sb[0]) ? [sa.indexOf(sb[0]), 0] : [0, sb.indexOf(sa[0])];
      expect(fromB).toBeGreaterThanOrEqual(0);
      expect(sb.slice(fromB, fromB + 3)).toEqual(sa.slice(fromA, fromA + 3));
      expect(new Set(sa).size).toBe(sa.length); // each change a new set
      // and each JWKS is the set its server last logged (checked unless a change came in between)
      const counts = () => `${served(a).length} ${served(b).length}`;
      const before = counts();
      const [ja, jb] = await Promise.all([fetchJwks(a.url), fetchJwks(b.url)]);
      if (counts() === before) {
        expect(ja.kids.join(',')).toBe(served(a).at(-1)!.split(' ')[1]);
        expect(jb.kids.join(',')).toBe(served(b).at(-1)!.split(' ')[1]);
      }

      const keys = (await cli(env, 'keys', 'list')).json as Array<{ kid: string; activates_at: string }>;
      const activations = keys.map((key) => Date.parse(key.activates_at));
      expect(keys.length).toBeGreaterThanOrEqual(3);
      for (let i = 1; i < activations.length; i += 1) expect(activations[i] - activations[i - 1]).toBe(4000);
    }, 40_000);
  });
});
