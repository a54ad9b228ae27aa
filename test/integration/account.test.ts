import { checkPassword } from '../../src/accounts/password.service.ts';
import { totpCode } from '../../src/accounts/totp.service.ts';
import { cookieAgent } from '../support/agent.ts';
import { consoleSignIn, csrfOf } from '../support/console.ts';
import { cli, freshDatabaseUrl, instanceEnv, tempDir } from '../support/harness.ts';
import { httpLogin } from '../support/http-login.ts';
import { LOGIN_LIMITS_OFF, startInProcess, testClock, type InProcessServer } from '../support/in-process.ts';
import { createUser, secretOf } from '../support/login.ts';
import {
  codeRequest,
  introspectAs,
  PASSWORD,
  REDIRECT,
  registerApp,
  registerService,
  tokenCall,
  type App,
} from '../support/person-flow.ts';

// The person's own page over HTTP, on the engine of the run: every form needs its CSRF token,
// hostile input gets a page (never a 500), and the rules that guard identity hold under
// concurrency (one revoke of ten, one password change of ten).
//
// The sign-in limits are off here (they have their own tests, and ten password changes at once
// would count against the username); the lockout counting is on and is checked.

const API = 'https://api.bank.test/payments';
const clock = testClock();
let server: InProcessServer;
let env: Record<string, string>;
let app: App;
let introspector: App;

type Person = { username: string; password: string; secret: string; id: string; code: () => string };

/** A person with an authenticator; each `code()` is of a step not used before (the server's clock moves 30 s first). */
async function person(username: string): Promise<Person> {
  const created = await createUser(env, username, PASSWORD, '--with-totp');
  expect(created.code).toBe(0);
  const who: Person = {
    username,
    password: PASSWORD,
    secret: secretOf(created.json.totp_uri),
    id: created.json.id,
    code: () => {
      clock.advance(30_000);
      return totpCode(who.secret, clock.now());
    },
  };
  return who;
}

/** The partner app signs `who` in (consent given) and redeems the code: its tokens. */
async function partnerTokens(who: Person) {
  const { url, verifier } = codeRequest(server.url, app, { resource: API });
  const { callback } = await httpLogin({ authorizationUrl: url, redirectUri: REDIRECT, ...who });
  const tokens = await tokenCall(server.url, app, {
    grant_type: 'authorization_code',
    code: callback.searchParams.get('code')!,
    redirect_uri: REDIRECT,
    code_verifier: verifier,
  });
  expect(tokens.status).toBe(200);
  return tokens.body as { access_token: string; refresh_token: string };
}

const auditRows = async (action: string, target: string) =>
  Number((await server.db('audit_log').where({ action, target }).count({ n: '*' }))[0].n);

