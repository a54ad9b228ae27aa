import { randomBytes } from 'node:crypto';
import { recordChange, type AuditBy } from '../audit/audit.service.ts';
import type { Db } from '../db/knex.ts';
import { invalidInput, notFound } from '../shared/errors.ts';
import { decodeCursor, pageOf, pageSize } from '../shared/page-cursor.ts';
import { deleteAccountGrants } from '../grants/grant.store.ts';
import { KekError, type Keyring, type SealContext } from '../keys/kek.ts';
import { DEFAULT_LOCK_POLICY, isLocked, UNLOCKED, type FailureKind } from './lockout.policy.ts';
import { checkPassword, hashPassword, MAX_PASSWORD_LENGTH, needsRehash, passwordProblem } from './password.service.ts';
import { checkTotp, hashOneTimeCode, newOneTimeCode, newRecoveryCodes, newTotpSecret, totpUri } from './totp.service.ts';
import {
  bindAuthenticator,
  findUserById,
  findUserByUsername,
  insertUser,
  listSealedTotpSecrets,
  countUsers,
  listUsers,
  listUsersPage,
  recordFailure,
  recordPasswordSuccess,
  recordRecoverySuccess,
  recordTotpSuccess,
  replacePasswordHash,
  resetAuthenticator,
  setPasswordHash,
  swapTotpSecret,
  updateUser,
  type User,
} from './user.store.ts';

/** What account logic needs: its store's database, the KEK keyring for TOTP secrets, a clock. */
export type AccountDeps = Readonly<{
  db: Db;
  keyring: Keyring;
  now: () => number;
  /** The name an authenticator app shows beside the account (BRAND_NAME); 'Portcullis' when not given. */
  totpIssuer?: string;
}>;

/** Label authenticator apps show next to the code. */
const DEFAULT_TOTP_ISSUER = 'Portcullis';

/** The `otpauth:` URI an authenticator app scans for `secret`, labelled with the username and BRAND_NAME. */
export function authenticatorUri(deps: AccountDeps, secret: string, username: string): string {
  return totpUri(secret, username, deps.totpIssuer ?? DEFAULT_TOTP_ISSUER);
}
const USERNAME_PATTERN = /^[a-z0-9][a-z0-9._@-]{0,63}$/;
/** An enrolment code is delivered out of band and must be used within 72 hours. */
const ENROLMENT_CODE_TTL_MS = 72 * 3600_000;

