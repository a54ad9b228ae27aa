import { randomBytes } from 'node:crypto';
import { createBrowserBinding } from '../../src/interactions/browser.binding.ts';
import { createKeyring, deriveKeys } from '../../src/keys/kek.ts';

const kek = () => randomBytes(32).toString('base64url');
const binding = (...keks: string[]) => createBrowserBinding({ keys: deriveKeys(createKeyring(keks), 'login form binding'), secure: false });

describe('login-form CSRF tokens across a KEK rotation', () => {
  const [A, B, C] = [kek(), kek(), kek()];
  const uid = 'interaction-1';
  const value = randomBytes(32).toString('base64url');

  test('a token made under KEK A still validates when the keyring is [B, A]', () => {
    const token = binding(A).csrfToken(uid, value);
    expect(binding(B, A).csrfValid(uid, value, token)).toBe(true);
    expect(binding(A, B).csrfValid(uid, value, token)).toBe(true);
  });

  test('tokens are made with the first KEK: a [B, A] token is not valid where only A is configured', () => {
    const token = binding(B, A).csrfToken(uid, value);
    expect(token).toBe(binding(B).csrfToken(uid, value));
    expect(binding(A).csrfValid(uid, value, token)).toBe(false);
  });

  test('a token stays bound to its interaction, its browser value and a configured KEK', () => {
    const token = binding(A).csrfToken(uid, value);
    expect(binding(C).csrfValid(uid, value, token)).toBe(false);
    expect(binding(B, A).csrfValid('interaction-2', value, token)).toBe(false);
    expect(binding(B, A).csrfValid(uid, randomBytes(32).toString('base64url'), token)).toBe(false);
    expect(binding(B, A).csrfValid(uid, value, undefined)).toBe(false);
    expect(binding(B, A).csrfValid(uid, value, `${token}x`)).toBe(false);
  });
});
