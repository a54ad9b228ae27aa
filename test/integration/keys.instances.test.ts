import { randomBytes } from 'node:crypto';
import { createDb, type Db } from '../../src/db/knex.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createKeyring } from '../../src/keys/kek.ts';
import { maintainKeys } from '../../src/keys/signing-key.service.ts';
import { listKeys } from '../../src/keys/signing-key.store.ts';
import { cli, freshDatabaseUrl, instanceEnv, startInstance, tempDir, type Instance } from '../support/harness.ts';
import { FAST_KEYS, fetchJwks, sleep } from '../support/keys.support.ts';

describe('N instances on one database', () => {
  test('racing instances create exactly one key per rotation period', async () => {
    const dir = tempDir();
    const url = freshDatabaseUrl(dir);
    const keyring = createKeyring([randomBytes(32).toString('base64url')]);
    const policy = { intervalMs: 100_000, prepublishMs: 10_000, retainMs: 20_000, graceMs: 1000 };
    const handles: Db[] = Array.from({ length: 6 }, () => createDb(url));
    try {
      await migrate(handles[0]);
      const t0 = 1_000_000_000_000;
      // each round, six instances wake at the same instant on the same rows
      for (const at of [t0, t0 + 50_000, t0 + 89_000, t0 + 95_000, t0 + 189_000, t0 + 189_001]) {
        await Promise.all(handles.map((db) => maintainKeys(db, keyring, policy, at)));
      }
      const rows = await listKeys(handles[0]);
      expect(rows.map((row) => row.rotation_slot)).toEqual([0, 1, 2]);
      expect(rows.map((row) => row.activates_at - t0)).toEqual([0, 100_000, 200_000]);
      expect(rows.map((row) => row.retires_at === null ? null : row.retires_at - t0)).toEqual([100_000, 200_000, null]);
    } finally {
      await Promise.all(handles.map((db) => db.destroy()));
    }
  });

  describe('two server processes', () => {
    let a: Instance;
    let b: Instance;

    afterAll(async () => {
      await Promise.all([a?.stop(), b?.stop()]);
    });

    test('one key per period, and both serve the same JWKS after each change', async () => {
      const dir = tempDir();
      const env = instanceEnv(dir, freshDatabaseUrl(dir), FAST_KEYS);
      a = await startInstance(env);
      b = await startInstance(env);

      const samples: Array<{ a: string; b: string }> = [];
      const deadline = Date.now() + 10_000; // two and a half periods
      while (Date.now() < deadline) {
        const [ja, jb] = await Promise.all([fetchJwks(a.url), fetchJwks(b.url)]);
        samples.push({ a: ja.kids.join(','), b: jb.kids.join(',') });
        await sleep(150);
      }

      const keys = (await cli(env, 'keys', 'list')).json as Array<{ kid: string; activates_at: string }>;
      const activations = keys.map((key) => Date.parse(key.activates_at));
      expect(keys.length).toBeGreaterThanOrEqual(4);
      for (let i = 1; i < activations.length; i += 1) expect(activations[i] - activations[i - 1]).toBe(4000);

      // the same sequence of key sets on both; they may differ only in samples taken at a switch
      const changes = (list: string[]) => list.filter((item, i) => i === 0 || item !== list[i - 1]);
      const seenByA = changes(samples.map((sample) => sample.a));
      expect(changes(samples.map((sample) => sample.b))).toEqual(seenByA);
      expect(seenByA.length).toBeGreaterThanOrEqual(3);
      const different = samples.filter((sample) => sample.a !== sample.b).length;
      expect(different).toBeLessThanOrEqual(2 * (seenByA.length - 1));
    }, 40_000);
  });
});
