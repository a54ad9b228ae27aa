import { randomBytes } from 'node:crypto';
import type { Db } from '../db/knex.ts';
import type { Keyring } from './kek.ts';
import { findSharedSecret, insertSharedSecretIfAbsent, listSharedSecrets, replaceSealedSecret } from './shared-secret.store.ts';

const NAME = 'cookie_keys';

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
    await insertSharedSecretIfAbsent(db, { name: NAME, sealed: keyring.seal(JSON.stringify(fresh)), created_at: now });
    row = await findSharedSecret(db, NAME);
    if (!row) throw new Error('cookie keys vanished right after they were stored');
  }
  const keys = JSON.parse(keyring.open(row.sealed)) as unknown;
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((key) => typeof key === 'string')) throw new Error('stored cookie keys are malformed');
  return keys;
}

/** Re-seals every shared secret under the first KEK (part of `keys rewrap`). */
export async function rewrapSharedSecrets(db: Db, keyring: Keyring): Promise<number> {
  const rows = await listSharedSecrets(db);
  for (const row of rows) await replaceSealedSecret(db, row.name, keyring.seal(keyring.open(row.sealed)));
  return rows.length;
}
