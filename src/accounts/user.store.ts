import { isNullOr, type Db } from '../db/knex.ts';
import { containsPattern } from '../shared/page-cursor.ts';
import { deleteAccountGrants, deleteAccountSessions } from '../grants/grant.store.ts';
import { deleteUserLoginStates } from './login-state.store.ts';
import { doublingsToCap, type FailureKind, type LockPolicy, type LockState } from './lockout.policy.ts';

type UserStatus = 'active' | 'disabled';

export type User = Readonly<{
  id: string;
  username: string;
  passwordHash: string;
  /** sealed under the KEK */
  totpSecret: string | null;
  totpLastStep: number | null;
  isAdmin: boolean;
  status: UserStatus;
  lock: LockState;
  /** SHA-256 of the outstanding one-time enrolment code, if any */
  enrolmentCodeHash: string | null;
  enrolmentCodeExpiresAt: number | null;
  createdAt: number;
  updatedAt: number;
}>;

/** As the drivers return it: PostgreSQL gives bigint columns as strings, SQLite booleans as 0/1. */
type Row = {
  id: string;
  username: string;
  password_hash: string;
  totp_secret: string | null;
  totp_last_step: number | string | null;
  is_admin: number | boolean;
  status: UserStatus;
  failed_passwords: number;
  failed_second_factors: number;
  lock_count: number;
  locked_until: number | string | null;
  enrolment_code_hash: string | null;
  enrolment_code_expires_at: number | string | null;
  created_at: number | string;
  updated_at: number | string;
};

const USERS = 'users';
const RECOVERY = 'recovery_codes';

const orNull = (value: number | string | null) => (value === null ? null : Number(value));

