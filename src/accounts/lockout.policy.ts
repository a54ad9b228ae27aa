/**
 * Lockout rules, free of storage. The counting itself is one SQL statement per attempt
 * (user.store.ts builds it from these numbers), so parallel attempts cannot lose a count.
 *
 * - Wrong passwords and wrong second factors are counted apart; the fifth of either kind in a
 *   row locks the account (PCI DSS 8.3.4: at most 10) and starts that count again.
 * - Every lock lasts at least 30 minutes (PCI DSS 8.3.4), or until an operator who has confirmed
 *   the person's identity runs `user unlock`.
 * - A password lock stays at 30 minutes: anyone who knows a username can cause it, so it must
 *   not grow into a day-long lock-out bought with five requests. A second-factor lock doubles
 *   with every lock since the last completed login (30 min, 1 h, 2 h, … capped at 24 h): only
 *   someone holding the password can cause it, and a 6-digit code space needs the brake.
 * - Each step of a login (one interaction) takes at most three codes; then the password is
 *   asked again (`LOGIN_STEP_ATTEMPTS`).
 */
export type LockState = Readonly<{
  failedPasswords: number;
  failedSecondFactors: number;
  lockCount: number;
  lockedUntil: number | null;
}>;

export type FailureKind = 'password' | 'second_factor';

export type LockPolicy = Readonly<{ threshold: number; baseMs: number; maxMs: number }>;

export const DEFAULT_LOCK_POLICY: LockPolicy = { threshold: 5, baseMs: 30 * 60_000, maxMs: 24 * 3600_000 };

/** Codes (TOTP, recovery or enrolment) one step of one login may try before it ends. */
export const LOGIN_STEP_ATTEMPTS = 3;

export const UNLOCKED: LockState = { failedPasswords: 0, failedSecondFactors: 0, lockCount: 0, lockedUntil: null };

export function isLocked(lockedUntil: number | null, now: number): boolean {
  return lockedUntil !== null && lockedUntil > now;
}

/** Doublings after which a second-factor lock reaches the cap (24 h from 30 min: 6, as 32 h > 24 h). */
export function doublingsToCap(policy: LockPolicy = DEFAULT_LOCK_POLICY): number {
  return Math.max(0, Math.ceil(Math.log2(policy.maxMs / policy.baseMs)));
}

/**
 * How long the lock that `kind` sets lasts, given the locks since the last completed login
 * before it (`priorLocks`). The SQL in user.store.ts computes the same as `base << lock_count`.
 */
export function lockPeriod(kind: FailureKind, priorLocks: number, policy: LockPolicy = DEFAULT_LOCK_POLICY): number {
  if (kind === 'password') return policy.baseMs;
  if (priorLocks >= doublingsToCap(policy)) return policy.maxMs;
  return Math.min(policy.maxMs, policy.baseMs * 2 ** priorLocks);
}
