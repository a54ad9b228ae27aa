import { randomBytes } from 'node:crypto';
import { createDb } from '../../src/db/knex.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createKeyring } from '../../src/keys/kek.ts';
import { startKeyRotationJob } from '../../src/keys/key-rotation.job.ts';
import { maintainKeys, toKeySet, type KeySet } from '../../src/keys/signing-key.service.ts';
import { createLogger } from '../../src/log/logger.ts';
import { freshDatabaseUrl, tempDir } from '../support/harness.ts';
import { sleep, waitFor } from '../support/keys.support.ts';

describe('key rotation job', () => {
  test('switches at the scheduled instant, not at the next poll, even while the database is unreachable', async () => {
    const dir = tempDir();
    const db = createDb(freshDatabaseUrl(dir));
    const keyring = createKeyring([randomBytes(32).toString('base64url')]);
    const policy = { intervalMs: 1500, prepublishMs: 700, retainMs: 1000, graceMs: 100 };
    await migrate(db);
    const t0 = Date.now();
    await maintainKeys(db, keyring, policy, t0);
    // the next key, created when due: it signs from t0 + 1500
    const rows = await maintainKeys(db, keyring, policy, t0 + 700);
    expect(rows.map((row) => row.activates_at - t0)).toEqual([0, 1500]);

    let current: KeySet = toKeySet(rows, keyring, Date.now());
    const swaps: Array<{ at: number; kid: string }> = [];
    const lines: string[] = [];
    const job = startKeyRotationJob({
      db,
      keyring,
      policy,
      pollMs: 60_000, // the poll never comes: only the timer can make the switch
      log: createLogger('info', (line) => lines.push(line)),
      current: () => current,
      use(next) {
        swaps.push({ at: Date.now(), kid: next.signingKid });
        current = next;
      },
    });
    try {
      await sleep(100); // the first check reads the rows
      await db.destroy();
      expect(await waitFor(async () => swaps.length > 0, 3000, 20)).toBe(true);
      expect(swaps[0].kid).toBe(rows[1].kid);
      expect(swaps[0].at - (t0 + 1500)).toBeGreaterThanOrEqual(0);
      expect(swaps[0].at - (t0 + 1500)).toBeLessThan(500);
      expect(lines.join('')).toMatch(/key rotation check failed; switching on the keys last read/);
    } finally {
      await job.stop();
    }
  });
});
