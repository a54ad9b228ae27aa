import { cookieAgent } from '../support/agent.ts';
import { cli, freshDatabaseUrl, instanceEnv, tempDir } from '../support/harness.ts';
import { httpLogin, httpLogout } from '../support/http-login.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import { codeFor, createUser, secretOf } from '../support/login.ts';
import { codeRequest, PASSWORD, REDIRECT, registerApp, tokenCall, type App } from '../support/person-flow.ts';

// Logout, decided as Keycloak and Hydra users expect: the browser session ends (the next visit
// signs in again, both factors) and the tokens issued in it stop working (refresh tokens, opaque
// access tokens); the consent the person gave the partner survives (no consent page next time).
// Revoking consent is a separate act (a grant revoked, or the person disabled).

let server: InProcessServer;
let env: Record<string, string>;
let app: App;

beforeAll(async () => {
  const dir = tempDir();
  env = instanceEnv(dir, freshDatabaseUrl(dir));
  server = await startInProcess(env);
  await cli(env, 'resource', 'create', '--uri', 'https://api.bank.test/payments', '--scope', 'payments:read', '--default');
  app = await registerApp(env);
});

afterAll(async () => {
  await server?.stop();
});

const authorizationUrl = () => codeRequest(server.url, app);

test('log in, consent, log out, log in again: sign-in asked again, consent not; the old refresh token is dead', async () => {
  const created = await createUser(env, 'ivan', PASSWORD, '--with-totp');
  const totp = secretOf(created.json.totp_uri);
  const browser = cookieAgent(() => server.url);

  const first = authorizationUrl();
  const login = await httpLogin({
    authorizationUrl: first.url,
    redirectUri: REDIRECT,
    username: 'ivan',
    password: PASSWORD,
    code: () => codeFor(totp),
    agent: browser,
  });
  expect(login.pages).toEqual(['Sign in', 'Two-step verification', 'Allow Acme Budgeting?']);
  const tokens = await tokenCall(server.url, app, {
    grant_type: 'authorization_code',
    code: login.callback.searchParams.get('code')!,
    redirect_uri: REDIRECT,
    code_verifier: first.verifier,
  });
  expect(tokens.status).toBe(200);

  // the page says what signing out does and does not do
  const page = (await browser.get('/session/end')).text;
  expect(page).toContain('Signing out ends this session');
  expect(page).toContain('It does not withdraw the permissions you gave apps');
  expect(await httpLogout(browser, server.url, { id_token_hint: tokens.body.id_token, client_id: app.clientId })).toBe('Signed out');

  // the session's refresh token no longer works
  const refreshed = await tokenCall(server.url, app, { grant_type: 'refresh_token', refresh_token: tokens.body.refresh_token });
  expect(refreshed.status).toBe(400);
  expect(refreshed.body.error).toBe('invalid_grant');

  // the same browser: both factors again (the session ended), but no consent page
  const second = authorizationUrl();
  const again = await httpLogin({
    authorizationUrl: second.url,
    redirectUri: REDIRECT,
    username: 'ivan',
    password: PASSWORD,
    code: () => codeFor(totp, 1), // a TOTP step is accepted once
    agent: browser,
  });
  expect(again.pages).toEqual(['Sign in', 'Two-step verification']);
  const newTokens = await tokenCall(server.url, app, {
    grant_type: 'authorization_code',
    code: again.callback.searchParams.get('code')!,
    redirect_uri: REDIRECT,
    code_verifier: second.verifier,
  });
  expect(newTokens.status).toBe(200);
  expect(newTokens.body.scope).toContain('payments:read');
});
