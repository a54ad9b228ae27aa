import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createKeyring, deriveKey, KekError, loadKekTexts } from '../../src/keys/kek.ts';

const A = Buffer.alloc(32, 0xa).toString('base64url');
const B = Buffer.alloc(32, 0xb).toString('base64url');

describe('KEK keyring (AES-256-GCM)', () => {
  test('seal/open round trip; ciphertext is randomised and names its KEK', () => {
    const ring = createKeyring([A]);
    const one = ring.seal('private key material');
    const two = ring.seal('private key material');
    expect(one).not.toBe(two);
    expect(one).not.toContain('private');
    expect(one.split('.')[1]).toBe(ring.keks[0].id);
    expect(ring.open(one)).toBe('private key material');
  });

  test('the first KEK encrypts, any configured KEK decrypts', () => {
    const old = createKeyring([A]).seal('x');
    const rotated = createKeyring([B, A]);
    expect(rotated.open(old)).toBe('x');
    expect(rotated.seal('y').split('.')[1]).toBe(createKeyring([B]).keks[0].id);
  });

  test('an unknown KEK, a wrong KEK or tampering fail with a clear error', () => {
    const sealed = createKeyring([A]).seal('x');
    expect(() => createKeyring([B]).open(sealed)).toThrow(/not configured/);
    const parts = sealed.split('.');
    parts[3] = Buffer.from('tampered!').toString('base64url');
    expect(() => createKeyring([A]).open(parts.join('.'))).toThrow(KekError);
    expect(() => createKeyring([A]).open('garbage')).toThrow(/malformed/);
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