beforeAll(async () => {
  const dir = tempDir();
  env = instanceEnv(dir, freshDatabaseUrl(dir), { ...LOGIN_LIMITS_OFF, CONSOLE_SESSION_TTL: '12h', LOG_LEVEL: 'warn' });
  server = await startInProcess(env, { clock });
  await cli(
    env,
    'resource',
    'create',
    '--uri',
    API,
    '--scope',
    'payments:read',
    '--format',
    'opaque',
    '--default',
    '--describe',
    'payments:read=See your payments',
  );
  introspector = await registerService(env, 'Payments API');
  expect((await cli(env, 'resource', 'update', '--uri', API, '--introspector', introspector.clientId)).code).toBe(0);
  app = await registerApp(env, { name: 'Acme <Budgeting>' });
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

test('the page lists the partner with scopes in words (not the console); revoking stops its refresh and opaque tokens, once of ten', async () => {
  const ana = await person('ana');
  const tokens = await partnerTokens(ana);
  const signedIn = await consoleSignIn(server.url, '/account', ana);
  const home = signedIn.page.text;
  expect(signedIn.page.res.status).toBe(200);
  expect(home).toContain('Acme &lt;Budgeting&gt;'); // escaped
  expect(home).toContain('See your payments');
  expect(home).toContain('Know who you are');
  expect(home).toContain('JWT form');
  expect([...home.matchAll(/name="grant" value="([^"]+)"/g)]).toHaveLength(1); // the console's own grant is not a partner
  const grantId = /name="grant" value="([^"]+)"/.exec(home)![1];
  const csrf = csrfOf(home);

  // another person cannot withdraw it: the same answer as for no grant at all, nothing deleted
  const bo = await person('bo');
  const other = await consoleSignIn(server.url, '/account', bo);
  const foreign = await other.agent.post('/account/grants/revoke', { csrf: csrfOf(other.page.text), grant: grantId });
  expect(foreign.res.status).toBe(404);
  expect(foreign.text).toContain('nothing was changed');
  expect((await introspectAs(server.url, introspector, tokens.access_token)).active).toBe(true);

  const answers = await Promise.all(
    Array.from({ length: 10 }, () => signedIn.agent.post('/account/grants/revoke', { csrf, grant: grantId })),
  );
  const statuses = answers.map((answer) => answer.res.status).sort();
  expect(statuses).toEqual([303, ...Array<number>(9).fill(404)]);
  expect(await auditRows('consent.revoke', grantId)).toBe(1);
  const row = await server.db('audit_log').where({ action: 'consent.revoke', target: grantId }).first();
  expect(row.actor).toBe(`person:${ana.id}`);

  const refreshed = await tokenCall(server.url, app, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
  expect(refreshed.status).toBe(400);
  expect(refreshed.body.error).toBe('invalid_grant');
  expect((await introspectAs(server.url, introspector, tokens.access_token)).active).toBe(false);
  const after = await signedIn.agent.get('/account?done=revoked');
  expect(after.text).toContain('permission is withdrawn');
  expect(after.text).not.toContain('name="grant"');
});

test('every POST needs the form’s CSRF token and a session; hostile input gets a page, never a 500', async () => {
  const cy = await person('cy');
  const signedIn = await consoleSignIn(server.url, '/account', cy);
  const csrf = csrfOf(signedIn.page.text);
  const posts = [
    '/account/grants/revoke',
    '/account/password',
    '/account/authenticator/replace',
    '/account/authenticator/confirm',
    '/account/recovery-codes',
    '/account/sign-out',
  ];
  for (const path of posts) {
    const forged = await signedIn.agent.post(path, { csrf: 'forged', grant: 'x', code: '123456', current: PASSWORD });
    expect([path, forged.res.status]).toEqual([path, 403]);
    expect(forged.text).toContain('Form refused');
    const none = await signedIn.agent.post(path, { code: '123456' });
    expect([path, none.res.status]).toEqual([path, 403]);
    const crossSite = await signedIn.agent.post(path, { csrf }, { origin: 'https://evil.test' });
    expect([path, crossSite.res.status]).toEqual([path, 403]);
    const otherSite = await signedIn.agent.post(path, { csrf }, { origin: 'null', 'sec-fetch-site': 'cross-site' });
    expect([path, otherSite.res.status]).toEqual([path, 403]);
    const noSession = await cookieAgent(() => server.url).post(path, { csrf });
    expect([path, noSession.res.status]).toEqual([path, 401]);
  }
  const changes = await server
    .db('audit_log')
    .where({ actor: `person:${cy.id}` })
    .whereNot('action', 'like', 'signin.%');
  expect(changes).toEqual([]);

  const hostile: Array<[string, Record<string, string>]> = [
    ['/account/grants/revoke', { csrf }],
    ['/account/grants/revoke', { csrf, grant: '../../etc/passwd' }],
    ['/account/grants/revoke', { csrf, grant: 'x'.repeat(5000) }],
    ['/account/password', { csrf }],
    ['/account/password', { csrf, stamp: 'x', current: '\u0000', password: '\u{1F600}'.repeat(600), repeat: '' }],
    ['/account/authenticator/replace', { csrf, code: '' }],
    ['/account/authenticator/replace', { csrf, code: '<script>'.repeat(100) }],
    ['/account/authenticator/confirm', { csrf, pending: 'v2.a.b.c.d', code: '123456' }],
    ['/account/authenticator/confirm', { csrf, pending: 'x'.repeat(4000), code: '' }],
    ['/account/recovery-codes', { csrf, code: 'abc' }],
  ];
  for (const [path, fields] of hostile) {
    const answer = await signedIn.agent.post(path, fields);
    expect([path, answer.res.status >= 400 && answer.res.status < 500]).toEqual([path, true]);
    expect(answer.res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(answer.text).not.toContain('<script>');
  }
  for (const path of ['/account?after=!!', '/account?after=WyJ4Il0x', '/account/sign-ins?after=WzEsMl0', '/account/sign-ins?after=%00']) {
    const answer = await signedIn.agent.get(path);
    expect([path, answer.res.status]).toEqual([path, 400]);
  }
  // a browser's own form under Referrer-Policy: no-referrer: Origin null, fetch metadata same-origin
  const ownForm = await signedIn.agent.post(
    '/account/grants/revoke',
    { csrf, grant: 'none' },
    { origin: 'null', 'sec-fetch-site': 'same-origin' },
  );
  expect(ownForm.res.status).toBe(404);
  const notForm = await signedIn.agent.post('/account/password', {}, { 'content-type': 'application/json' });
  expect(notForm.res.status).toBe(415);
  const huge = await signedIn.agent.post('/account/password', { csrf, current: 'x'.repeat(40_000) });
  expect(huge.res.status).toBe(413);
});

test('password: the current one is required and a wrong one counts as a failed sign-in; the new one follows the rules', async () => {
  const di = await person('di');
  const signedIn = await consoleSignIn(server.url, '/account', di);
  const form = await signedIn.agent.get('/account/password');
  const csrf = csrfOf(form.text);
  const stamp = /name="stamp" value="([^"]+)"/.exec(form.text)![1];
  const post = (fields: Record<string, string>) => signedIn.agent.post('/account/password', { csrf, stamp, ...fields });
  const next = 'violet kettle harbour 77';

  const wrong = await post({ current: 'not my password at all', password: next, repeat: next });
  expect(wrong.res.status).toBe(401);
  expect(wrong.text).toContain('current password is not right');
  expect((await server.db('users').where({ id: di.id }).first()).failed_passwords).toBe(1);
  const failure = await server.db('audit_log').where({ action: 'signin.failure', target: di.id }).first();
  expect(JSON.parse(failure.details)).toMatchObject({ step: 'account_password', page: '/account' });

  expect((await post({ current: PASSWORD, password: next, repeat: `${next}!` })).text).toContain('are not the same');
  const weak = await post({ current: PASSWORD, password: 'password123', repeat: 'password123' });
  expect(weak.res.status).toBe(400);
  expect(weak.text).toContain('too easy to guess');
  expect((await post({ current: PASSWORD, password: PASSWORD, repeat: PASSWORD })).text).toContain('is the current one');

  const changed = await post({ current: PASSWORD, password: next, repeat: next });
  expect(changed.res.status).toBe(303);
  expect((await server.db('users').where({ id: di.id }).first()).failed_passwords).toBe(0);
  expect(await auditRows('user.change_password', di.id)).toBe(1);
  // the form shown before the change is stale: refused before any check, so not counted
  const stale = await post({ current: next, password: 'another fine passphrase 9', repeat: 'another fine passphrase 9' });
  expect(stale.res.status).toBe(409);
  await expect(consoleSignIn(server.url, '/account', di)).rejects.toThrow(/Invalid username or password/);
  di.password = next;
  expect((await consoleSignIn(server.url, '/account', di)).page.res.status).toBe(200);
});

test('ten password changes at once with the right current password: one wins, and the person signs in with exactly that one', async () => {
  const ed = await person('ed');
  const signedIn = await consoleSignIn(server.url, '/account', ed);
  const form = await signedIn.agent.get('/account/password');
  const csrf = csrfOf(form.text);
  const stamp = /name="stamp" value="([^"]+)"/.exec(form.text)![1];
  const candidates = Array.from({ length: 10 }, (_, i) => `orchid lantern meadow ${i} zq`);
  const answers = await Promise.all(
    candidates.map((password) => signedIn.agent.post('/account/password', { csrf, stamp, current: PASSWORD, password, repeat: password })),
  );
  const statuses = answers.map((answer) => answer.res.status);
  expect(statuses.filter((status) => status === 303)).toHaveLength(1);
  expect(statuses.filter((status) => status !== 303).every((status) => status === 409)).toBe(true);
  const winner = candidates[statuses.indexOf(303)];
  const { password_hash: hash, failed_passwords: failed } = await server.db('users').where({ id: ed.id }).first();
  const matches = await Promise.all(candidates.map((password) => checkPassword(password, hash)));
  expect(candidates.filter((_, i) => matches[i])).toEqual([winner]);
  expect(failed).toBe(0); // none of the losers counted as a wrong password
  expect(await auditRows('user.change_password', ed.id)).toBe(1);
  ed.password = winner;
  expect((await consoleSignIn(server.url, '/account', ed)).page.res.status).toBe(200);
});

