import { randomBytes } from 'node:crypto';
import FakeTimers from '@sinonjs/fake-timers';
import { createDb } from '../../src/db/knex.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createKeyring } from '../../src/keys/kek.ts';
import { startKeyRotationJob } from '../../src/keys/key-rotation.job.ts';
import { maintainKeys, toKeySet, type KeySet } from '../../src/keys/signing-key.service.ts';
import { createLogger } from '../../src/log/logger.ts';
import { freshDatabaseUrl, tempDir } from '../support/harness.ts';

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

    // the job's clock and timers are fake from here: the test moves time, the database is real
    const clock = FakeTimers.install({ now: t0 + 700, toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    let current: KeySet = toKeySet(rows, keyring, Date.now());
    const swaps: Array<{ at: number; kid: string }> = [];
    let swapped!: () => void;
    const firstSwap = new Promise<void>((resolve) => {
      swapped = resolve;
    });
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
        swapped();
      },
    });
    try {
      clock.tick(0); // the first check starts: it reads the rows
      await job.tick(); // (a check is under way: this waits for it)
      expect(swaps).toEqual([]);
      await db.destroy();
      clock.tick(1500 - 700 + 4); // up to just before the job wakes: nothing yet
      expect(swaps).toEqual([]);
      clock.tick(1); // the instant plus the job's 5 ms of lateness: its timer fires
      await firstSwap;
      expect(swaps).toEqual([{ at: t0 + 1505, kid: rows[1].kid }]);
      expect(lines.join('')).toMatch(/key rotation check failed; switching on the keys last read/);
    } finally {
      clock.uninstall();
      await job.stop();
    }
  });
});
