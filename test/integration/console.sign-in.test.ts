import { cookieAgent } from '../support/agent.ts';
import { consoleSignIn, csrfOf } from '../support/console.ts';
import { cli, freshDatabaseUrl, instanceEnv, tempDir } from '../support/harness.ts';
import { startInProcess, testClock, type InProcessServer } from '../support/in-process.ts';
import { totpCode } from '../../src/accounts/totp.service.ts';
import { createUser, secretOf } from '../support/login.ts';

// The consoles sign people in through Portcullis itself: the built-in client `portcullis-console`,
// authorization code with PKCE, redeemed at the server's own token endpoint; the session is an
// encrypted cookie scoped to the console's path.

const PASSWORD = 'correct horse battery staple 42';
const clock = testClock();
let server: InProcessServer;
let env: Record<string, string>;
const people: Record<string, { username: string; password: string; code: () => string }> = {};

async function person(username: string, ...flags: string[]) {
  const created = await createUser(env, username, PASSWORD, '--with-totp', ...flags);
  const secret = secretOf(created.json.totp_uri);
  // each sign-in needs a code of a step not used before: the server's clock moves one 30-second step first
  // (not much more: a login's own state expires on that clock while oidc-provider's interaction lives on the real one)
  people[username] = {
    username,
    password: PASSWORD,
    code: () => {
      clock.advance(30_000);
      return totpCode(secret, clock.now());
    },
  };
  return people[username];
}

beforeAll(async () => {
  const dir = tempDir();
  env = instanceEnv(dir, freshDatabaseUrl(dir), { CONSOLE_SESSION_TTL: '10m', ADMIN_AUTH_MAX_AGE: '5m' });
  server = await startInProcess(env, { clock });
  await person('root', '--admin');
  await person('pat');
});

afterAll(async () => {
  await server?.stop();
});

test('an admin signs in to /admin with password and second factor, no consent page, and lands where they were going', async () => {
  const signedIn = await consoleSignIn(server.url, '/admin', people.root);
  expect(signedIn.pages).toEqual(['Sign in', 'Two-step verification']);
  expect(signedIn.landed).toBe('/admin');
  expect(signedIn.page.res.status).toBe(200);
  expect(signedIn.page.text).toContain('Signed in as <strong>root</strong>');
  // the session cookie: HttpOnly, SameSite=Lax, scoped to /admin
  const cookie = signedIn.callback.cookies.find((c) => c.startsWith('portcullis.admin.session='))!;
  expect(cookie).toMatch(/Path=\/admin/i);
  expect(cookie).toMatch(/HttpOnly/i);
  expect(cookie).toMatch(/SameSite=Lax/i);
  // the session does not open /account (its own cookie, its own path)
  expect((await signedIn.agent.get('/account')).res.status).toBe(302);
});

test('a person who is not an admin is refused /admin with a page, and may use /account', async () => {
  const refused = await consoleSignIn(server.url, '/admin', people.pat);
  expect(refused.page.res.status).toBe(403);
  expect(refused.page.text).toContain('Not an administrator');
  expect(refused.page.text).toContain('You are signed in as pat');
  const account = await consoleSignIn(server.url, '/account', people.pat);
  expect(account.page.res.status).toBe(200);
  expect(account.page.text).toContain('Signed in as <strong>pat</strong>');
});

test('the callback refuses a state it did not issue, a missing sign-in cookie and an error answer, each with a page', async () => {
  const browser = cookieAgent(() => server.url);
  const start = await browser.get('/admin/sign-in');
  expect(start.res.status).toBe(302);
  const forged = await browser.get('/admin/callback?code=abc&state=forged');
  expect(forged.res.status).toBe(400);
  expect(forged.text).toContain('Sign-in expired');
  // the pending sign-in is gone after one answer
  const again = await browser.get(
    `/admin/callback?code=abc&state=${new URL(start.res.headers.get('location')!, server.url).searchParams.get('state')!}`,
  );
  expect(again.res.status).toBe(400);
  const fresh = cookieAgent(() => server.url);
  const auth = new URL((await fresh.get('/admin/sign-in')).res.headers.get('location')!, server.url);
  const denied = await fresh.get(`/admin/callback?error=access_denied&state=${auth.searchParams.get('state')!}`);
  expect(denied.res.status).toBe(400);
  expect(denied.text).toContain('access_denied');
  // a stolen code without its verifier: the token endpoint refuses it
  const badCode = await fresh.get(`/admin/sign-in`);
  const state = new URL(badCode.res.headers.get('location')!, server.url).searchParams.get('state')!;
  const wrong = await fresh.get(`/admin/callback?code=not-a-code&state=${state}`);
  expect(wrong.res.status).toBe(400);
  expect(wrong.text).toContain('could not be completed');
});

