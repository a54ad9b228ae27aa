import { randomBytes } from 'node:crypto';
import type { Db } from '../db/knex.ts';
import { invalidInput, notFound } from '../http/errors.ts';
import { deleteAccountGrants } from '../grants/grant.store.ts';
import type { Keyring } from '../keys/kek.ts';
import { afterFailure, afterSuccess, isLocked, UNLOCKED, type FailureKind } from './lockout.service.ts';
import { checkPassword, hashPassword, passwordProblem } from './password.service.ts';
import { checkTotp, hashRecoveryCode, newRecoveryCodes, newTotpSecret, totpUri } from './totp.service.ts';
import {
  claimTotpStep,
  countUnusedRecoveryCodes,
  findUserById,
  findUserByUsername,
  insertUser,
  listUsers,
  replaceRecoveryCodes,
  setTotpSecretIfUnset,
  updateUser,
  useRecoveryCode,
  type User,
} from './user.store.ts';

/** What account logic needs: its store's database, the KEK keyring for TOTP secrets, a clock. */
export type AccountDeps = Readonly<{ db: Db; keyring: Keyring; now: () => number }>;

/** Label authenticator apps show next to the code. */
export const TOTP_ISSUER = 'Portcullis';
export const USERNAME_PATTERN = /^[a-z0-9][a-z0-9._@-]{0,63}$/;

export function normaliseUsername(username: string): string {
  return username.trim().toLowerCase();
}

export function describeUser(user: User, now: number) {
  return {
    id: user.id,
    username: user.username,
    admin: user.isAdmin,
    status: user.status,
    totp_enrolled: user.totpSecret !== null,
    locked_until: isLocked(user.lock, now) ? new Date(user.lock.lockedUntil!).toISOString() : null,
    created_at: new Date(user.createdAt).toISOString(),
  };
}

export async function createUser(
  deps: AccountDeps,
  input: { username: string; password: string; isAdmin: boolean; withTotp: boolean },
) {
  const username = normaliseUsername(input.username);
  if (!USERNAME_PATTERN.test(username)) throw invalidInput('--username takes 1 to 64 of a-z 0-9 . _ @ - (starting with a letter or digit)');
  const problem = passwordProblem(input.password);
  if (problem) throw invalidInput(problem);
  if (await findUserByUsername(deps.db, username)) throw invalidInput(`user ${username} already exists`);
  const secret = input.withTotp ? newTotpSecret() : null;
  const now = deps.now();
  const user: User = {
    id: `usr_${randomBytes(12).toString('base64url')}`,
    username,
    passwordHash: await hashPassword(input.password),
    totpSecret: secret === null ? null : deps.keyring.seal(secret),
    totpLastStep: null,
    isAdmin: input.isAdmin,
    status: 'active',
    lock: UNLOCKED,
    createdAt: now,
    updatedAt: now,
  };
  await insertUser(deps.db, user);
  return secret === null ? { id: user.id, username } : { id: user.id, username, totp_uri: totpUri(secret, username, TOTP_ISSUER) };
}

async function userNamed(db: Db, username: string): Promise<User> {
  const user = await findUserByUsername(db, normaliseUsername(username));
  if (!user) throw notFound(`no user named ${username}`);
  return user;
}

export async function listAllUsers(deps: AccountDeps) {
  const now = deps.now();
  return (await listUsers(deps.db)).map((user) => describeUser(user, now));
}

export async function unlockUser(deps: AccountDeps, username: string) {
  const user = await userNamed(deps.db, username);
  await updateUser(deps.db, user.id, { lock: UNLOCKED }, deps.now());
  return describeUser((await findUserById(deps.db, user.id))!, deps.now());
}

/** The next login enrols a new authenticator; the old secret and recovery codes stop working. */
export async function resetTotp(deps: AccountDeps, username: string) {
  const user = await userNamed(deps.db, username);
  await updateUser(deps.db, user.id, { totpSecret: null, totpLastStep: null }, deps.now());
  await replaceRecoveryCodes(deps.db, user.id, []);
  return describeUser((await findUserById(deps.db, user.id))!, deps.now());
}

export async function disableUser(deps: AccountDeps, username: string) {
  const user = await userNamed(deps.db, username);
  await updateUser(deps.db, user.id, { status: 'disabled' }, deps.now());
  await deleteAccountGrants(deps.db, user.id); // sessions, grants and tokens: signed out everywhere, now
  return describeUser((await findUserById(deps.db, user.id))!, deps.now());
}

/** The account a session or token names, if it may still be used. */
export async function findActiveUser(db: Db, id: string): Promise<User | undefined> {
  const user = await findUserById(db, id);
  return user?.status === 'active' ? user : undefined;
}

