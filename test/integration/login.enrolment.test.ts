import { randomBytes } from 'node:crypto';
import { cli, createCodePartner, freshDatabaseUrl, instanceEnv, seedPartner, tempDir } from '../support/harness.ts';
import { httpLogin, openLogin } from '../support/http-login.ts';
import { LOGIN_LIMITS_OFF, startInProcess, type InProcessServer } from '../support/in-process.ts';
import { codeFor, createUser, secretOf } from '../support/login.ts';

/**
 * Enrolment needs the one-time code an operator hands over out of band: whoever has only the
 * password sees no secret and binds nothing. Through the real HTTP login, on SQLite or, with
 * PORTCULLIS_TEST_PG, PostgreSQL.
 */
const PASSWORD = 'correct horse battery staple';
const REDIRECT = 'http://127.0.0.1:9/callback';

let server: InProcessServer;
let base: string;
let clientId: string;

async function partnerFor(env: Record<string, string>): Promise<string> {
  await seedPartner(env);
  const partner = await createCodePartner(env, REDIRECT);
  return partner.clientId;
}

beforeAll(async () => {
  const dir = tempDir();
  server = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir), LOGIN_LIMITS_OFF));
  base = `http://127.0.0.1:${server.env.PORT}`;
  clientId = await partnerFor(server.env);
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

async function row(username: string) {
  return server.db('users').where({ username }).first();
}

/** A person created without an authenticator, and the enrolment code the CLI printed for them. */
async function newPerson(username: string): Promise<string> {
  const created = await createUser(server.env, username, PASSWORD);
  if (created.code !== 0) throw new Error(created.stderr);
  return created.json.enrolment_code;
}

async function passwordGiven(username: string) {
  const login = await openLogin(base, clientId, REDIRECT);
  expect((await login.post('login', { username, password: PASSWORD })).res.status).toBe(303);
  return login;
}

const SECRET_SHOWN = /otpauth|<img src="data:|id="secret"/;
const secretOn = (html: string) => /<code id="secret">([^<]+)<\/code>/.exec(html)![1].replace(/\s+/g, '');

