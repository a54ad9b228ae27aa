import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createCipheriv, randomBytes } from 'node:crypto';
import { createKeyring, deriveKey, isLegacySealed, KekError, loadKekTexts } from '../../src/keys/kek.ts';

const A = Buffer.alloc(32, 0xa).toString('base64url');
const B = Buffer.alloc(32, 0xb).toString('base64url');

describe('KEK keyring (AES-256-GCM)', () => {
  const HERE = { purpose: 'totp secret', table: 'users', row: 'usr_1' };

  test('seal/open round trip; ciphertext is randomised and names its KEK', () => {
    const ring = createKeyring([A]);
    const one = ring.seal('private key material', HERE);
    const two = ring.seal('private key material', HERE);
    expect(one).not.toBe(two);
    expect(one).not.toContain('private');
    expect(one.split('.')[0]).toBe('v2');
    expect(one.split('.')[1]).toBe(ring.keks[0].id);
    expect(ring.open(one, HERE)).toBe('private key material');
  });

  test('the first KEK encrypts, any configured KEK decrypts', () => {
    const old = createKeyring([A]).seal('x', HERE);
    const rotated = createKeyring([B, A]);
    expect(rotated.open(old, HERE)).toBe('x');
    expect(rotated.seal('y', HERE).split('.')[1]).toBe(createKeyring([B]).keks[0].id);
  });

  test('a value moved to another row, table or purpose does not open', () => {
    const ring = createKeyring([A]);
    const sealed = ring.seal('JBSWY3DPEHPK3PXP', HERE);
    expect(() => ring.open(sealed, { ...HERE, row: 'usr_2' })).toThrow(/moved from another row/);
    expect(() => ring.open(sealed, { ...HERE, table: 'login_states' })).toThrow(KekError);
    expect(() => ring.open(sealed, { ...HERE, purpose: 'signing key' })).toThrow(KekError);
  });

  test('the IV must be 12 bytes and the tag 16 (a truncated tag is refused)', () => {
    const ring = createKeyring([A]);
    const parts = ring.seal('x', HERE).split('.');
    const shortTag = [...parts.slice(0, 4), Buffer.from(parts[4], 'base64url').subarray(0, 4).toString('base64url')].join('.');
    expect(() => ring.open(shortTag, HERE)).toThrow(/tag length/);
    const longIv = [parts[0], parts[1], Buffer.alloc(16).toString('base64url'), parts[3], parts[4]].join('.');
    expect(() => ring.open(longIv, HERE)).toThrow(/IV or tag length/);
  });

  test('old-format (v1) values open only where the caller allows them', () => {
    // v1 as sealed before: the KEK id alone as additional data
    const kek = createKeyring([A]).keks[0];
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', kek.key, iv);
    cipher.setAAD(Buffer.from(kek.id));
    const body = Buffer.concat([cipher.update('legacy', 'utf8'), cipher.final()]);
    const v1 = ['v1', kek.id, iv.toString('base64url'), body.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
    expect(isLegacySealed(v1)).toBe(true);
    expect(() => createKeyring([A]).open(v1, HERE)).toThrow(/keys rewrap/);
    expect(createKeyring([A]).open(v1, HERE, { legacy: true })).toBe('legacy');
  });

  test('an unknown KEK, a wrong KEK or tampering fail with a clear error', () => {
    const sealed = createKeyring([A]).seal('x', HERE);
    expect(() => createKeyring([B]).open(sealed, HERE)).toThrow(/not configured/);
    const parts = sealed.split('.');
    parts[3] = Buffer.from('tampered!').toString('base64url');
    expect(() => createKeyring([A]).open(parts.join('.'), HERE)).toThrow(KekError);
    expect(() => createKeyring([A]).open('garbage', HERE)).toThrow(/malformed/);
  });

  test('derived keys are stable per KEK and purpose', () => {
    expect(deriveKey(createKeyring([A]), 'cookie')).toBe(deriveKey(createKeyring([A, B]), 'cookie'));
    expect(deriveKey(createKeyring([A]), 'cookie')).not.toBe(deriveKey(createKeyring([B]), 'cookie'));
    expect(deriveKey(createKeyring([A]), 'cookie')).not.toBe(deriveKey(createKeyring([A]), 'other'));
  });
});

describe('loadKekTexts', () => {
  const dir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'kek-'));

  test('creates a 0600 file on first start and reuses it after', () => {
    const keysDir = path.join(dir(), 'keys');
    const first = loadKekTexts({ kekList: undefined, keysDir, mayCreate: true });
    expect(first.created).toBe(true);
    expect(fs.statSync(path.join(keysDir, 'kek')).mode & 0o777).toBe(0o600);
    const again = loadKekTexts({ kekList: undefined, keysDir, mayCreate: true });
    expect(again).toEqual({ texts: first.texts, created: false });
  });

  test('refuses to invent a KEK when sealed keys exist', () => {
    expect(() => loadKekTexts({ kekList: undefined, keysDir: path.join(dir(), 'keys'), mayCreate: false })).toThrow(/missing/);
  });

  test('PORTCULLIS_KEK wins over the file; a corrupt file is an error', () => {
    expect(loadKekTexts({ kekList: [A], keysDir: '/nonexistent', mayCreate: false }).texts).toEqual([A]);
    const keysDir = dir();
    fs.writeFileSync(path.join(keysDir, 'kek'), 'not a key');
    expect(() => loadKekTexts({ kekList: undefined, keysDir, mayCreate: true })).toThrow(/base64url/);
  });
});