test('authenticator: a current code, then the new one confirmed; the old one and the confirming code no longer sign in; new recovery codes', async () => {
  const fay = await person('fay');
  const signedIn = await consoleSignIn(server.url, '/account', fay);
  const csrf = csrfOf(signedIn.page.text);

  const wrong = await signedIn.agent.post('/account/authenticator/replace', { csrf, code: '000000' });
  expect(wrong.res.status).toBe(401);
  expect((await server.db('users').where({ id: fay.id }).first()).failed_second_factors).toBe(1);
  // a code already used (the sign-in's) is not accepted again
  const reused = await signedIn.agent.post('/account/authenticator/replace', { csrf, code: totpCode(fay.secret, clock.now()) });
  expect(reused.res.status).toBe(401);

  const offered = await signedIn.agent.post('/account/authenticator/replace', { csrf, code: fay.code() });
  expect(offered.res.status).toBe(200);
  expect(offered.text).toContain('data:image/png;base64,');
  const newSecret = /<code id="secret">([^<]+)<\/code>/.exec(offered.text)![1].replace(/\s+/g, '');
  const pending = /name="pending" value="([^"]+)"/.exec(offered.text)![1];
  const confirm = (code: string, sealed = pending) =>
    signedIn.agent.post('/account/authenticator/confirm', { csrf, pending: sealed, code });

  const badCode = await confirm('000000');
  expect(badCode.res.status).toBe(400);
  expect(badCode.text).toContain(newSecret.slice(0, 4)); // the same offer, shown again
  const tampered = await confirm(totpCode(newSecret, clock.now()), `${pending.slice(0, -3)}AAA`);
  expect(tampered.res.status).toBe(400);
  expect(tampered.text).toContain('start again');
  // another session of the same person cannot use this session's offer
  const elsewhere = await consoleSignIn(server.url, '/account', fay);
  const stolen = await elsewhere.agent.post('/account/authenticator/confirm', {
    csrf: csrfOf(elsewhere.page.text),
    pending,
    code: totpCode(newSecret, clock.now()),
  });
  expect(stolen.res.status).toBe(400);

  const confirmingCode = totpCode(newSecret, clock.now());
  const twice = await Promise.all([confirm(confirmingCode), confirm(confirmingCode)]);
  expect(twice.map((answer) => answer.res.status).sort()).toEqual([303, 409]);
  expect(await auditRows('user.replace_totp', fay.id)).toBe(1);

  // the old authenticator no longer signs in; the new one does, but not with the code that confirmed it
  const oldSecret = fay.secret;
  fay.secret = newSecret;
  const sameStep = { ...fay, code: () => confirmingCode };
  await expect(consoleSignIn(server.url, '/account', sameStep)).rejects.toThrow(/refused/);
  const oldOne = { ...fay, code: () => totpCode(oldSecret, clock.now() + 30_000) };
  await expect(consoleSignIn(server.url, '/account', oldOne)).rejects.toThrow(/refused/);
  const again = await consoleSignIn(server.url, '/account', fay);
  expect(again.page.res.status).toBe(200);

  const before = (await server.db('recovery_codes').where({ user_id: fay.id }).select('code_hash')).map((r) => r.code_hash as string);
  const codes = await again.agent.post('/account/recovery-codes', { csrf: csrfOf(again.page.text), code: fay.code() });
  expect(codes.res.status).toBe(200);
  const shown = [...codes.text.matchAll(/<li><code>([^<]+)<\/code><\/li>/g)].map((m) => m[1]);
  expect(shown).toHaveLength(10);
  const after = (await server.db('recovery_codes').where({ user_id: fay.id }).select('code_hash')).map((r) => r.code_hash as string);
  expect(after).toHaveLength(10);
  expect(after.some((hash) => before.includes(hash))).toBe(false);
  expect(await auditRows('user.new_recovery_codes', fay.id)).toBe(1);
  expect(codes.res.headers.get('cache-control')).toBe('no-store');
});

test('recent sign-ins: this person’s successes, refusals and locks, newest first, with the address', async () => {
  const gil = await person('gil');
  const { url } = codeRequest(server.url, app);
  await expect(httpLogin({ authorizationUrl: url, redirectUri: REDIRECT, ...gil, password: 'wrong password here' })).rejects.toThrow();
  const signedIn = await consoleSignIn(server.url, '/account', gil);
  const page = await signedIn.agent.get('/account/sign-ins');
  expect(page.res.status).toBe(200);
  const rows = [...page.text.matchAll(/<tr[^>]*><td>.*?<\/td><td>([^<]+)<\/td><td><code>([^<]+)<\/code><\/td><\/tr>/g)];
  expect(rows.map((m) => m[1])).toEqual(['Signed in', 'Refused: wrong password']);
  expect(rows[0][2]).toMatch(/127\.0\.0\.1|::1/);
});