describe('enrolment needs the enrolment code', () => {
  test('the password alone shows no secret and binds nothing; wrong and expired codes count as failed second factors', async () => {
    const code = await newPerson('xavier');
    const login = await passwordGiven('xavier');
    const page = await login.page();
    expect(page).toContain('<h1>Set up your authenticator</h1>');
    expect(page).toMatch(/<label for="enrolment_code">Enrolment code<\/label>\s*<input id="enrolment_code"/);
    expect(page).not.toMatch(SECRET_SHOWN);
    // the confirmation form cannot be posted before the enrolment code
    expect((await login.post('enrol', { code: '123456' })).res.status).toBe(409);

    const wrong = await login.post('enrol-code', { enrolment_code: 'aaaa-bbbb-cccc-dddd' });
    expect(wrong.res.status).toBe(401);
    expect(wrong.text).toContain('That enrolment code is not valid or has expired.');
    expect(wrong.text).not.toMatch(SECRET_SHOWN);
    expect((await row('xavier')).failed_second_factors).toBe(1);

    await server
      .db('users')
      .where({ username: 'xavier' })
      .update({ enrolment_code_expires_at: Date.now() - 1 });
    const expired = await login.post('enrol-code', { enrolment_code: code });
    expect(expired.res.status).toBe(401);
    expect(expired.text).not.toMatch(SECRET_SHOWN);
    expect((await row('xavier')).failed_second_factors).toBe(2);
    await server
      .db('users')
      .where({ username: 'xavier' })
      .update({ enrolment_code_expires_at: Date.now() + 3600_000 });

    // the third code of this step ends the login, right or wrong: the password again
    const login2 = await passwordGiven('xavier');
    // typed as people type it: capitals and spaces
    expect((await login2.post('enrol-code', { enrolment_code: ` ${code.toUpperCase().replaceAll('-', ' ')} ` })).res.status).toBe(303);
    const shown = await login2.page();
    expect(shown).toContain('<h1>Connect your authenticator</h1>');
    const secret = secretOn(shown);
    expect((await row('xavier')).totp_secret).toBeNull(); // shown, not bound

    const confirmed = await login2.post('enrol', { code: codeFor(secret) });
    expect(confirmed.res.status).toBe(200);
    expect(confirmed.text).toContain('<h1>Save your recovery codes</h1>');
    expect(await row('xavier')).toEqual(
      expect.objectContaining({
        totp_secret: expect.stringMatching(/^v2\./),
        enrolment_code_hash: null,
        enrolment_code_expires_at: null,
        failed_second_factors: 0,
      }),
    );
    const done = await login2.post('continue', {});
    expect(done.res.status).toBe(303);
    // from now on a login asks for the authenticator's code
    const next = await passwordGiven('xavier');
    expect(await next.page()).toContain('<h1>Two-step verification</h1>');
    expect((await next.post('otp', { code: codeFor(secret, 1) })).res.status).toBe(303);
  });

  test('a whole first login, browser-less: password, enrolment code, new authenticator, recovery codes, consent', async () => {
    const enrolmentCode = await newPerson('wanda');
    const authorizationUrl = new URL(
      `${base}/auth?${new URLSearchParams({
        client_id: clientId,
        response_type: 'code',
        redirect_uri: REDIRECT,
        scope: 'openid payments:read',
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
        code_challenge_method: 'S256',
      })}`,
    );
    const result = await httpLogin({
      authorizationUrl,
      redirectUri: REDIRECT,
      username: 'wanda',
      password: PASSWORD,
      code: () => '000000',
      enrolmentCode,
    });
    expect(result.pages).toEqual([
      'Sign in',
      'Set up your authenticator',
      'Connect your authenticator',
      'Save your recovery codes',
      'Allow Acme Budgeting?',
    ]);
    expect(result.callback.searchParams.get('code')).toEqual(expect.any(String));
    expect(result.recoveryCodes).toHaveLength(10);
    expect((await row('wanda')).totp_secret).toMatch(/^v2\./);
    // without the code, the same walk stops at the enrolment page
    await newPerson('wendy');
    await expect(
      httpLogin({ authorizationUrl, redirectUri: REDIRECT, username: 'wendy', password: PASSWORD, code: () => '000000' }),
    ).rejects.toThrow(/wendy must enrol: no enrolmentCode given/);
  });

  test('the enrolment code is stored only as a hash', async () => {
    const code = await newPerson('yusuf');
    const stored = await row('yusuf');
    expect(stored.enrolment_code_hash).toMatch(/^[\w-]{43}$/);
    expect(JSON.stringify(stored)).not.toContain(code.replaceAll('-', ''));
    expect(JSON.stringify(stored)).not.toContain(code);
  });

  test('one enrolment code, twenty logins confirming at once: one authenticator is bound', async () => {
    const code = await newPerson('yara');
    const logins = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const login = await passwordGiven('yara');
        expect((await login.post('enrol-code', { enrolment_code: code })).res.status).toBe(303);
        return { login, secret: secretOn(await login.page()) };
      }),
    );
    expect(new Set(logins.map((l) => l.secret)).size).toBe(20); // a secret of its own for each login
    const answers = await Promise.all(logins.map(({ login, secret }) => login.post('enrol', { code: codeFor(secret) })));
    const won = answers.filter((a) => a.res.status === 200 && a.text.includes('Save your recovery codes'));
    expect(won).toHaveLength(1);
    expect(answers.filter((a) => a.res.status === 401)).toHaveLength(19);
    const winner = logins[answers.findIndex((a) => a.res.status === 200)];
    expect((await row('yara')).enrolment_code_hash).toBeNull();

    // each loser counted as a wrong enrolment code, so the account may be locked now: an operator clears it
    expect((await cli(server.env, 'user', 'unlock', 'yara')).code).toBe(0);
    // the winner's authenticator is the bound one; a loser's is not
    const withWinner = await passwordGiven('yara');
    expect((await withWinner.post('otp', { code: codeFor(winner.secret, 1) })).res.status).toBe(303);
    const loser = logins.find((l) => l !== winner)!;
    const withLoser = await passwordGiven('yara');
    expect((await withLoser.post('otp', { code: codeFor(loser.secret, 1) })).res.status).toBe(401);
    // 22 real argon2id hashes on low-priority threads and 20 QR codes: on a loaded two-core
    // machine this takes longer than Jest's default 30 s (a limit on the run, not an assertion)
  }, 90_000);

  test('reset-totp prints a new code: the old authenticator stops working, the new code enrols', async () => {
    const created = await createUser(server.env, 'zoe', PASSWORD, '--with-totp');
    const oldSecret = secretOf(created.json.totp_uri);
    const reset = await cli(server.env, 'user', 'reset-totp', 'zoe');
    expect(reset.code).toBe(0);
    expect(reset.json.enrolment_code).toMatch(/^[a-z2-9]{4}(-[a-z2-9]{4}){3}$/);
    const login = await passwordGiven('zoe');
    expect(await login.page()).toContain('<h1>Set up your authenticator</h1>');
    expect((await login.post('otp', { code: codeFor(oldSecret) })).res.status).toBe(409);
    expect((await login.post('enrol-code', { enrolment_code: reset.json.enrolment_code })).res.status).toBe(303);
    // a second reset replaces the code: the one given before no longer binds
    const again = await cli(server.env, 'user', 'reset-totp', 'zoe');
    const secret = secretOn(await login.page());
    expect((await login.post('enrol', { code: codeFor(secret) })).res.status).toBe(401);
    const fresh = await passwordGiven('zoe');
    expect((await fresh.post('enrol-code', { enrolment_code: again.json.enrolment_code })).res.status).toBe(303);
    expect((await fresh.post('enrol', { code: codeFor(secretOn(await fresh.page())) })).res.status).toBe(200);
  });
});

