import { recordChange, type AuditBy } from '../audit/audit.service.ts';
import { KekError, type SealContext } from '../keys/kek.ts';
import { AppError, invalidInput, notFound } from '../shared/errors.ts';
import { sha256Base64url } from '../shared/hashing.ts';
import { DEFAULT_LOCK_POLICY, isLocked } from './lockout.policy.ts';
import { checkPassword, hashPassword, MAX_PASSWORD_LENGTH, passwordProblem } from './password.service.ts';
import { checkTotp, hashOneTimeCode, newRecoveryCodes, newTotpSecret } from './totp.service.ts';
import { authenticatorUri, findActiveUser, totpSecretContext, verifyTotp, type AccountDeps, type Refusal } from './user.service.ts';
import { changePasswordHash, recordFailure, replaceRecoveryCodes, replaceTotpSecret, type User } from './user.store.ts';

/**
 * What a signed-in person changes about their own account (`/account`): password, authenticator,
 * recovery codes. Each proof asked for (the current password, a current code) is checked and
 * counted as at sign-in: a wrong one counts toward the lockout (user.store.ts `recordFailure`),
 * a right code's step is spent. Every change is audited with the session's `by`.
 */

/** How long a new authenticator, offered after the current code checked out, waits for its first code. */
const REPLACEMENT_TTL_MS = 10 * 60_000;

const changedMeanwhile = (what: string) =>
  new AppError('conflict', `${what} was changed meanwhile (in another window?). Reload the page and try again.`, { status: 409 });

async function activeUser(deps: AccountDeps, userId: string): Promise<User> {
  const user = await findActiveUser(deps.db, userId);
  if (!user) throw notFound('no such account');
  return user;
}

/**
 * A stamp of the password as a form showed it, sent back with the form: a change made from a
 * form shown before another change of the password is refused as "changed meanwhile", before any
 * check, so neither counts as a wrong password. It tells nothing about the password.
 */
export function passwordStamp(user: User): string {
  return sha256Base64url(`password stamp ${user.passwordHash}`).slice(0, 22);
}

/**
 * The person sets a new password, giving the current one, under the rules of `user create`. The
 * new one is checked first (nothing about the current one is learnt from those answers); a wrong
 * current password counts as a failed sign-in (and locks the account as sign-in failures do). The
 * change itself is a compare-and-swap on the hash checked: of several at once, one wins.
 */
export async function changeOwnPassword(
  deps: AccountDeps,
  userId: string,
  input: { stamp: string; current: string; next: string; repeat: string },
  by: AuditBy,
): Promise<{ ok: true } | Refusal> {
  const user = await activeUser(deps, userId);
  if (input.stamp !== passwordStamp(user)) throw changedMeanwhile('Your password');
  if (!input.current) throw invalidInput('Enter your current password.');
  if (input.next !== input.repeat) throw invalidInput('The two new passwords are not the same.');
  const problem = await passwordProblem(input.next, { admin: user.isAdmin, userInputs: [user.username] });
  if (problem) throw invalidInput(problem);
  const matches = await checkPassword(input.current.slice(0, MAX_PASSWORD_LENGTH), user.passwordHash);
  const now = deps.now();
  const lockedBefore = isLocked(user.lock.lockedUntil, now);
  if (!matches) {
    const { lockedUntil } = await recordFailure(deps.db, user.id, 'password', now, DEFAULT_LOCK_POLICY);
    return { ok: false, accountId: user.id, lockedNow: lockedUntil !== null, locked: lockedBefore || lockedUntil !== null };
  }
  if (lockedBefore) return { ok: false, accountId: user.id, locked: true };
  if (input.next === input.current) throw invalidInput('The new password is the current one: choose another.');
  if (!(await changePasswordHash(deps.db, user.id, user.passwordHash, await hashPassword(input.next), deps.now())))
    throw changedMeanwhile('Your password');
  await recordChange(deps.db, by, { action: 'user.change_password', target: user.id, details: { username: user.username, self: true } });
  return { ok: true };
}

type Pending = { secret: string; expiresAt: number; previous: string };

/** A new secret offered to this person in this console session only (`binding`: the session's CSRF token). */
function pendingContext(userId: string, binding: string): SealContext {
  return { purpose: 'replacement totp secret', table: 'users', row: `${userId}/${sha256Base64url(binding)}` };
}

