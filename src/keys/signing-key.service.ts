import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Config } from '../config/config.ts';
import { recordChange, type AuditBy } from '../audit/audit.service.ts';
import type { Db } from '../db/knex.ts';
import { invalidInput, notFound } from '../shared/errors.ts';
import { isLegacySealed, type Keyring, type SealContext } from './kek.ts';
import { isPublished, planKeys, publishedAt, signerAt, signsUntil, stateAt, type RotationPolicy } from './signing-key.lifecycle.ts';
import { findKey, insertKey, listKeys, markRevoked, replaceSealedKey, setRetirement, type SigningKeyRow } from './signing-key.store.ts';

export const ALG = 'ES256';

/** Keys the server makes on its schedule are its own doing. */
const BY_SYSTEM: AuditBy = { actor: { type: 'system' } };

export type SigningJwk = JWK & { kid: string; alg: 'ES256'; use: 'sig' };

/** What the provider is built with: the signer first, then every other published key. */
export type KeySet = Readonly<{ signingKid: string; keys: readonly SigningJwk[]; version: string; /** when the signer began signing (epoch ms): /metrics reports its age */ signingSince: number }>;

export function rotationPolicy(keys: Config['keys']): RotationPolicy {
  return Object.freeze({
    intervalMs: keys.rotationIntervalSeconds * 1000,
    prepublishMs: keys.prepublishSeconds * 1000,
    retainMs: keys.retainSeconds * 1000,
    graceMs: keys.pollIntervalSeconds * 1000,
  });
}

/** A private key is bound to its own row: sealed under one kid, it does not open under another. */
export function signingKeyContext(kid: string): SealContext {
  return { purpose: 'signing key', table: 'signing_keys', row: kid };
}

export async function generateRow(keyring: Keyring, slot: number, activatesAt: number, now: number): Promise<SigningKeyRow> {
  const { privateKey, publicKey } = await generateKeyPair(ALG, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk, 'sha256');
  const privateJwk = await exportJWK(privateKey);
  return {
    kid,
    alg: ALG,
    public_jwk: JSON.stringify({ ...publicJwk, kid, alg: ALG, use: 'sig' }),
    private_jwk: keyring.seal(JSON.stringify(privateJwk), signingKeyContext(kid)),
    rotation_slot: slot,
    created_at: now,
    activates_at: activatesAt,
    retires_at: null,
    removed_at: null,
    revoked_at: null,
  };
}

/**
 * Opens every stored key. Run before anything new is sealed, so a wrong KEK stops the process
 * with a KekError instead of quietly adding a key that the right KEK could not open.
 */
export function checkKeyring(rows: readonly SigningKeyRow[], keyring: Keyring): void {
  for (const row of rows) keyring.open(row.private_jwk, signingKeyContext(row.kid));
}

/**
 * Brings the rows up to date at `now` (see planKeys): creates the first, next or replacement
 * key and writes retirement times. Idempotent, and safe for any number of racing instances.
 */
export async function maintainKeys(db: Db, keyring: Keyring, policy: RotationPolicy, now: number = Date.now()): Promise<SigningKeyRow[]> {
  let rows = await listKeys(db);
  let plan = planKeys(rows, now, policy);
  if (plan.create) {
    checkKeyring(rows, keyring);
    const row = await generateRow(keyring, plan.create.slot, plan.create.activatesAt, now);
    // the instance that won the slot records it: one row per key, however many instances raced
    if (await insertKey(db, row)) {
      const details = { slot: row.rotation_slot, activates_at: new Date(row.activates_at).toISOString(), scheduled: true };
      await recordChange(db, BY_SYSTEM, { action: 'keys.create', target: row.kid, details }, now);
    }
    rows = await listKeys(db); // whoever won the slot, retirements follow from the rows as they are now
    plan = planKeys(rows, now, policy);
  }
  if (plan.retire.length === 0) return rows;
  for (const times of plan.retire) await setRetirement(db, times.kid, times);
  return listKeys(db);
}

/** The kids a key set would hold at `at`, signer first: cheap to compare on every poll. */
export function keySetVersion(rows: readonly SigningKeyRow[], at: number): string {
  return publishedAt(rows, at).map((row) => row.kid).join(',');
}

export function toKeySet(rows: readonly SigningKeyRow[], keyring: Keyring, at: number): KeySet {
  const signer = signerAt(rows, at);
  if (!signer) throw new Error('no signing key is active: run `portcullis keys list` to inspect');
  const published = publishedAt(rows, at);
  const keys = published.map((row): SigningJwk => ({
    ...(JSON.parse(keyring.open(row.private_jwk, signingKeyContext(row.kid))) as JWK),
    kid: row.kid,
    alg: ALG,
    use: 'sig',
  }));
  return Object.freeze({ signingKid: signer.kid, keys, version: keySetVersion(rows, at), signingSince: signer.activates_at });
}

