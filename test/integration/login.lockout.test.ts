import { randomBytes, scryptSync } from 'node:crypto';
import { DEFAULT_LOCK_POLICY, lockPeriod, type FailureKind } from '../../src/accounts/lockout.policy.ts';
import { verifyPassword } from '../../src/accounts/password.service.ts';
import { recordFailure } from '../../src/accounts/user.store.ts';
import { cli, createCodePartner, freshDatabaseUrl, instanceEnv, seedPartner, tempDir } from '../support/harness.ts';
import { openLogin } from '../support/http-login.ts';
import { LOGIN_LIMITS_OFF, startInProcess, type InProcessServer } from '../support/in-process.ts';
import { codeFor, createUser, secretOf } from '../support/login.ts';

/**
 * Lockout and the per-login cap under concurrency, through the real HTTP login (the server in
 * process, on SQLite, or with PORTCULLIS_TEST_PG on PostgreSQL): the counters are single SQL
 * statements, so parallel attempts cannot lose a count nor undo a lock.
 */
const PASSWORD = 'correct horse battery staple';
const REDIRECT = 'http://127.0.0.1:9/callback';

let server: InProcessServer;
let base: string;
let clientId: string;

beforeAll(async () => {
  const dir = tempDir();
  server = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir), LOGIN_LIMITS_OFF));
  base = `http://127.0.0.1:${server.env.PORT}`;
  await seedPartner(server.env);
  const partner = await createCodePartner(server.env, REDIRECT);
  clientId = partner.clientId;
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

async function userWithTotp(username: string): Promise<string> {
  const created = await createUser(server.env, username, PASSWORD, '--with-totp');
  if (created.code !== 0) throw new Error(created.stderr);
  return secretOf(created.json.totp_uri);
}

async function row(username: string) {
  const found = await server.db('users').where({ username }).first();
  return { ...found, locked_until: found.locked_until === null ? null : Number(found.locked_until) };
}

/** A code the authenticator does not show now, nor one or two steps either side. */
function wrongCode(secret: string): string {
  const near = new Set([-2, -1, 0, 1, 2].map((steps) => codeFor(secret, steps)));
  for (let n = 1; ; n += 1) {
    const code = String((Number(codeFor(secret)) + 104_729 * n) % 1_000_000).padStart(6, '0');
    if (!near.has(code)) return code;
  }
}

/** A login with the password given: its second-factor step is next. */
async function atSecondFactor(username: string) {
  const login = await openLogin(base, clientId, REDIRECT);
  const answer = await login.post('login', { username, password: PASSWORD });
  expect(answer.res.status).toBe(303);
  return login;
}

