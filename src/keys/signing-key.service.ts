import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Db } from '../db/knex.ts';
import type { Keyring } from './kek.ts';
import { insertKey, listKeys, type SigningKeyRow } from './signing-key.store.ts';

export const ALG = 'ES256';

export type SigningJwk = JWK & { kid: string; alg: 'ES256'; use: 'sig' };

/** What the provider is built with: the signer first, then every other published key. */
export type KeySet = Readonly<{ signingKid: string; keys: readonly SigningJwk[]; version: string }>;

export async function generateRow(keyring: Keyring, slot: number, activatesAt: number, now: number): Promise<SigningKeyRow> {
  const { privateKey, publicKey } = await generateKeyPair(ALG, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk, 'sha256');
  const privateJwk = await exportJWK(privateKey);
  return {
    kid,
    alg: ALG,
    public_jwk: JSON.stringify({ ...publicJwk, kid, alg: ALG, use: 'sig' }),
    private_jwk: keyring.seal(JSON.stringify(privateJwk)),
    rotation_slot: slot,
    created_at: now,
    activates_at: activatesAt,
    retires_at: null,
    removed_at: null,
    revoked_at: null,
  };
}

/** The first start makes the first key (slot 0); instances racing here still make one. */
export async function ensureInitialKey(db: Db, keyring: Keyring, now: number = Date.now()): Promise<void> {
  const rows = await listKeys(db);
  if (rows.some((row) => row.revoked_at === null)) return;
  await insertKey(db, await generateRow(keyring, 0, now, now));
}

export function isPublished(row: SigningKeyRow, at: number): boolean {
  return row.revoked_at === null && (row.removed_at === null || row.removed_at > at);
}

/** Newest key whose activation has come, among the published ones. */
export function pickSigner(rows: readonly SigningKeyRow[], at: number): SigningKeyRow | undefined {
  return rows
    .filter((row) => isPublished(row, at) && row.activates_at <= at)
    .sort((a, b) => b.activates_at - a.activates_at || b.rotation_slot - a.rotation_slot)[0];
}

export async function loadKeySet(db: Db, keyring: Keyring, at: number = Date.now()): Promise<KeySet> {
  const rows = await listKeys(db);
  const signer = pickSigner(rows, at);
  if (!signer) throw new Error('no signing key is active: run `portcullis keys list` to inspect');
  const published = rows.filter((row) => isPublished(row, at) && row !== signer);
  const keys = [signer, ...published].map((row): SigningJwk => ({
    ...(JSON.parse(keyring.open(row.private_jwk)) as JWK),
    kid: row.kid,
    alg: ALG,
    use: 'sig',
  }));
  const version = [signer, ...published].map((row) => row.kid).join(',');
  return Object.freeze({ signingKid: signer.kid, keys, version });
}