export async function loadKeySet(db: Db, keyring: Keyring, at: number = Date.now()): Promise<KeySet> {
  return toKeySet(await listKeys(db), keyring, at);
}

const iso = (at: number | null) => (at === null ? null : new Date(at).toISOString());

/**
 * `keys list`: `signs_until` is when the key stops signing — its `retires_at` once the next key
 * exists, else when the rotation policy will retire it; `retires_at` stays null until then.
 */
export function describeKeys(rows: readonly SigningKeyRow[], at: number, policy: RotationPolicy) {
  return rows.map((row) => ({
    kid: row.kid,
    alg: row.alg,
    state: stateAt(row, rows, at),
    created_at: iso(row.created_at),
    activates_at: iso(row.activates_at),
    signs_until: iso(signsUntil(row, at, policy)),
    retires_at: iso(row.retires_at),
    removed_at: iso(row.removed_at),
  }));
}

/**
 * The signing keys as a timeline at `at`, for the admin API and console: each key's state
 * (next / active / retired / revoked), whether the JWKS publishes it, and its dates, in order of
 * activation; `signing` names the active key.
 */
export function keyTimeline(rows: readonly SigningKeyRow[], at: number, policy: RotationPolicy) {
  const described = describeKeys(rows, at, policy);
  const keys = rows
    .map((row, i) => ({ ...described[i], published: isPublished(row, at), revoked_at: iso(row.revoked_at) }))
    .sort((a, b) => (a.activates_at ?? '').localeCompare(b.activates_at ?? ''));
  return { at: new Date(at).toISOString(), signing: signerAt(rows, at)?.kid ?? null, keys };
}

/** The timeline of the stored keys now (keyTimeline). */
export async function loadKeyTimeline(db: Db, policy: RotationPolicy, at: number = Date.now()) {
  return keyTimeline(await listKeys(db), at, policy);
}

const SLOT_ATTEMPTS = 5;

/**
 * Adds a key now: published at once, signing after KEY_PREPUBLISH, or at once with
 * `immediately` (compromise). The period of automatic rotation restarts from its activation.
 */
export async function rotateKeys(
  db: Db,
  keyring: Keyring,
  policy: RotationPolicy,
  options: { immediately: boolean },
  by: AuditBy,
  now: number = Date.now(),
) {
  const activatesAt = options.immediately ? now : now + policy.prepublishMs;
  for (let attempt = 0; attempt < SLOT_ATTEMPTS; attempt += 1) {
    const rows = await maintainKeys(db, keyring, policy, now); // an empty table gets its first key first
    checkKeyring(rows, keyring);
    const slot = rows.reduce((max, row) => Math.max(max, row.rotation_slot), -1) + 1;
    const row = await generateRow(keyring, slot, activatesAt, now);
    // an instance creating its scheduled key may take the slot first: then take the one after
    if (await insertKey(db, row)) {
      await recordChange(db, by, { action: 'keys.rotate', target: row.kid, details: { immediately: options.immediately } }, now);
      const after = await maintainKeys(db, keyring, policy, now);
      return describeKeys(after, now, policy).find((key) => key.kid === row.kid);
    }
  }
  throw new Error(`could not claim a rotation slot in ${SLOT_ATTEMPTS} attempts`);
}

/** Takes a key out of the JWKS at once; if it was signing, a new key signs from now on. */
export async function revokeKey(db: Db, keyring: Keyring, policy: RotationPolicy, kid: string, by: AuditBy, now: number = Date.now()) {
  if (!kid.trim()) throw invalidInput('KID is required');
  if (!(await findKey(db, kid))) throw notFound(`no signing key ${kid}`);
  checkKeyring(await listKeys(db), keyring);
  await markRevoked(db, kid, now);
  await recordChange(db, by, { action: 'keys.revoke', target: kid, details: { emergency: true } }, now);
  return describeKeys(await maintainKeys(db, keyring, policy, now), now, policy);
}

/**
 * Re-seals private keys under the first KEK (and the current format), so older KEKs can then be
 * dropped. `onlyLegacy` re-seals only values in the old format (start-up does that). Every value
 * is opened before any is written: a wrong KEK changes nothing.
 */
export async function rewrapKeys(db: Db, keyring: Keyring, options: { onlyLegacy?: boolean } = {}) {
  const rows = (await listKeys(db)).filter((row) => !options.onlyLegacy || isLegacySealed(row.private_jwk));
  const plain = rows.map((row) => keyring.open(row.private_jwk, signingKeyContext(row.kid), { legacy: true }));
  let rewrapped = 0;
  for (const [i, row] of rows.entries()) {
    if (await replaceSealedKey(db, row.kid, row.private_jwk, keyring.seal(plain[i], signingKeyContext(row.kid)))) rewrapped += 1;
  }
  return { rewrapped, kek: keyring.keks[0].id };
}