export function normaliseUsername(username: string): string {
  return username.trim().toLowerCase();
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function describeUser(user: User, now: number) {
  return {
    id: user.id,
    username: user.username,
    admin: user.isAdmin,
    status: user.status,
    totp_enrolled: user.totpSecret !== null,
    locked_until: isLocked(user.lock.lockedUntil, now) ? iso(user.lock.lockedUntil) : null,
    enrolment_code_expires_at: user.enrolmentCodeHash !== null ? iso(user.enrolmentCodeExpiresAt) : null,
    created_at: iso(user.createdAt),
  };
}

/** A fresh one-time enrolment code: the code to hand over out of band, and what is stored. */
function issueEnrolmentCode(now: number) {
  const code = newOneTimeCode();
  const expiresAt = now + ENROLMENT_CODE_TTL_MS;
  return { code, hash: hashOneTimeCode(code), expiresAt, shown: { enrolment_code: code, enrolment_code_expires_at: iso(expiresAt) } };
}

export async function createUser(
  deps: AccountDeps,
  input: { username: string; password: string; isAdmin: boolean; withTotp: boolean },
  by: AuditBy,
) {
  const username = normaliseUsername(input.username);
  if (!USERNAME_PATTERN.test(username)) throw invalidInput('--username takes 1 to 64 of a-z 0-9 . _ @ - (starting with a letter or digit)');
  const problem = await passwordProblem(input.password, { admin: input.isAdmin, userInputs: [username] });
  if (problem) throw invalidInput(problem);
  if (await findUserByUsername(deps.db, username)) throw invalidInput(`user ${username} already exists`);
  const now = deps.now();
  // an authenticator now, or an enrolment code for the person to bind one at first login
  const factor = input.withTotp ? { secret: newTotpSecret(), enrolment: null } : { secret: null, enrolment: issueEnrolmentCode(now) };
  const { secret, enrolment } = factor;
  const id = `usr_${randomBytes(12).toString('base64url')}`;
  const user: User = {
    id,
    username,
    passwordHash: await hashPassword(input.password),
    totpSecret: secret === null ? null : deps.keyring.seal(secret, totpSecretContext(id)),
    totpLastStep: null,
    isAdmin: input.isAdmin,
    status: 'active',
    lock: UNLOCKED,
    enrolmentCodeHash: enrolment?.hash ?? null,
    enrolmentCodeExpiresAt: enrolment?.expiresAt ?? null,
    createdAt: now,
    updatedAt: now,
  };
  await insertUser(deps.db, user);
  await recordChange(
    deps.db,
    by,
    { action: 'user.create', target: id, details: { username, admin: input.isAdmin, with_totp: input.withTotp } },
    now,
  );
  return factor.secret === null
    ? { id: user.id, username, ...factor.enrolment.shown }
    : { id: user.id, username, totp_uri: authenticatorUri(deps, factor.secret, username) };
}

export async function userNamed(db: Db, username: string): Promise<User> {
  const user = await findUserByUsername(db, normaliseUsername(username));
  if (!user) throw notFound(`no user named ${username}`);
  return user;
}

/** The user as stored now, after a change to it. */
async function reread(db: Db, user: User): Promise<User> {
  const fresh = await findUserById(db, user.id);
  if (!fresh) throw notFound(`no user named ${user.username}`);
  return fresh;
}

/** A person by account id (the admin API's path names them so: a username may be reused after deletion). */
export async function userById(db: Db, id: string): Promise<User> {
  const user = /^[\w-]{1,64}$/.test(id) ? await findUserById(db, id) : undefined;
  if (!user) throw notFound(`no person with id ${id}`);
  return user;
}

/** A person as the CLI and the admin API show them. */
export async function describeUserById(deps: AccountDeps, id: string) {
  return describeUser(await userById(deps.db, id), deps.now());
}

/**
 * A page of people by username (`search`: part of the username or id), for the admin API and
 * console: `cursor` is the `next` of the page before (keyset on username).
 */
export async function userPage(deps: AccountDeps, options: { search?: string; cursor?: string; limit?: number }) {
  const limit = pageSize(options.limit);
  const after = options.cursor === undefined ? undefined : decodeCursor(options.cursor, ['string'] as const)[0];
  const search = options.search?.trim() || undefined;
  if (search !== undefined && search.length > 200) throw invalidInput('search is longer than 200 characters');
  const now = deps.now();
  const rows = await listUsersPage(deps.db, { search, after, limit: limit + 1 });
  return pageOf(
    rows,
    limit,
    (user) => [user.username],
    (user) => describeUser(user, now),
  );
}

/** How many people have an account (for the admin console's overview). */
export { countUsers };

export async function listAllUsers(deps: AccountDeps) {
  const now = deps.now();
  return (await listUsers(deps.db)).map((user) => describeUser(user, now));
}

export async function unlockUser(deps: AccountDeps, username: string, by: AuditBy) {
  const user = await userNamed(deps.db, username);
  await updateUser(deps.db, user.id, { lock: UNLOCKED }, deps.now());
  await recordChange(deps.db, by, { action: 'user.unlock', target: user.id, details: { username: user.username } });
  return describeUser(await reread(deps.db, user), deps.now());
}

/**
 * The old authenticator and recovery codes stop working at once; the person enrols a new one
 * at their next login with the enrolment code printed here (and only here).
 */
export async function resetTotp(deps: AccountDeps, username: string, by: AuditBy) {
  const user = await userNamed(deps.db, username);
  const now = deps.now();
  const enrolment = issueEnrolmentCode(now);
  await resetAuthenticator(deps.db, user.id, enrolment.hash, enrolment.expiresAt, now);
  await recordChange(deps.db, by, { action: 'user.reset_totp', target: user.id, details: { username: user.username } }, now);
  return { ...describeUser(await reread(deps.db, user), now), ...enrolment.shown };
}

export async function disableUser(deps: AccountDeps, username: string, by: AuditBy) {
  const user = await userNamed(deps.db, username);
  await updateUser(deps.db, user.id, { status: 'disabled' }, deps.now());
  await deleteAccountGrants(deps.db, user.id); // sessions, grants and tokens: signed out everywhere, now
  await recordChange(deps.db, by, { action: 'user.disable', target: user.id, details: { username: user.username } });
  return describeUser(await reread(deps.db, user), deps.now());
}

/** The reverse of disableUser: the person may log in again; nothing deleted at disabling comes back. */
export async function enableUser(deps: AccountDeps, username: string, by: AuditBy) {
  const user = await userNamed(deps.db, username);
  await updateUser(deps.db, user.id, { status: 'active' }, deps.now());
  await recordChange(deps.db, by, { action: 'user.enable', target: user.id, details: { username: user.username } });
  return describeUser(await reread(deps.db, user), deps.now());
}

/**
 * An operator sets a new password (after a compromise, or a forgotten one), under the rules of
 * createUser. Everyone signed in as the person is signed out (setPasswordHash), so an attacker who
 * had the old password loses their sessions and tokens too.
 */
export async function setPassword(deps: AccountDeps, username: string, password: string, by: AuditBy) {
  const user = await userNamed(deps.db, username);
  const problem = await passwordProblem(password, { admin: user.isAdmin, userInputs: [user.username] });
  if (problem) throw invalidInput(problem);
  if (await checkPassword(password, user.passwordHash)) throw invalidInput('the new password is the current one: choose another');
  if (!(await setPasswordHash(deps.db, user.id, await hashPassword(password), deps.now()))) throw notFound(`no user named ${username}`);
  await recordChange(deps.db, by, { action: 'user.set_password', target: user.id, details: { username: user.username } });
  return { ...describeUser(await reread(deps.db, user), deps.now()), signed_out: true };
}

/** The account a session or token names, if it may still be used. */
export async function findActiveUser(db: Db, id: string): Promise<User | undefined> {
  const user = await findUserById(db, id);
  return user?.status === 'active' ? user : undefined;
}

/** A refusal names the account (for the log, never the page) when there is one, and a fresh lock. */
/** `unreadable`: the stored secret does not open (a wrong KEK, or a value moved from another row). */
export type Outcome =
  | { ok: true; user: User }
  | {
      ok: false;
      accountId?: string;
      /** this refusal locked the account */
      lockedNow?: boolean;
      /** the account is locked: by this refusal, or it already was (the log says which refusals were locks) */
      locked?: boolean;
      unreadable?: boolean;
    };
export type Refusal = Extract<Outcome, { ok: false }>;

/** Counts the failure in SQL (nothing is counted on a locked or disabled account). */
async function failed(deps: AccountDeps, userId: string, kind: FailureKind): Promise<Refusal> {
  const { lockedUntil } = await recordFailure(deps.db, userId, kind, deps.now(), DEFAULT_LOCK_POLICY);
  return { ok: false, accountId: userId, lockedNow: lockedUntil !== null, locked: lockedUntil !== null };
}

/**
 * First factor. Unknown user, disabled user, locked account and wrong password all give the
 * same answer after the same work (one argon2id), so none of them can be told apart. Whether
 * the account may log in is decided after the hash, in the statement that records the outcome:
 * a lock set while the hash ran holds. A right password under an old hash (scrypt) is rehashed.
 */
export async function authenticatePassword(deps: AccountDeps, username: string, password: string): Promise<Outcome> {
  const name = normaliseUsername(username);
  const user = USERNAME_PATTERN.test(name) ? await findUserByUsername(deps.db, name) : undefined;
  const matches = await checkPassword(password.slice(0, MAX_PASSWORD_LENGTH), user?.passwordHash);
  if (!user) return { ok: false };
  const lockedBefore = isLocked(user.lock.lockedUntil, deps.now());
  if (!matches) {
    const refusal = await failed(deps, user.id, 'password'); // counts nothing on a locked account
    return lockedBefore ? { ...refusal, locked: true } : refusal;
  }
  if (!(await recordPasswordSuccess(deps.db, user.id, deps.now()))) return { ok: false, accountId: user.id, locked: lockedBefore };
  if (needsRehash(user.passwordHash))
    await replacePasswordHash(deps.db, user.id, user.passwordHash, await hashPassword(password.slice(0, MAX_PASSWORD_LENGTH)));
  return { ok: true, user };
}

/** The fresh user row, if it may continue a login (not disabled, not locked meanwhile), and whether it is locked. */
async function loginable(deps: AccountDeps, userId: string): Promise<{ user?: User; locked: boolean }> {
  const user = await findActiveUser(deps.db, userId);
  const locked = user !== undefined && isLocked(user.lock.lockedUntil, deps.now());
  return { user: locked ? undefined : user, locked };
}

export async function verifyTotp(deps: AccountDeps, userId: string, code: string): Promise<Outcome> {
  const { user, locked } = await loginable(deps, userId);
  if (!user || user.totpSecret === null) return { ok: false, accountId: userId, locked };
  let secret: string;
  try {
    secret = deps.keyring.open(user.totpSecret, totpSecretContext(user.id));
  } catch (error) {
    if (error instanceof KekError) return { ok: false, accountId: user.id, unreadable: true };
    throw error;
  }
  const check = checkTotp(secret, code, deps.now(), user.totpLastStep);
  if (check.ok && (await recordTotpSuccess(deps.db, user.id, user.totpSecret, check.step, deps.now()))) return { ok: true, user };
  return failed(deps, user.id, 'second_factor');
}

export async function verifyRecoveryCode(deps: AccountDeps, userId: string, code: string): Promise<Outcome> {
  const { user, locked } = await loginable(deps, userId);
  if (!user || user.totpSecret === null) return { ok: false, accountId: userId, locked };
  if (code.length <= 64 && (await recordRecoverySuccess(deps.db, user.id, hashOneTimeCode(code), deps.now()))) return { ok: true, user };
  return failed(deps, user.id, 'second_factor');
}

/**
 * First step of enrolment: the one-time code from the operator. Checked, not spent (it is spent
 * when the authenticator is bound); a wrong or expired code is a failed second factor.
 * Returns the code's hash to be checked again at binding.
 */
export async function checkEnrolmentCode(
  deps: AccountDeps,
  userId: string,
  code: string,
): Promise<{ ok: true; codeHash: string } | Refusal> {
  const { user, locked } = await loginable(deps, userId);
  if (!user || user.totpSecret !== null) return { ok: false, accountId: userId, locked };
  const codeHash = hashOneTimeCode(code.slice(0, 64));
  // a comparison of SHA-256 digests of an 80-bit code: its timing tells nothing usable
  const valid = user.enrolmentCodeHash !== null && user.enrolmentCodeHash === codeHash && (user.enrolmentCodeExpiresAt ?? 0) > deps.now();
  return valid ? { ok: true, codeHash } : failed(deps, user.id, 'second_factor');
}

/** A new secret for enrolment, sealed to the login (interaction) it is offered in until confirmed. */
export function offerTotpSecret(deps: AccountDeps, interactionUid: string): { secret: string; sealed: string } {
  const secret = newTotpSecret();
  return { secret, sealed: deps.keyring.seal(secret, pendingSecretContext(interactionUid)) };
}

export function enrolmentUri(
  deps: AccountDeps,
  pending: { sealedSecret: string; interactionUid: string },
  username: string,
): { secret: string; uri: string } {
  const secret = deps.keyring.open(pending.sealedSecret, pendingSecretContext(pending.interactionUid));
  return { secret, uri: authenticatorUri(deps, secret, username) };
}

/**
 * Confirms enrolment with a current code from the new authenticator: binds the secret and spends
 * the enrolment code in one statement (user.store.ts `bindAuthenticator`), and returns fresh
 * recovery codes (only their hashes are kept: this is the one time they exist).
 */
export async function confirmEnrolment(
  deps: AccountDeps,
  userId: string,
  pending: { sealedSecret: string; interactionUid: string; enrolmentCodeHash: string },
  code: string,
): Promise<{ ok: true; user: User; recoveryCodes: string[] } | Refusal> {
  const { user, locked } = await loginable(deps, userId);
  if (!user || user.totpSecret !== null) return { ok: false, accountId: userId, locked };
  const secret = deps.keyring.open(pending.sealedSecret, pendingSecretContext(pending.interactionUid));
  const check = checkTotp(secret, code, deps.now(), null);
  if (!check.ok) return failed(deps, user.id, 'second_factor');
  const recoveryCodes = newRecoveryCodes();
  const bound = await bindAuthenticator(
    deps.db,
    user.id,
    {
      // sealed anew for the person's row: the login's copy does not open there
      sealedSecret: deps.keyring.seal(secret, totpSecretContext(user.id)),
      step: check.step,
      enrolmentCodeHash: pending.enrolmentCodeHash,
      recoveryCodeHashes: recoveryCodes.map(hashOneTimeCode),
    },
    deps.now(),
  );
  // not bound: the code was spent by another login, reissued, expired, or the account locked
  return bound ? { ok: true, user, recoveryCodes } : failed(deps, user.id, 'second_factor');
}

/** The account a finished enrolment continues with, if it may still log in now. */
export async function continuingUser(deps: AccountDeps, userId: string): Promise<User | undefined> {
  return (await loginable(deps, userId)).user;
}

/** A person's TOTP secret opens only in their own row. */
export function totpSecretContext(userId: string): SealContext {
  return { purpose: 'totp secret', table: 'users', row: userId };
}

/** A secret offered during enrolment opens only for the login it was offered in. */
function pendingSecretContext(interactionUid: string): SealContext {
  return { purpose: 'offered totp secret', table: 'login_states', row: interactionUid };
}

/**
 * Re-seals TOTP secrets under the first KEK (part of `keys rewrap`); `onlyLegacy`: only those in
 * the old format (start-up). All open before any is written; each write is a compare-and-swap.
 * Secrets offered in logins under way are short-lived: old-format ones are dropped (that person
 * starts enrolment again), current ones are re-sealed.
 */
export async function rewrapTotpSecrets(db: Db, keyring: Keyring, options: { onlyLegacy?: boolean } = {}): Promise<number> {
  const rows = await listSealedTotpSecrets(db, { onlyLegacy: options.onlyLegacy ?? false });
  const plain = rows.map((row) => keyring.open(row.sealed, totpSecretContext(row.id), { legacy: true }));
  let rewrapped = 0;
  for (const [i, row] of rows.entries()) {
    if (await swapTotpSecret(db, row.id, row.sealed, keyring.seal(plain[i], totpSecretContext(row.id)))) rewrapped += 1;
  }
  return rewrapped;
}
