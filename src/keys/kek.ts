import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { sha256Base64url } from '../shared/hashing.ts';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Key-encryption keys. Secrets at rest are sealed with AES-256-GCM under the first KEK; any
 * configured KEK opens them, so the KEK itself can rotate (add the new one first, rewrap, drop
 * the old). Sealed text: `v2.<kek id>.<iv>.<ciphertext>.<tag>`, all base64url, with a 12-byte
 * IV and a 16-byte tag (both enforced on open). The additional authenticated data binds the
 * value to where it lives (purpose, table, row id): a sealed TOTP secret copied into another
 * person's row, or a signing key into another kid, does not open.
 *
 * `v1` values (sealed before the binding existed: only the KEK id as AAD) open only where the
 * caller says so (`legacy: true`), which is what `keys rewrap` and the start-up upgrade do.
 */
export type Kek = Readonly<{ id: string; key: Buffer }>;

/** Where a sealed value lives; part of its authenticated data. */
export type SealContext = Readonly<{ purpose: string; table: string; row: string }>;

export type Keyring = Readonly<{
  keks: readonly Kek[];
  seal(plain: string, context: SealContext): string;
  open(sealed: string, context: SealContext, options?: { legacy?: boolean }): string;
}>;

export class KekError extends Error {}

const IV_BYTES = 12;
const TAG_BYTES = 16;

export function kekId(key: Buffer): string {
  return sha256Base64url(key).slice(0, 8);
}

function toKek(text: string): Kek {
  const key = Buffer.from(text, 'base64url');
  if (key.length !== 32) throw new KekError('a key-encryption key must be 32 bytes (base64url)');
  return { id: kekId(key), key };
}

function aad(version: string, kek: string, context: SealContext): Buffer {
  if (version === 'v1') return Buffer.from(kek);
  return Buffer.from(JSON.stringify(['portcullis', version, kek, context.purpose, context.table, context.row]));
}

/** A value sealed before values were bound to their row: `keys rewrap` (or start-up) re-seals it. */
export function isLegacySealed(sealed: string): boolean {
  return sealed.startsWith('v1.');
}

export function createKeyring(texts: readonly string[]): Keyring {
  if (texts.length === 0) throw new KekError('no key-encryption key configured');
  const keks = texts.map(toKek);
  return Object.freeze({
    keks,
    seal(plain: string, context: SealContext): string {
      const { id, key } = keks[0];
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
      cipher.setAAD(aad('v2', id, context));
      const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return ['v2', id, iv.toString('base64url'), body.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
    },
    open(sealed: string, context: SealContext, options: { legacy?: boolean } = {}): string {
      const parts = sealed.split('.');
      const [version, id, ivText, body, tagText] = parts;
      if (parts.length !== 5 || (version !== 'v2' && version !== 'v1')) throw new KekError(`sealed ${context.purpose} is malformed`);
      if (version === 'v1' && !options.legacy) {
        throw new KekError(`${context.purpose} in ${context.table} is sealed in the old format (v1): run \`portcullis keys rewrap\``);
      }
      const iv = Buffer.from(ivText, 'base64url');
      const tag = Buffer.from(tagText, 'base64url');
      if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw new KekError(`sealed ${context.purpose} is malformed (IV or tag length)`);
      const kek = keks.find((candidate) => candidate.id === id);
      if (!kek) throw new KekError(`sealed under key-encryption key ${id}, which is not configured (KEYS_DIR / PORTCULLIS_KEK)`);
      try {
        const decipher = createDecipheriv('aes-256-gcm', kek.key, iv, { authTagLength: TAG_BYTES });
        decipher.setAAD(aad(version, id, context));
        decipher.setAuthTag(tag);
        return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
      } catch {
        throw new KekError(`cannot decrypt ${context.purpose} with key-encryption key ${id}: wrong key, tampered value, or a value moved from another row`);
      }
    },
  });
}

/**
 * Derives a stable secondary key (e.g. the rate limits' username HMAC) from the first KEK, so
 * instances sharing it agree. Cookie-signing keys are not derived: they are stored, sealed
 * (cookie-key.service.ts), so a KEK rotation signs nobody out.
 */
export function deriveKey(keyring: Keyring, purpose: string): string {
  return derive(keyring.keks[0], purpose);
}

/** The same derivation under every configured KEK, the first KEK's first (make with it, accept any). */
export function deriveKeys(keyring: Keyring, purpose: string): string[] {
  return keyring.keks.map((kek) => derive(kek, purpose));
}

function derive(kek: Kek, purpose: string): string {
  return Buffer.from(hkdfSync('sha256', kek.key, Buffer.alloc(0), `portcullis ${purpose}`, 32)).toString('base64url');
}

export const KEK_FILE = 'kek';

/**
 * The configured KEKs: PORTCULLIS_KEK when set, else `KEYS_DIR/kek`. The file is created only
 * when `mayCreate` says nothing is sealed yet: a lost KEK must never be silently replaced.
 */
export function loadKekTexts(options: { kekList: readonly string[] | undefined; keysDir: string; mayCreate: boolean }): { texts: string[]; created: boolean } {
  if (options.kekList) return { texts: [...options.kekList], created: false };
  const file = path.join(options.keysDir, KEK_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new KekError(`cannot read ${file}: ${(error as Error).message}`);
    if (!options.mayCreate) {
      throw new KekError(`${file} is missing but the database holds keys sealed under a KEK: restore the file or set PORTCULLIS_KEK`);
    }
    fs.mkdirSync(options.keysDir, { recursive: true, mode: 0o700 });
    const fresh = randomBytes(32).toString('base64url');
    try {
      fs.writeFileSync(file, `${fresh}\n`, { mode: 0o600, flag: 'wx' });
    } catch (raced) {
      // another process starting at the same moment wrote it first: use theirs
      if ((raced as NodeJS.ErrnoException).code === 'EEXIST') return loadKekTexts({ ...options, mayCreate: false });
      throw new KekError(`cannot write ${file}: ${(raced as Error).message}`);
    }
    return { texts: [fresh], created: true };
  }
  const texts = text.split(/[\s,]+/).filter(Boolean);
  for (const item of texts) {
    if (!/^[A-Za-z0-9_-]{43}$/.test(item)) throw new KekError(`${file} does not hold a base64url 32-byte key`);
  }
  if (texts.length === 0) throw new KekError(`${file} is empty`);
  return { texts, created: false };
}
