import { randomBytes } from 'node:crypto';
import { recordChange, type AuditBy } from '../audit/audit.service.ts';
import type { Db } from '../db/knex.ts';
import { isLegacySealed, type Keyring, type SealContext } from './kek.ts';
import { findSharedSecret, insertSharedSecretIfAbsent, listSharedSecrets, swapSealedSecret, type SharedSecretRow } from './shared-secret.store.ts';

const NAME = 'cookie_keys';

/** A shared secret is bound to its row (its name). */
function sharedSecretContext(name: string): SealContext {
  return { purpose: name, table: 'shared_secrets', row: name };
}

/**
 * The keys that sign oidc-provider's cookies (first signs, all verify), kept in the database
 * sealed under the KEK. The first instance to start makes them; every other one reads the
 * same row, so a login begun on one instance finishes on another. Unlike a key derived from
 * the KEK, they survive a KEK rotation (`keys rewrap` only re-seals them).
 */
export async function loadCookieKeys(db: Db, keyring: Keyring, now: number = Date.now()): Promise<string[]> {
  let row = await findSharedSecret(db, NAME);
  if (!row) {
    const fresh = [randomBytes(32).toString('base64url')];
    await insertSharedSecretIfAbsent(db, { name: NAME, sealed: keyring.seal(JSON.stringify(fresh), sharedSecretContext(NAME)), created_at: now });
    row = await findSharedSecret(db, NAME);
    if (!row) throw new Error('cookie keys vanished right after they were stored');
  }
  return openCookieKeys(row, keyring);
}

function openCookieKeys(row: SharedSecretRow, keyring: Keyring): string[] {
  const keys = JSON.parse(keyring.open(row.sealed, sharedSecretContext(row.name))) as unknown;
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((key) => typeof key === 'string')) throw new Error('stored cookie keys are malformed');
  return keys;
}

/**
 * Keys kept after a rotation: the new one signs, the previous ones still verify. A cookie signed
 * by a key that has dropped off the end is refused (the person signs in again), so rotate no
 * more often than a session lives (24 h) to keep people signed in.
 */
export const COOKIE_KEYS_KEPT = 3;

/**
 * Puts a new cookie-signing key first. A compare-and-swap on the sealed row: two rotations
 * racing both land, one after the other. Running instances pick it up at their next key poll.
 */
export async function rotateCookieKeys(
  db: Db,
  keyring: Keyring,
  by: AuditBy,
  now: number = Date.now(),
): Promise<{ cookie_keys: number; verifying_only: number }> {
  await loadCookieKeys(db, keyring, now); // made on first use, like at start-up
  for (let attempt = 0; attempt < 10; attempt += 1) {
    const row = await findSharedSecret(db, NAME);
    if (!row) break;
    const keys = [randomBytes(32).toString('base64url'), ...openCookieKeys(row, keyring)].slice(0, COOKIE_KEYS_KEPT);
    if (await swapSealedSecret(db, NAME, row.sealed, keyring.seal(JSON.stringify(keys), sharedSecretContext(NAME)))) {
      await recordChange(db, by, { action: 'keys.rotate_cookie_keys', target: NAME }, now);
      return { cookie_keys: keys.length, verifying_only: keys.length - 1 };
    }
  }
  throw new Error('the cookie keys kept changing during this rotation: try again');
}

/**
 * Re-seals shared secrets under the first KEK and the current format (part of `keys rewrap`);
 * `onlyLegacy`: only those in the old format (start-up). All open before any is written.
 */
export async function rewrapSharedSecrets(db: Db, keyring: Keyring, options: { onlyLegacy?: boolean } = {}): Promise<number> {
  const rows = (await listSharedSecrets(db)).filter((row) => !options.onlyLegacy || isLegacySealed(row.sealed));
  const plain = rows.map((row) => keyring.open(row.sealed, sharedSecretContext(row.name), { legacy: true }));
  let rewrapped = 0;
  for (const [i, row] of rows.entries()) {
    if (await swapSealedSecret(db, row.name, row.sealed, keyring.seal(plain[i], sharedSecretContext(row.name)))) rewrapped += 1;
  }
  return rewrapped;
}
