/**
 * Lockout rules, free of storage: wrong passwords and wrong second factors are counted apart;
 * the fifth of either kind locks the account, for a period that doubles with every lock since
 * the last successful login (5 min, 10 min, … capped at 24 h). `user unlock` clears it all.
 */
export type LockState = Readonly<{
  failedPasswords: number;
  failedSecondFactors: number;
  lockCount: number;
  lockedUntil: number | null;
}>;

export type FailureKind = 'password' | 'second_factor';

export type LockPolicy = Readonly<{ threshold: number; baseMs: number; maxMs: number }>;

export const DEFAULT_LOCK_POLICY: LockPolicy = { threshold: 5, baseMs: 5 * 60_000, maxMs: 24 * 3600_000 };

export const UNLOCKED: LockState = { failedPasswords: 0, failedSecondFactors: 0, lockCount: 0, lockedUntil: null };

export function isLocked(state: LockState, now: number): boolean {
  return state.lockedUntil !== null && state.lockedUntil > now;
}

export function lockPeriod(lockCount: number, policy: LockPolicy = DEFAULT_LOCK_POLICY): number {
  return Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, lockCount - 1));
}

export function afterFailure(state: LockState, kind: FailureKind, now: number, policy: LockPolicy = DEFAULT_LOCK_POLICY): LockState {
  const failedPasswords = state.failedPasswords + (kind === 'password' ? 1 : 0);
  const failedSecondFactors = state.failedSecondFactors + (kind === 'second_factor' ? 1 : 0);
  const count = kind === 'password' ? failedPasswords : failedSecondFactors;
  if (count < policy.threshold) return { ...state, failedPasswords, failedSecondFactors };
  const lockCount = state.lockCount + 1;
  return {
    failedPasswords: kind === 'password' ? 0 : failedPasswords,
    failedSecondFactors: kind === 'second_factor' ? 0 : failedSecondFactors,
    lockCount,
    lockedUntil: now + lockPeriod(lockCount, policy),
  };
}

/** A right password clears the password count only; a right second factor ends the login and clears all. */
export function afterSuccess(state: LockState, kind: FailureKind): LockState {
  if (kind === 'password') return { ...state, failedPasswords: 0 };
  return UNLOCKED;
}