function fromRow(row: Row): User {
  return {
    id: row.id,
    username: row.username,
    passwordHash: row.password_hash,
    totpSecret: row.totp_secret,
    totpLastStep: orNull(row.totp_last_step),
    isAdmin: Boolean(row.is_admin),
    status: row.status,
    lock: {
      failedPasswords: row.failed_passwords,
      failedSecondFactors: row.failed_second_factors,
      lockCount: row.lock_count,
      lockedUntil: orNull(row.locked_until),
    },
    enrolmentCodeHash: row.enrolment_code_hash ?? null,
    enrolmentCodeExpiresAt: orNull(row.enrolment_code_expires_at ?? null),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

function lockColumns(lock: LockState) {
  return {
    failed_passwords: lock.failedPasswords,
    failed_second_factors: lock.failedSecondFactors,
    lock_count: lock.lockCount,
    locked_until: lock.lockedUntil,
  };
}

export async function insertUser(db: Db, user: User): Promise<void> {
  await db(USERS).insert({
    id: user.id,
    username: user.username,
    password_hash: user.passwordHash,
    totp_secret: user.totpSecret,
    totp_last_step: user.totpLastStep,
    is_admin: user.isAdmin,
    status: user.status,
    ...lockColumns(user.lock),
    enrolment_code_hash: user.enrolmentCodeHash,
    enrolment_code_expires_at: user.enrolmentCodeExpiresAt,
    created_at: user.createdAt,
    updated_at: user.updatedAt,
  });
}

export async function findUserByUsername(db: Db, username: string): Promise<User | undefined> {
  const row = await db<Row>(USERS).where({ username }).first();
  return row ? fromRow(row) : undefined;
}

export async function findUserById(db: Db, id: string): Promise<User | undefined> {
  const row = await db<Row>(USERS).where({ id }).first();
  return row ? fromRow(row) : undefined;
}

/** How many people there are (any status). */
export async function countUsers(db: Db): Promise<number> {
  const row = await db(USERS).count({ n: '*' }).first();
  return Number(row?.n ?? 0);
}

export async function listUsers(db: Db): Promise<User[]> {
  return (await db<Row>(USERS).select('*').orderBy('created_at')).map(fromRow);
}

/**
 * One page of people in username order (usernames are unique) after `after`, at most `limit`;
 * `search` matches a part of the username (stored lower-case) or of the account id.
 */
export async function listUsersPage(db: Db, options: { search?: string; after?: string; limit: number }): Promise<User[]> {
  const query = db<Row>(USERS).select('*').orderBy('username').limit(options.limit);
  if (options.search) {
    const search = options.search;
    void query.where((q) => {
      void q
        .whereRaw("username LIKE ? ESCAPE '\\'", [containsPattern(search.toLowerCase())])
        .orWhereRaw("id LIKE ? ESCAPE '\\'", [containsPattern(search)]);
    });
  }
  if (options.after !== undefined) void query.where('username', '>', options.after);
  return (await query).map(fromRow);
}

export type UserChange = Partial<{ status: UserStatus; lock: LockState }>;

/** Returns false when no such user exists. */
export async function updateUser(db: Db, id: string, change: UserChange, at: number): Promise<boolean> {
  const fields: Record<string, unknown> = { updated_at: at };
  if (change.status !== undefined) fields.status = change.status;
  if (change.lock !== undefined) Object.assign(fields, lockColumns(change.lock));
  return (await db(USERS).where({ id }).update(fields)) > 0;
}

/** The rows a login may still act on at `now`: active, and not locked at that instant. */
function loginable(db: Db, id: string, now: number) {
  return db(USERS)
    .where({ id, status: 'active' })
    .andWhere(isNullOr('locked_until', '<=', now));
}

const FAILURE_COLUMN: Record<FailureKind, string> = { password: 'failed_passwords', second_factor: 'failed_second_factors' };

/**
 * Counts one failure of `kind` in one statement, deciding the lock in it: the count reaching the
 * threshold sets `locked_until` (a password lock for the base period; a second-factor lock for
 * `base << lock_count`, capped) and starts the count again. Nothing is counted on an account
 * that is disabled or already locked. Returns the new `locked_until` when this failure locked it.
 */
export async function recordFailure(
  db: Db,
  id: string,
  kind: FailureKind,
  now: number,
  policy: LockPolicy,
): Promise<{ lockedUntil: number | null }> {
  const count = FAILURE_COLUMN[kind];
  const reaches = `${count} + 1 >= ?`;
  const period =
    kind === 'password'
      ? db.raw('CAST(? AS BIGINT)', [policy.baseMs])
      : db.raw('CASE WHEN lock_count >= ? THEN CAST(? AS BIGINT) ELSE CAST(? AS BIGINT) << lock_count END', [
          doublingsToCap(policy),
          policy.maxMs,
          policy.baseMs,
        ]);
  const rows: { locked_until: number | string | null }[] = await loginable(db, id, now)
    .update({
      [count]: db.raw(`CASE WHEN ${reaches} THEN 0 ELSE ${count} + 1 END`, [policy.threshold]),
      lock_count: db.raw(`CASE WHEN ${reaches} THEN lock_count + 1 ELSE lock_count END`, [policy.threshold]),
      locked_until: db.raw(`CASE WHEN ${reaches} THEN CAST(? AS BIGINT) + (?) ELSE locked_until END`, [policy.threshold, now, period]),
      updated_at: now,
    })
    .returning(['locked_until']);
  const lockedUntil = orNull(rows[0]?.locked_until ?? null);
  return { lockedUntil: lockedUntil !== null && lockedUntil > now ? lockedUntil : null };
}

/** A right password, if the account is still active and unlocked now: clears the password count only. */
export async function recordPasswordSuccess(db: Db, id: string, now: number): Promise<boolean> {
  return (await loginable(db, id, now).update({ failed_passwords: 0, updated_at: now })) > 0;
}

/** A completed login ends the second-factor count and the lock history (the doubling starts over). */
const SECOND_FACTOR_DONE = { failed_second_factors: 0, lock_count: 0 };

/**
 * A right TOTP code, in one statement: claims its time step (newer than the last used one, so
 * of two requests with one code, one wins), for the secret it was checked against, on an account
 * still active and unlocked now; and clears the second-factor count.
 */
export async function recordTotpSuccess(db: Db, id: string, sealedSecret: string, step: number, now: number): Promise<boolean> {
  const updated = await loginable(db, id, now)
    .andWhere({ totp_secret: sealedSecret })
    .andWhere(isNullOr('totp_last_step', '<', step))
    .update({ totp_last_step: step, ...SECOND_FACTOR_DONE, updated_at: now });
  return updated > 0;
}

/**
 * A recovery code: marks it used and clears the second-factor count, together or not at all
 * (a code is not spent on an account locked meanwhile).
 */
export async function recordRecoverySuccess(db: Db, id: string, codeHash: string, now: number): Promise<boolean> {
  try {
    return await db.transaction(async (trx) => {
      const used = await trx(RECOVERY).where({ user_id: id, code_hash: codeHash }).whereNull('used_at').update({ used_at: now });
      if (used === 0) return false;
      if ((await loginable(trx, id, now).update({ ...SECOND_FACTOR_DONE, updated_at: now })) === 0) throw new Undone();
      return true;
    });
  } catch (error) {
    if (error instanceof Undone) return false;
    throw error;
  }
}

/** Thrown inside a transaction to roll it back as a plain refusal. */
class Undone extends Error {}

/** A new enrolment code for an account: the authenticator and recovery codes go with the old one. */
export async function resetAuthenticator(db: Db, id: string, codeHash: string, expiresAt: number, now: number): Promise<boolean> {
  return db.transaction(async (trx) => {
    const updated = await trx(USERS).where({ id }).update({
      totp_secret: null,
      totp_last_step: null,
      enrolment_code_hash: codeHash,
      enrolment_code_expires_at: expiresAt,
      updated_at: now,
    });
    await trx(RECOVERY).where({ user_id: id }).delete();
    return updated > 0;
  });
}

/**
 * Binds an authenticator and spends the enrolment code, in one statement: only if no
 * authenticator is bound, the code is still the outstanding one and unexpired, and the account
 * is active and unlocked now. Of many parallel uses of one code, one wins. The recovery codes
 * are stored in the same transaction.
 */
export async function bindAuthenticator(
  db: Db,
  id: string,
  binding: { sealedSecret: string; step: number; enrolmentCodeHash: string; recoveryCodeHashes: readonly string[] },
  now: number,
): Promise<boolean> {
  return db.transaction(async (trx) => {
    const bound = await loginable(trx, id, now)
      .whereNull('totp_secret')
      .andWhere({ enrolment_code_hash: binding.enrolmentCodeHash })
      .andWhere('enrolment_code_expires_at', '>', now)
      .update({
        totp_secret: binding.sealedSecret,
        totp_last_step: binding.step,
        enrolment_code_hash: null,
        enrolment_code_expires_at: null,
        ...SECOND_FACTOR_DONE,
        updated_at: now,
      });
    if (bound === 0) return false;
    await trx(RECOVERY).where({ user_id: id }).delete();
    await trx(RECOVERY).insert(binding.recoveryCodeHashes.map((hash) => ({ user_id: id, code_hash: hash, used_at: null })));
    return true;
  });
}

/**
 * A new password set by an operator, in one transaction: the hash, the count of wrong passwords
 * started again (they were guesses at the old one), and the person signed out everywhere —
 * sessions, grants and stored tokens deleted, logins under way past the old password ended.
 * A lock and the second-factor count stay (`user unlock` lifts a lock). False: no such user.
 */
export async function setPasswordHash(db: Db, id: string, passwordHash: string, at: number): Promise<boolean> {
  return db.transaction(async (trx) => {
    const updated = await trx(USERS).where({ id }).update({ password_hash: passwordHash, failed_passwords: 0, updated_at: at });
    if (updated === 0) return false;
    await deleteUserLoginStates(trx, id);
    await deleteAccountGrants(trx, id);
    return true;
  });
}

/**
 * A person changes their own password (they gave the current one): in one transaction, only if
 * the hash is still `previous` (of two changes made from one form, one wins) on an account active
 * and unlocked now; the count of wrong passwords starts again, logins under way past the old
 * password end, and the person's browser sessions here end. Their consents to partners stay.
 */
export async function changePasswordHash(db: Db, id: string, previous: string, next: string, now: number): Promise<boolean> {
  return db.transaction(async (trx) => {
    const updated = await loginable(trx, id, now)
      .andWhere({ password_hash: previous })
      .update({ password_hash: next, failed_passwords: 0, updated_at: now });
    if (updated === 0) return false;
    await deleteUserLoginStates(trx, id);
    await deleteAccountSessions(trx, id);
    return true;
  });
}

/**
 * Swaps the authenticator in one statement: only if the stored secret is still `previous` and
 * the account active and unlocked now. `step` is the new authenticator's step that confirmed it:
 * that code is used.
 */
export async function replaceTotpSecret(db: Db, id: string, previous: string, next: string, step: number, now: number): Promise<boolean> {
  const updated = await loginable(db, id, now)
    .andWhere({ totp_secret: previous })
    .update({ totp_secret: next, totp_last_step: step, updated_at: now });
  return updated > 0;
}

/** New recovery codes for the authenticator `sealedSecret` (still bound, account active): the old ones go. */
export async function replaceRecoveryCodes(
  db: Db,
  id: string,
  sealedSecret: string,
  recoveryCodeHashes: readonly string[],
  now: number,
): Promise<boolean> {
  return db.transaction(async (trx) => {
    const current = await trx(USERS).where({ id, status: 'active', totp_secret: sealedSecret }).update({ updated_at: now });
    if (current === 0) return false;
    await trx(RECOVERY).where({ user_id: id }).delete();
    await trx(RECOVERY).insert(recoveryCodeHashes.map((hash) => ({ user_id: id, code_hash: hash, used_at: null })));
    return true;
  });
}

/** Replaces a password hash (a rehash at a stronger setting) only if it is still `previous`. */
export async function replacePasswordHash(db: Db, id: string, previous: string, next: string): Promise<boolean> {
  return (await db(USERS).where({ id, password_hash: previous }).update({ password_hash: next })) > 0;
}

/** People's sealed TOTP secrets; `onlyLegacy`: only those sealed in the old format (v1). */
export async function listSealedTotpSecrets(db: Db, options: { onlyLegacy: boolean }): Promise<Array<{ id: string; sealed: string }>> {
  const query = db(USERS).select('id', 'totp_secret').whereNotNull('totp_secret');
  if (options.onlyLegacy) query.andWhere('totp_secret', 'like', 'v1.%');
  return (await query).map((row: { id: string; totp_secret: string }) => ({ id: row.id, sealed: row.totp_secret }));
}

/** Replaces a sealed TOTP secret only if it is still `expected` (re-sealing, never re-keying). */
export async function swapTotpSecret(db: Db, id: string, expected: string, sealed: string): Promise<boolean> {
  return (await db(USERS).where({ id, totp_secret: expected }).update({ totp_secret: sealed })) > 0;
}