test('the authorization request is PKCE S256 with max_age for /admin, and the return path stays inside the console', async () => {
  const browser = cookieAgent(() => server.url);
  const start = await browser.get(`/admin/sign-in?return=${encodeURIComponent('https://evil.test/x')}`);
  const auth = new URL(start.res.headers.get('location')!, server.url);
  expect(auth.pathname).toBe('/auth');
  expect(auth.searchParams.get('client_id')).toBe('portcullis-console');
  expect(auth.searchParams.get('code_challenge_method')).toBe('S256');
  expect(auth.searchParams.get('max_age')).toBe('300');
  expect(auth.searchParams.get('redirect_uri')).toBe(`${server.url}/admin/callback`);
  // the pending sign-in remembers /admin, not the offered address
  const signedIn = await consoleSignIn(server.url, '/admin', people.root, { path: '/admin?x=1' });
  expect(signedIn.landed).toBe('/admin?x=1');
  for (const hostile of ['//evil.test', '/account', '/admin/../account', 'https://evil.test'])
    expect(
      new URL((await browser.get(`/admin/sign-in?return=${encodeURIComponent(hostile)}`)).res.headers.get('location')!, server.url)
        .pathname,
    ).toBe('/auth');
});

test('sign-out needs the form’s CSRF token; a forged form is refused and the session stays', async () => {
  const signedIn = await consoleSignIn(server.url, '/admin', people.root);
  const forged = await signedIn.agent.post('/admin/sign-out', { csrf: 'forged' });
  expect(forged.res.status).toBe(403);
  expect(forged.text).toContain('Form refused');
  const crossSite = await signedIn.agent.post('/admin/sign-out', { csrf: csrfOf(signedIn.page.text) }, { origin: 'https://evil.test' });
  expect(crossSite.res.status).toBe(403);
  expect((await signedIn.agent.get('/admin')).res.status).toBe(200);
  const out = await signedIn.agent.post('/admin/sign-out', { csrf: csrfOf(signedIn.page.text) });
  expect(out.res.status).toBe(303);
  expect(out.res.headers.get('location')).toMatch(/^\/session\/end\?/);
  expect((await signedIn.agent.get('/admin')).res.status).toBe(302);
});

test('a tampered session cookie is no session', async () => {
  const signedIn = await consoleSignIn(server.url, '/admin', people.root);
  const value = signedIn.agent.jar.get('portcullis.admin.session')!;
  signedIn.agent.jar.set('portcullis.admin.session', `${value.slice(0, -4)}AAAA`);
  expect((await signedIn.agent.get('/admin')).res.status).toBe(302);
});

test('a session ends after CONSOLE_SESSION_TTL, and at once when the person is disabled', async () => {
  await person('dana', '--admin');
  const dana = await consoleSignIn(server.url, '/admin', people.dana);
  expect(dana.page.res.status).toBe(200);
  await cli(env, 'user', 'disable', 'dana');
  expect((await dana.agent.get('/admin')).res.status).toBe(302);

  const signedIn = await consoleSignIn(server.url, '/admin', people.root);
  clock.advance(8 * 60_000);
  expect((await signedIn.agent.get('/admin')).res.status).toBe(200);
  clock.advance(3 * 60_000);
  const expired = await signedIn.agent.get('/admin');
  expect(expired.res.status).toBe(302);
  expect(expired.res.headers.get('location')).toBe('/admin/sign-in?return=%2Fadmin');
  // a POST without a session gets a page, not a redirect that would lose the form
  expect((await signedIn.agent.post('/admin/sign-out', { csrf: 'x' })).res.status).toBe(401);
});