function openPending(deps: AccountDeps, userId: string, binding: string, sealed: string): Pending | undefined {
  if (sealed.length > 1024) return undefined;
  try {
    const pending = JSON.parse(deps.keyring.open(sealed, pendingContext(userId, binding))) as Pending;
    return pending.expiresAt > deps.now() ? pending : undefined;
  } catch (error) {
    if (error instanceof KekError || error instanceof SyntaxError) return undefined;
    throw error;
  }
}

/** The new authenticator as the page shows it: the secret (text and `otpauth:` URI). */
export type OfferedAuthenticator = Readonly<{ secret: string; uri: string; sealed: string }>;

/**
 * Replacing the authenticator, first step: a current code of the one bound now (its step is
 * spent; a wrong one counts toward the lockout). Then a new secret is offered, sealed for this
 * session and REPLACEMENT_TTL_MS, and tied to the authenticator it replaces.
 */
export async function offerReplacementAuthenticator(
  deps: AccountDeps,
  userId: string,
  code: string,
  binding: string,
): Promise<({ ok: true } & OfferedAuthenticator) | Refusal> {
  const outcome = await verifyTotp(deps, userId, code.slice(0, 64));
  if (!outcome.ok) return outcome;
  const { user } = outcome;
  if (user.totpSecret === null) return { ok: false, accountId: user.id };
  const secret = newTotpSecret();
  const pending: Pending = { secret, expiresAt: deps.now() + REPLACEMENT_TTL_MS, previous: sha256Base64url(user.totpSecret) };
  const sealed = deps.keyring.seal(JSON.stringify(pending), pendingContext(user.id, binding));
  return { ok: true, secret, uri: authenticatorUri(deps, secret, user.username), sealed };
}

/** The authenticator offered by `offerReplacementAuthenticator`, to show again; undefined once expired or not this session's. */
export async function offeredAuthenticator(
  deps: AccountDeps,
  userId: string,
  sealed: string,
  binding: string,
): Promise<OfferedAuthenticator | undefined> {
  const pending = openPending(deps, userId, binding, sealed);
  if (!pending) return undefined;
  const user = await activeUser(deps, userId);
  return { secret: pending.secret, uri: authenticatorUri(deps, pending.secret, user.username), sealed };
}

/**
 * Replacing the authenticator, second step: a code of the new one binds it, in one statement that
 * swaps the secret only if the one replaced is still bound (a second confirmation of the same
 * offer, or one made after another replacement, changes nothing). That code's step is spent.
 */
export async function confirmReplacementAuthenticator(
  deps: AccountDeps,
  userId: string,
  input: { sealed: string; code: string; binding: string },
  by: AuditBy,
): Promise<{ ok: true } | { ok: false; reason: 'expired' | 'code' }> {
  const pending = openPending(deps, userId, input.binding, input.sealed);
  if (!pending) return { ok: false, reason: 'expired' };
  const user = await activeUser(deps, userId);
  if (user.totpSecret === null || sha256Base64url(user.totpSecret) !== pending.previous) throw changedMeanwhile('Your authenticator');
  const check = checkTotp(pending.secret, input.code, deps.now(), null);
  if (!check.ok) return { ok: false, reason: 'code' };
  const sealed = deps.keyring.seal(pending.secret, totpSecretContext(user.id));
  if (!(await replaceTotpSecret(deps.db, user.id, user.totpSecret, sealed, check.step, deps.now())))
    throw changedMeanwhile('Your authenticator');
  await recordChange(deps.db, by, { action: 'user.replace_totp', target: user.id, details: { username: user.username, self: true } });
  return { ok: true };
}

/**
 * New recovery codes for a current code (its step spent; a wrong one counts toward the lockout):
 * the old codes stop working, the new ones are returned once (only their hashes are kept).
 */
export async function renewRecoveryCodes(
  deps: AccountDeps,
  userId: string,
  code: string,
  by: AuditBy,
): Promise<{ ok: true; codes: string[] } | Refusal> {
  const outcome = await verifyTotp(deps, userId, code.slice(0, 64));
  if (!outcome.ok) return outcome;
  const { user } = outcome;
  const codes = newRecoveryCodes();
  if (user.totpSecret === null || !(await replaceRecoveryCodes(deps.db, user.id, user.totpSecret, codes.map(hashOneTimeCode), deps.now())))
    throw changedMeanwhile('Your authenticator');
  await recordChange(deps.db, by, { action: 'user.new_recovery_codes', target: user.id, details: { username: user.username, self: true } });
  return { ok: true, codes };
}
