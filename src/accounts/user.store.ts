import type { Db } from '../db/knex.ts';
import type { LockState } from './lockout.service.ts';

export type UserStatus = 'active' | 'disabled';

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
  createdAt: number;
  updatedAt: number;
}>;

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
      failedPasswords: Number(row.failed_passwords),
      failedSecondFactors: Number(row.failed_second_factors),
      lockCount: Number(row.lock_count),
      lockedUntil: orNull(row.locked_until),
    },
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
    created_at: user.createdAt,
    updated_at: user.updatedAt,
  });
}

export async function findUserByUsername(db: Db, username: string): Promise<User | undefined> {
  const row = await db(USERS).where({ username }).first();
  return row ? fromRow(row) : undefined;
}

export async function findUserById(db: Db, id: string): Promise<User | undefined> {
  const row = await db(USERS).where({ id }).first();
  return row ? fromRow(row) : undefined;
}

export async function listUsers(db: Db): Promise<User[]> {
  return (await db(USERS).select('*').orderBy('created_at')).map(fromRow);
}

export type UserChange = Partial<{ status: UserStatus; totpSecret: string | null; totpLastStep: number | null; lock: LockState }>;

/** Returns false when no such user exists. */
export async function updateUser(db: Db, id: string, change: UserChange, at: number): Promise<boolean> {
  const fields: Record<string, unknown> = { updated_at: at };
  if (change.status !== undefined) fields.status = change.status;
  if (change.totpSecret !== undefined) fields.totp_secret = change.totpSecret;
  if (change.totpLastStep !== undefined) fields.totp_last_step = change.totpLastStep;
  if (change.lock !== undefined) Object.assign(fields, lockColumns(change.lock));
  return (await db(USERS).where({ id }).update(fields)) > 0;
}

/** Stores a confirmed TOTP secret unless one is already there (two racing enrolments: one wins). */
export async function setTotpSecretIfUnset(db: Db, id: string, sealed: string, step: number, lock: LockState, at: number): Promise<boolean> {
  const updated = await db(USERS)
    .where({ id })
    .whereNull('totp_secret')
    .update({ totp_secret: sealed, totp_last_step: step, ...lockColumns(lock), updated_at: at });
  return updated > 0;
}

/**
 * Records `step` as used if it is newer than the last used one, atomically: of two requests
 * racing with the same code, one wins.
 */
export async function claimTotpStep(db: Db, id: string, step: number): Promise<boolean> {
  const updated = await db(USERS)
    .where({ id })
    .andWhere((q) => q.whereNull('totp_last_step').orWhere('totp_last_step', '<', step))
    .update({ totp_last_step: step });
  return updated > 0;
}

export async function replaceRecoveryCodes(db: Db, userId: string, hashes: readonly string[]): Promise<void> {
  await db.transaction(async (trx) => {
    await trx(RECOVERY).where({ user_id: userId }).delete();
    if (hashes.length) await trx(RECOVERY).insert(hashes.map((hash) => ({ user_id: userId, code_hash: hash, used_at: null })));
  });
}

/** Marks the code used; true only for the one request that used it. */
export async function useRecoveryCode(db: Db, userId: string, hash: string, at: number): Promise<boolean> {
  return (await db(RECOVERY).where({ user_id: userId, code_hash: hash }).whereNull('used_at').update({ used_at: at })) > 0;
}

export async function countUnusedRecoveryCodes(db: Db, userId: string): Promise<number> {
  const row = await db(RECOVERY).where({ user_id: userId }).whereNull('used_at').count({ n: '*' }).first();
  return Number(row?.n ?? 0);
}