describe('login forms across a KEK rotation', () => {
  test('a form made under KEK A still posts when the keyring becomes [B, A]; a form made then is made under B', async () => {
    const [kekA, kekB] = [randomBytes(32).toString('base64url'), randomBytes(32).toString('base64url')];
    const dir = tempDir();
    const url = freshDatabaseUrl(dir);
    const first = await startInProcess(instanceEnv(dir, url, { PORTCULLIS_KEK: kekA }));
    const port = first.env.PORT;
    let second: InProcessServer | undefined;
    try {
      const partner = await partnerFor(first.env);
      await createUser(first.env, 'ada', PASSWORD, '--with-totp');
      const halfFilled = await openLogin(`http://127.0.0.1:${port}`, partner, REDIRECT);
      await first.stop();

      second = await startInProcess(instanceEnv(dir, url, { PORTCULLIS_KEK: `${kekB},${kekA}`, PORT: port }));
      expect((await halfFilled.post('login', { username: 'ada', password: PASSWORD })).res.status).toBe(303);
      // new forms carry a token under B, the first KEK: valid here, but not for a server that has only A
      const fresh = await openLogin(`http://127.0.0.1:${port}`, partner, REDIRECT);
      expect(fresh.csrf).not.toBe(halfFilled.csrf);
      expect((await fresh.post('login', { username: 'ada', password: PASSWORD })).res.status).toBe(303);
      const other = await openLogin(`http://127.0.0.1:${port}`, partner, REDIRECT);
      await second.stop();
      second = await startInProcess(instanceEnv(dir, url, { PORTCULLIS_KEK: kekA, PORT: port }));
      expect((await other.post('login', { username: 'ada', password: PASSWORD })).res.status).toBe(403);
    } finally {
      await first.stop();
      await second?.stop();
    }
  });
});
