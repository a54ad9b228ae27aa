import { checkPassword, hashPassword, passwordProblem, verifyPassword } from '../../src/accounts/password.service.ts';

const FAST = { N: 2 ** 10, r: 8, p: 1 };

describe('password hashing (scrypt)', () => {
  test('stores the parameters and a per-user salt with the hash', async () => {
    const a = await hashPassword('correct horse battery', FAST);
    const b = await hashPassword('correct horse battery', FAST);
    expect(a).toMatch(/^scrypt\$N=1024,r=8,p=1\$[\w-]{22}\$[\w-]{43}$/);
    expect(a).not.toBe(b); // different salts
    expect(await verifyPassword('correct horse battery', a)).toBe(true);
    expect(await verifyPassword('correct horse batterY', a)).toBe(false);
  });

  test('verifies with the parameters stored in the hash, not the current defaults', async () => {
    const old = await hashPassword('an older password', { N: 2 ** 11, r: 4, p: 1 });
    expect(await verifyPassword('an older password', old)).toBe(true);
  });

  test('refuses malformed hashes and parameters that would stall the server', async () => {
    expect(await verifyPassword('x', 'plain')).toBe(false);
    expect(await verifyPassword('x', 'scrypt$N=4194304,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAA')).toBe(false);
  });

  test('an unknown user costs one scrypt too (dummy hash) and never matches', async () => {
    const known = await hashPassword('secret password', FAST);
    expect(await checkPassword('secret password', known)).toBe(true);
    expect(await checkPassword('secret password', undefined)).toBe(false);
    // both paths run scrypt at default cost: the unknown path is not measurably faster
    const real = await hashPassword('secret password');
    const time = async (stored: string | undefined) => {
      const started = process.hrtime.bigint();
      for (let i = 0; i < 3; i++) await checkPassword('wrong password', stored);
      return Number(process.hrtime.bigint() - started) / 3e6;
    };
    await time(undefined); // build the dummy hash once
    const unknownMs = await time(undefined);
    const knownMs = await time(real);
    expect(unknownMs).toBeGreaterThan(knownMs * 0.5);
    expect(unknownMs).toBeLessThan(knownMs * 2);
  });

  test('length rules', () => {
    expect(passwordProblem('short')).toMatch(/at least 10/);
    expect(passwordProblem('x'.repeat(1025))).toMatch(/at most 1024/);
    expect(passwordProblem('long enough password')).toBeUndefined();
  });
});