describe('the account lock is counted in SQL', () => {
  test('30 wrong TOTP codes in parallel (10 logins x 3) lock the account; the right code is then refused', async () => {
    const secret = await userWithTotp('ruth');
    const logins = await Promise.all(Array.from({ length: 11 }, () => atSecondFactor('ruth')));
    const spare = logins.pop()!;
    const wrong = wrongCode(secret);
    const answers = await Promise.all(logins.flatMap((login) => [1, 2, 3].map(() => login.post('otp', { code: wrong }))));
    expect(answers.map((a) => a.res.status)).toEqual(Array(30).fill(401));

    const locked = await row('ruth');
    expect(locked.locked_until).toBeGreaterThan(Date.now() + 29 * 60_000); // the 30-minute lock is set
    expect(locked.lock_count).toBe(1); // the threshold was reached once: one lock, not one per straggler
    expect(server.logs().match(/"account":"[^"]+","client_id":"[^"]+","msg":"account locked"/g)?.length ?? 0).toBe(1);
    expect(server.logs()).toMatch(new RegExp(`"step":"totp","account":"${locked.id}"`));

    const right = await spare.post('otp', { code: codeFor(secret) });
    expect(right.res.status).toBe(401);
    expect(right.text).toContain('That code is not valid');
    expect((await row('ruth')).locked_until).toBe(locked.locked_until);
  });

  test('a slow correct password racing five wrong codes leaves the account locked', async () => {
    const secret = await userWithTotp('sam');
    const [first, second] = [await atSecondFactor('sam'), await atSecondFactor('sam')];
    // a right password whose check takes long: a costly hash of it (scrypt p=8, as an old row could hold)
    const salt = randomBytes(16);
    const slowHash = `scrypt$N=32768,r=8,p=8$${salt.toString('base64url')}$${scryptSync(PASSWORD, salt, 32, { N: 32768, r: 8, p: 8, maxmem: 256 * 1024 * 1024 }).toString('base64url')}`;
    await server.db('users').where({ username: 'sam' }).update({ password_hash: slowHash });

    const racer = await openLogin(base, clientId, REDIRECT);
    let passwordAnsweredAt = 0;
    const password = racer.post('login', { username: 'sam', password: PASSWORD }).then((answer) => {
      passwordAnsweredAt = performance.now();
      return answer;
    });
    const wrong = wrongCode(secret);
    for (const login of [first, first, first, second, second]) expect((await login.post('otp', { code: wrong })).res.status).toBe(401);
    const lockedAt = performance.now();
    const locked = await row('sam');
    expect(locked.locked_until).toBeGreaterThan(Date.now());

    const answer = await password;
    // the race really happened: the lock came while the password was being checked
    expect(lockedAt).toBeLessThan(passwordAnsweredAt);
    expect(answer.res.status).toBe(401);
    expect(answer.text).toContain('Invalid username or password.');
    const after = await row('sam');
    expect(after.locked_until).toBe(locked.locked_until);
    expect(after.lock_count).toBe(1);
  });

  test('a correct password on a locked account is refused and counts nothing; unlock clears the lock', async () => {
    await userWithTotp('tina');
    for (let i = 0; i < 5; i++) {
      const login = await openLogin(base, clientId, REDIRECT);
      expect((await login.post('login', { username: 'tina', password: `not the password ${i}` })).res.status).toBe(401);
    }
    const locked = await row('tina');
    expect(locked.locked_until - Date.now()).toBeGreaterThan(29 * 60_000);
    expect(locked.locked_until - Date.now()).toBeLessThanOrEqual(30 * 60_000);
    const login = await openLogin(base, clientId, REDIRECT);
    expect((await login.post('login', { username: 'tina', password: PASSWORD })).res.status).toBe(401);
    expect(await row('tina')).toEqual(expect.objectContaining({ failed_passwords: 0, lock_count: 1, locked_until: locked.locked_until }));
    expect((await cli(server.env, 'user', 'unlock', 'tina')).json.locked_until).toBeNull();
    expect((await login.post('login', { username: 'tina', password: PASSWORD })).res.status).toBe(303);
  });
});

test('the lock period is computed in SQL: a password lock stays at 30 minutes, a second-factor lock doubles up to 24 hours', async () => {
  await userWithTotp('xena');
  const { id } = await row('xena');
  const at = Date.now();
  const minutesLocked = async (kind: FailureKind, priorLocks: number) => {
    await server
      .db('users')
      .where({ id })
      .update({ lock_count: priorLocks, locked_until: null, failed_passwords: 0, failed_second_factors: 0 });
    for (let i = 1; i < DEFAULT_LOCK_POLICY.threshold; i++)
      expect(await recordFailure(server.db, id, kind, at, DEFAULT_LOCK_POLICY)).toEqual({ lockedUntil: null });
    const { lockedUntil } = await recordFailure(server.db, id, kind, at, DEFAULT_LOCK_POLICY);
    const after = await row('xena');
    expect(after.lock_count).toBe(priorLocks + 1);
    expect(after[kind === 'password' ? 'failed_passwords' : 'failed_second_factors']).toBe(0); // the lock starts the count again
    // while locked nothing more is counted
    expect(await recordFailure(server.db, id, kind, at + 1, DEFAULT_LOCK_POLICY)).toEqual({ lockedUntil: null });
    expect((await row('xena')).lock_count).toBe(priorLocks + 1);
    return (lockedUntil! - at) / 60_000;
  };
  for (const prior of [0, 1, 3]) expect(await minutesLocked('password', prior)).toBe(30);
  for (const prior of [0, 1, 2, 5, 6, 7, 40]) {
    expect(await minutesLocked('second_factor', prior)).toBe(lockPeriod('second_factor', prior) / 60_000);
  }
  expect(await minutesLocked('second_factor', 2)).toBe(120);
  expect(await minutesLocked('second_factor', 40)).toBe(24 * 60);
});

