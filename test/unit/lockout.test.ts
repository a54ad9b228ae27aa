import { afterFailure, afterSuccess, isLocked, lockPeriod, UNLOCKED, type LockState } from '../../src/accounts/lockout.service.ts';

const MIN = 60_000;

function fail(state: LockState, kind: 'password' | 'second_factor', times: number, now: number): LockState {
  let next = state;
  for (let i = 0; i < times; i++) next = afterFailure(next, kind, now);
  return next;
}

describe('lockout', () => {
  test('four wrong passwords do not lock, the fifth does', () => {
    const now = 1_000_000;
    const four = fail(UNLOCKED, 'password', 4, now);
    expect(isLocked(four, now)).toBe(false);
    const five = afterFailure(four, 'password', now);
    expect(isLocked(five, now)).toBe(true);
    expect(five.lockedUntil).toBe(now + 5 * MIN);
    expect(isLocked(five, now + 5 * MIN)).toBe(false);
  });

  test('password and second-factor failures are counted apart', () => {
    const now = 0;
    const mixed = fail(fail(UNLOCKED, 'password', 4, now), 'second_factor', 4, now);
    expect(isLocked(mixed, now)).toBe(false);
    expect(mixed).toEqual(expect.objectContaining({ failedPasswords: 4, failedSecondFactors: 4 }));
    expect(isLocked(afterFailure(mixed, 'second_factor', now), now)).toBe(true);
  });

  test('each lock without a successful login in between lasts longer, up to a day', () => {
    expect([1, 2, 3, 4].map((n) => lockPeriod(n) / MIN)).toEqual([5, 10, 20, 40]);
    expect(lockPeriod(30)).toBe(24 * 60 * MIN);
    let state = UNLOCKED;
    let now = 0;
    state = fail(state, 'password', 5, now);
    now = state.lockedUntil!;
    state = fail(state, 'password', 5, now);
    expect(state.lockedUntil! - now).toBe(10 * MIN);
    now = state.lockedUntil!;
    state = fail(state, 'second_factor', 5, now);
    expect(state.lockedUntil! - now).toBe(20 * MIN);
  });

  test('a right password clears only the password count; a finished login clears everything', () => {
    const state = fail(fail(UNLOCKED, 'password', 3, 0), 'second_factor', 2, 0);
    expect(afterSuccess(state, 'password')).toEqual(expect.objectContaining({ failedPasswords: 0, failedSecondFactors: 2 }));
    const locked = fail(state, 'password', 2, 0);
    expect(afterSuccess(locked, 'second_factor')).toEqual(UNLOCKED);
  });
});