/** A refusal names the account (for the log, never the page) when there is one, and a fresh lock. */
export type Outcome = { ok: true; user: User } | { ok: false; accountId?: string; lockedNow?: boolean };

async function recordFailure(deps: AccountDeps, user: User, kind: FailureKind): Promise<Outcome> {
  const now = deps.now();
  const lock = afterFailure(user.lock, kind, now);
  await updateUser(deps.db, user.id, { lock }, now);
  return { ok: false, accountId: user.id, lockedNow: isLocked(lock, now) };
}

/**
 * First factor. Unknown user, disabled user, locked account and wrong password all give the
 * same answer after the same work (one scrypt), so none of them can be told apart.
 */
export async function authenticatePassword(deps: AccountDeps, username: string, password: string): Promise<Outcome> {
  const name = normaliseUsername(username);
  const user = USERNAME_PATTERN.test(name) ? await findUserByUsername(deps.db, name) : undefined;
  const matches = await checkPassword(password.slice(0, 1024), user?.passwordHash);
  if (!user) return { ok: false };
  if (user.status !== 'active' || isLocked(user.lock, deps.now())) return { ok: false, accountId: user.id };
  if (!matches) return recordFailure(deps, user, 'password');
  await updateUser(deps.db, user.id, { lock: afterSuccess(user.lock, 'password') }, deps.now());
  return { ok: true, user };
}

/** The fresh user row, if it may continue a login (not disabled, not locked meanwhile). */
async function loginable(deps: AccountDeps, userId: string): Promise<User | undefined> {
  const user = await findActiveUser(deps.db, userId);
  return user && !isLocked(user.lock, deps.now()) ? user : undefined;
}

async function finishSecondFactor(deps: AccountDeps, user: User, passed: boolean): Promise<Outcome> {
  if (!passed) return recordFailure(deps, user, 'second_factor');
  await updateUser(deps.db, user.id, { lock: afterSuccess(user.lock, 'second_factor') }, deps.now());
  return { ok: true, user };
}

export async function verifyTotp(deps: AccountDeps, userId: string, code: string): Promise<Outcome> {
  const user = await loginable(deps, userId);
  if (!user || user.totpSecret === null) return { ok: false };
  const check = checkTotp(deps.keyring.open(user.totpSecret), code, deps.now(), user.totpLastStep);
  return finishSecondFactor(deps, user, check.ok && (await claimTotpStep(deps.db, user.id, check.step)));
}

export async function verifyRecoveryCode(deps: AccountDeps, userId: string, code: string): Promise<Outcome> {
  const user = await loginable(deps, userId);
  if (!user || user.totpSecret === null) return { ok: false };
  const used = code.length <= 64 && (await useRecoveryCode(deps.db, user.id, hashRecoveryCode(code), deps.now()));
  return finishSecondFactor(deps, user, used);
}

/** A new secret for enrolment, sealed: it is kept with the pending login until confirmed. */
export function offerTotpSecret(deps: AccountDeps): { secret: string; sealed: string } {
  const secret = newTotpSecret();
  return { secret, sealed: deps.keyring.seal(secret) };
}

export function enrolmentUri(deps: AccountDeps, sealed: string, username: string): { secret: string; uri: string } {
  const secret = deps.keyring.open(sealed);
  return { secret, uri: totpUri(secret, username, TOTP_ISSUER) };
}

/**
 * Confirms enrolment with a current code from the new authenticator: stores the secret and
 * returns fresh recovery codes (only their hashes are kept: this is the one time they exist).
 */
export async function confirmEnrolment(deps: AccountDeps, userId: string, sealed: string, code: string): Promise<{ ok: true; user: User; recoveryCodes: string[] } | Extract<Outcome, { ok: false }>> {
  const user = await loginable(deps, userId);
  if (!user || user.totpSecret !== null) return { ok: false, accountId: userId };
  const check = checkTotp(deps.keyring.open(sealed), code, deps.now(), null);
  if (!check.ok) return recordFailure(deps, user, 'second_factor') as Promise<Extract<Outcome, { ok: false }>>;
  if (!(await setTotpSecretIfUnset(deps.db, user.id, sealed, check.step, afterSuccess(user.lock, 'second_factor'), deps.now()))) return { ok: false };
  const recoveryCodes = newRecoveryCodes();
  await replaceRecoveryCodes(deps.db, user.id, recoveryCodes.map(hashRecoveryCode));
  return { ok: true, user, recoveryCodes };
}

export { countUnusedRecoveryCodes };