describe('each step of a login takes three codes', () => {
  test('ten wrong codes posted at once to one login: three are checked, the login ends, the password is asked again', async () => {
    const secret = await userWithTotp('uma');
    const login = await atSecondFactor('uma');
    const wrong = wrongCode(secret);
    const answers = await Promise.all(Array.from({ length: 10 }, () => login.post('otp', { code: wrong })));
    expect(answers.every((a) => a.res.status === 401 || a.res.status === 409)).toBe(true);
    expect(answers.some((a) => a.text.includes('Too many wrong codes. Sign in again'))).toBe(true);
    // only the three checked codes count against the account
    expect(await row('uma')).toEqual(expect.objectContaining({ failed_second_factors: 3, locked_until: null }));
    expect(await login.page()).toContain('<h1>Sign in</h1>');
    expect((await login.post('otp', { code: codeFor(secret) })).res.status).toBe(409);

    // the password again, then the right code
    expect((await login.post('login', { username: 'uma', password: PASSWORD })).res.status).toBe(303);
    const done = await login.post('otp', { code: codeFor(secret) });
    expect(done.res.status).toBe(303);
    expect(await row('uma')).toEqual(expect.objectContaining({ failed_second_factors: 0, lock_count: 0 }));
  });

  test('one by one: two wrong codes leave the login open, the third ends it', async () => {
    const secret = await userWithTotp('vic');
    const login = await atSecondFactor('vic');
    const wrong = wrongCode(secret);
    for (let i = 0; i < 2; i++) {
      const answer = await login.post('otp', { code: wrong });
      expect(answer.text).toContain('That code is not valid');
      expect(answer.text).toContain('<h1>Two-step verification</h1>');
    }
    const third = await login.post('recovery', { recovery_code: 'aaaa-bbbb-cccc-dddd' });
    expect(third.res.status).toBe(401);
    expect(third.text).toContain('<h1>Sign in</h1>');
    expect(third.text).toContain('Too many wrong codes');
    expect(server.logs()).toMatch(/"msg":"login ended: too many wrong codes"/);
  });
});

describe('password hashes move to argon2id', () => {
  test('a scrypt hash is rehashed at the next right password, once, even with logins racing', async () => {
    await userWithTotp('walt');
    const salt = randomBytes(16);
    const legacy = `scrypt$N=32768,r=8,p=1$${salt.toString('base64url')}$${scryptSync(PASSWORD, salt, 32, { N: 32768, r: 8, p: 1, maxmem: 64 * 1024 * 1024 }).toString('base64url')}`;
    await server.db('users').where({ username: 'walt' }).update({ password_hash: legacy });

    const wrong = await openLogin(base, clientId, REDIRECT);
    expect((await wrong.post('login', { username: 'walt', password: 'not the password' })).res.status).toBe(401);
    expect((await row('walt')).password_hash).toBe(legacy);

    const logins = await Promise.all(Array.from({ length: 20 }, () => openLogin(base, clientId, REDIRECT)));
    const answers = await Promise.all(logins.map((login) => login.post('login', { username: 'walt', password: PASSWORD })));
    expect(answers.map((a) => a.res.status)).toEqual(Array(20).fill(303));
    const stored = (await row('walt')).password_hash as string;
    expect(stored).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(await verifyPassword(PASSWORD, stored)).toBe(true);
    // the next login checks the argon2id hash and leaves it alone
    const next = await openLogin(base, clientId, REDIRECT);
    expect((await next.post('login', { username: 'walt', password: PASSWORD })).res.status).toBe(303);
    expect((await row('walt')).password_hash).toBe(stored);
  });
});
