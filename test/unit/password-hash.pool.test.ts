import { argon2Sync, randomBytes, scryptSync } from 'node:crypto';
import fs from 'node:fs';
import { createHashPool } from '../../src/accounts/password-hash.pool.ts';

describe('password hashes on threads of their own', () => {
  const pool = createHashPool(2);
  afterAll(() => pool.close());

  test('argon2id and scrypt computed on the pool equal the same computed here', async () => {
    const salt = randomBytes(16);
    const params = { memoryKiB: 1024, passes: 2, parallelism: 1 };
    const expected = argon2Sync('argon2id', {
      message: 'pässword'.normalize('NFKC'),
      nonce: salt,
      parallelism: 1,
      tagLength: 32,
      memory: 1024,
      passes: 2,
    });
    expect(await pool.hash({ kind: 'argon2id', password: 'pässword', salt, ...params, length: 32 })).toEqual(expected);
    const legacy = scryptSync('pässword'.normalize('NFKC'), salt, 32, { N: 1024, r: 8, p: 1 });
    expect(await pool.hash({ kind: 'scrypt', password: 'pässword', salt, N: 1024, r: 8, p: 1, length: 32 })).toEqual(legacy);
  });

  test('many at once all come back right; a job the library refuses is an error, not a dead pool', async () => {
    const salt = randomBytes(16);
    const jobs = Array.from({ length: 12 }, (_, i) =>
      pool.hash({ kind: 'argon2id', password: `p${i}`, salt, memoryKiB: 1024, passes: 1, parallelism: 1, length: 16 }),
    );
    const keys = await Promise.all(jobs);
    expect(new Set(keys.map((key) => key.toString('hex'))).size).toBe(12);
    await expect(
      pool.hash({ kind: 'argon2id', password: 'x', salt, memoryKiB: 1, passes: 1, parallelism: 1, length: 16 }),
    ).rejects.toThrow();
    expect(await pool.hash({ kind: 'argon2id', password: 'p0', salt, memoryKiB: 1024, passes: 1, parallelism: 1, length: 16 })).toEqual(
      keys[0],
    );
  });

  test('its threads run at nice 19, the rest of the process does not', async () => {
    // Linux: field 19 of /proc/self/task/<tid>/stat is each thread's nice value
    const niceOf = () =>
      fs.readdirSync('/proc/self/task').map((tid) =>
        Number(
          fs
            .readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
            .replace(/^.*\) /, '')
            .split(' ')[16],
        ),
      );
    await pool.hash({ kind: 'argon2id', password: 'x', salt: randomBytes(16), memoryKiB: 1024, passes: 1, parallelism: 1, length: 16 });
    const nice = niceOf();
    expect(nice.filter((value) => value === 19).length).toBeGreaterThanOrEqual(1);
    expect(nice.filter((value) => value === 0).length).toBeGreaterThanOrEqual(1);
  });
});
