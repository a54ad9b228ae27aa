import { DEFAULT_LOCK_POLICY, doublingsToCap, isLocked, LOGIN_STEP_ATTEMPTS, lockPeriod } from '../../src/accounts/lockout.policy.ts';

const MIN = 60_000;

describe('lockout rules', () => {
  test('PCI DSS 8.3.4: at most 10 attempts, every lock at least 30 minutes', () => {
    expect(DEFAULT_LOCK_POLICY.threshold).toBeLessThanOrEqual(10);
    for (let prior = 0; prior < 40; prior++) {
      expect(lockPeriod('password', prior)).toBeGreaterThanOrEqual(30 * MIN);
      expect(lockPeriod('second_factor', prior)).toBeGreaterThanOrEqual(30 * MIN);
    }
  });

  test('a password lock stays at 30 minutes; a second-factor lock doubles up to a day', () => {
    expect([0, 1, 5, 30].map((n) => lockPeriod('password', n) / MIN)).toEqual([30, 30, 30, 30]);
    expect([0, 1, 2, 3, 4, 5].map((n) => lockPeriod('second_factor', n) / MIN)).toEqual([30, 60, 120, 240, 480, 960]);
    expect(lockPeriod('second_factor', 6)).toBe(24 * 60 * MIN);
    expect(lockPeriod('second_factor', 62)).toBe(24 * 60 * MIN); // no overflow however many locks
  });

  test('the doubling count the SQL uses reaches the cap exactly where the rule does', () => {
    const k = doublingsToCap();
    expect(k).toBe(6);
    expect(DEFAULT_LOCK_POLICY.baseMs * 2 ** (k - 1)).toBeLessThan(DEFAULT_LOCK_POLICY.maxMs);
    expect(DEFAULT_LOCK_POLICY.baseMs * 2 ** k).toBeGreaterThanOrEqual(DEFAULT_LOCK_POLICY.maxMs);
    expect(doublingsToCap({ threshold: 5, baseMs: 5 * MIN, maxMs: 5 * MIN })).toBe(0);
  });

  test('locked means until the instant given, not after', () => {
    expect(isLocked(null, 0)).toBe(false);
    expect(isLocked(1000, 999)).toBe(true);
    expect(isLocked(1000, 1000)).toBe(false);
  });

  test('a login step takes three codes', () => {
    expect(LOGIN_STEP_ATTEMPTS).toBe(3);
  });
});
