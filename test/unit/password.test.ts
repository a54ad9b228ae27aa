import { randomBytes, scryptSync } from 'node:crypto';
import {
  checkPassword,
  DEFAULT_PARAMS,
  describeHash,
  DUMMY_HASH,
  hashPassword,
  needsRehash,
  passwordProblem,
  verifyPassword,
} from '../../src/accounts/password.service.ts';

const FAST = { memoryKiB: 1024, passes: 2, parallelism: 1 };

/** A hash as the scrypt era stored it. */
function scryptHash(password: string, N = 2 ** 10): string {
  const salt = randomBytes(16);
  const key = scryptSync(password.normalize('NFKC'), salt, 32, { N, r: 8, p: 1 });
  return `scrypt$N=${N},r=8,p=1$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

describe('password hashing (argon2id)', () => {
  test('OWASP parameters by default, in a PHC string with a per-user salt', async () => {
    expect(DEFAULT_PARAMS).toEqual({ memoryKiB: 19_456, passes: 2, parallelism: 1 });
    expect(describeHash()).toBe('argon2id m=19456 KiB, t=2, p=1');
    const a = await hashPassword('correct horse battery');
    const b = await hashPassword('correct horse battery');
    expect(a).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(a).not.toBe(b); // different salts
    expect(await verifyPassword('correct horse battery', a)).toBe(true);
    expect(await verifyPassword('correct horse batterY', a)).toBe(false);
    expect(needsRehash(a)).toBe(false);
  });

  test('verifies with the parameters stored in the hash, not the current defaults', async () => {
    const old = await hashPassword('an older password', FAST);
    expect(old).toContain('$m=1024,t=2,p=1$');
    expect(await verifyPassword('an older password', old)).toBe(true);
    expect(needsRehash(old)).toBe(true); // weaker than today's setting
  });

  test('scrypt hashes of the earlier releases still verify, and are marked for rehashing', async () => {
    const legacy = scryptHash('a password from before');
    expect(await verifyPassword('a password from before', legacy)).toBe(true);
    expect(await verifyPassword('a password from after', legacy)).toBe(false);
    expect(needsRehash(legacy)).toBe(true);
  });

  test('refuses malformed hashes and parameters that would stall the server', async () => {
    expect(await verifyPassword('x', 'plain')).toBe(false);
    expect(await verifyPassword('x', 'scrypt$N=4194304,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAA')).toBe(false);
    const salt = 'A'.repeat(22);
    const tag = 'A'.repeat(43);
    expect(await verifyPassword('x', `$argon2id$v=19$m=4194304,t=2,p=1$${salt}$${tag}`)).toBe(false);
    expect(await verifyPassword('x', `$argon2id$v=19$m=19456,t=1000,p=1$${salt}$${tag}`)).toBe(false);
    expect(await verifyPassword('x', `$argon2i$v=19$m=19456,t=2,p=1$${salt}$${tag}`)).toBe(false);
    expect(await verifyPassword('x', `$argon2id$v=19$m=19456,t=2,p=1$${salt}$`)).toBe(false);
  });

  test('an unknown user is checked against a dummy argon2id hash at the same setting, and never matches', async () => {
    const known = await hashPassword('secret password', FAST);
    expect(await checkPassword('secret password', known)).toBe(true);
    expect(await checkPassword('secret password', undefined)).toBe(false);
    // same work as a real user's check: the dummy is a well-formed hash at today's parameters
    expect(DUMMY_HASH).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(needsRehash(DUMMY_HASH)).toBe(false);
  });
});

describe('password rules', () => {
  test('length: 10 characters, 12 for an administrator (PCI DSS 8.3.6), at most 1024', async () => {
    expect(await passwordProblem('short')).toMatch(/at least 10 characters$/);
    expect(await passwordProblem('x'.repeat(1025))).toMatch(/at most 1024/);
    expect(await passwordProblem('calm otter 7', { admin: true })).toBeUndefined();
    expect(await passwordProblem('calm otter!', { admin: true })).toMatch(
      /at least 12 characters for an administrator \(PCI DSS 8\.3\.6\)/,
    );
  });

  test('strength: zxcvbn must score 3 of 4; the message is one line and says why', async () => {
    const weak = await passwordProblem('password1234');
    expect(weak).toMatch(
      /^the password is too easy to guess \(strength \d of 4, 3 needed\): This is similar to a commonly used password\./,
    );
    expect(weak).not.toContain('\n');
    expect(await passwordProblem('qwertyuiop12')).toMatch(/too easy to guess/);
    expect(await passwordProblem('correct horse battery staple')).toBeUndefined();
    expect(await passwordProblem('long enough password')).toBeUndefined();
  });

  test('the username counts as known to an attacker', async () => {
    expect(await passwordProblem('kestrelwhisk42', { userInputs: [] })).toBeUndefined();
    expect(await passwordProblem('kestrelwhisk42', { userInputs: ['kestrelwhisk'] })).toMatch(/too easy to guess.*personal/);
  });
});
