import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as client from 'openid-client';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createDb } from '../../src/db/knex.ts';
import { cli, freshDatabaseUrl, instanceEnv, seedPartner, tempDir } from '../support/harness.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import {
  authorizationRequest,
  codeFor,
  createUser,
  enterCode,
  enterEnrolmentCode,
  expectHeading,
  expectVisible,
  landedAt,
  launchBrowser,
  registerPartnerApp,
  secretOf,
  signIn,
  startRedirectCatcher,
  type PartnerApp,
} from '../support/login.ts';

const PASSWORD = 'correct horse battery staple';
const API = 'https://api.bank.test/payments';
const ACR = 'urn:portcullis:acr:mfa';

let env: Record<string, string>;
let server: InProcessServer;
let browser: Browser;
let catcher: Awaited<ReturnType<typeof startRedirectCatcher>>;
let app: PartnerApp;
let context: BrowserContext;

beforeAll(async () => {
  const dir = tempDir();
  server = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir)));
  env = server.env;
  await seedPartner(env, { uri: API, allowed: 'payments:read' });
  await cli(
    env,
    'resource',
    'update',
    '--uri',
    API,
    '--describe',
    'payments:read=See your payments and balances',
    '--describe',
    'payments:write=Make payments from your accounts',
  );
  catcher = await startRedirectCatcher();
  app = await registerPartnerApp(env, server.url, catcher.redirectUri);
  browser = await launchBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await catcher?.close();
  await server?.stop();
});

beforeEach(async () => {
  context = await browser.newContext();
});

/** A user provisioned with TOTP by the CLI; returns the base32 secret. */
async function userWithTotp(username: string): Promise<string> {
  const created = await createUser(env, username, PASSWORD, '--with-totp');
  expect(created.code).toBe(0);
  expect(created.json).toEqual({ id: expect.stringMatching(/^usr_/), username, totp_uri: expect.stringMatching(/^otpauth:\/\/totp\//) });
  return secretOf(created.json.totp_uri);
}

/**
 * Password and TOTP on a fresh authorization; returns the request (to exchange the code later).
 * `step` picks the code `step` periods ahead, or is the very code to type.
 */
async function logIn(page: Page, username: string, secret: string, step: number | string = 0, params: Record<string, string> = {}) {
  const request = await authorizationRequest(app, params);
  await page.goto(request.url.href);
  await expectHeading(page, 'Sign in');
  await signIn(page, username, PASSWORD);
  await expectHeading(page, 'Two-step verification');
  await enterCode(page, typeof step === 'string' ? step : codeFor(secret, step));
  return request;
}

async function allow(page: Page) {
  await expectHeading(page, 'Allow Acme Budgeting?');
  await page.getByRole('button', { name: 'Allow' }).click();
}

/** A new person through enrolment to the consent page; returns their secret and recovery codes. */
async function enrol(page: Page, username: string) {
  const created = await createUser(env, username, PASSWORD);
  expect(created.code).toBe(0);
  const request = await authorizationRequest(app);
  await page.goto(request.url.href);
  await signIn(page, username, PASSWORD);
  await expectHeading(page, 'Set up your authenticator');
  await enterEnrolmentCode(page, created.json.enrolment_code);
  await expectHeading(page, 'Connect your authenticator');
  const secret = (await page.locator('#secret').innerText()).replace(/\s+/g, '');
  await enterCode(page, codeFor(secret));
  await expectHeading(page, 'Save your recovery codes');
  const codes = await page.locator('.codes li').allInnerTexts();
  await page.getByRole('button', { name: /continue/i }).click();
  return { request, secret, codes };
}

afterEach(async () => {
  await context?.close();
});

describe('login → enrolment → consent → code → tokens', () => {
  test('a new person enrols TOTP with the enrolment code, sees recovery codes once, consents; the partner gets verified tokens', async () => {
    const created = await createUser(env, 'alice', PASSWORD);
    expect(created.code).toBe(0);
    expect(created.json.enrolment_code).toMatch(/^[a-z2-9]{4}(-[a-z2-9]{4}){3}$/);
    const page = await context.newPage();
    const request = await authorizationRequest(app);
    await page.goto(request.url.href);

    await expectHeading(page, 'Sign in');
    await signIn(page, 'alice', PASSWORD);

    // the password alone shows no secret: first the enrolment code, typed as people do
    await expectHeading(page, 'Set up your authenticator');
    expect(await page.locator('main img, #secret').count()).toBe(0);
    await enterEnrolmentCode(page, 'wrong-code-0000-0000');
    await expectVisible(page, /enrolment code is not valid/);
    expect(await page.locator('main img, #secret').count()).toBe(0);
    await enterEnrolmentCode(page, ` ${created.json.enrolment_code.toUpperCase()} `);

    await expectHeading(page, 'Connect your authenticator');
    await page.getByRole('img', { name: /QR code/ }).waitFor();
    const secret = await page.locator('#secret').innerText();
    await enterCode(page, codeFor(secret));

    await expectHeading(page, 'Save your recovery codes');
    const codes = await page.locator('.codes li').allInnerTexts();
    expect(codes).toHaveLength(10);
    await page.getByRole('button', { name: /continue/i }).click();

    await expectHeading(page, 'Allow Acme Budgeting?');
    await expectVisible(page, 'See your payments and balances');
    await expectVisible(page, /Know who you are/);
    await page.getByRole('button', { name: 'Allow' }).click();

    const tokens = await request.exchange(await landedAt(page, catcher.redirectUri));
    const claims = tokens.claims()!;
    expect(claims.amr).toEqual(['pwd', 'otp']);
    expect(claims.acr).toBe(ACR);
    expect(typeof claims.auth_time).toBe('number');
    expect(Math.abs(claims.auth_time! - Date.now() / 1000)).toBeLessThan(60);

    const { payload } = await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(`${server.url}/jwks`)), {
      issuer: server.url,
      audience: API,
      typ: 'at+jwt',
      algorithms: ['ES256'],
    });
    expect(payload).toEqual(expect.objectContaining({ sub: claims.sub, client_id: app.clientId, scope: 'payments:read' }));
    expect(tokens.refresh_token).toEqual(expect.any(String));

    // rotation: each refresh gives a new refresh token; the used one, presented again, kills the grant
    const first = tokens.refresh_token!;
    const refreshed = await client.refreshTokenGrant(app.config, first);
    expect(refreshed.refresh_token).toEqual(expect.any(String));
    expect(refreshed.refresh_token).not.toBe(first);
    await expect(client.refreshTokenGrant(app.config, first)).rejects.toMatchObject({ error: 'invalid_grant' });
    await expect(client.refreshTokenGrant(app.config, refreshed.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });
});

describe('second factor, recovery codes, remembered consent', () => {
  test('consent is remembered across sessions until the grant is revoked', async () => {
    const secret = await userWithTotp('bob');
    const first = await logIn(await context.newPage(), 'bob', secret);
    const page1 = context.pages()[0];
    await allow(page1);
    const tokens = await first.exchange(await landedAt(page1, catcher.redirectUri));

    // another browser, a new session: password and code, and no consent page
    const other = await browser.newContext();
    try {
      const page2 = await other.newPage();
      const again = await logIn(page2, 'bob', secret, 1);
      const back = await landedAt(page2, catcher.redirectUri);
      expect((await again.exchange(back)).claims()!.sub).toBe(tokens.claims()!.sub);

      // the partner gives the grant up: the next request asks for consent again (same session, no login)
      await client.tokenRevocation(app.config, tokens.refresh_token!);
      const third = await authorizationRequest(app);
      await page2.goto(third.url.href);
      await allow(page2);
      await third.exchange(await landedAt(page2, catcher.redirectUri));
    } finally {
      await other.close();
    }
  });

  test('a recovery code replaces the TOTP code, once', async () => {
    const page = await context.newPage();
    const { request, codes } = await enrol(page, 'carol');
    expect(codes).toHaveLength(10);
    // only hashes are stored
    const db = createDb(env.DATABASE_URL);
    try {
      const rows = await db('recovery_codes')
        .join('users', 'users.id', 'recovery_codes.user_id')
        .where('users.username', 'carol')
        .select('code_hash');
      expect(rows).toHaveLength(10);
      const stored = JSON.stringify(rows);
      for (const code of codes) expect(stored).not.toContain(code.replaceAll('-', ''));
    } finally {
      await db.destroy();
    }
    await allow(page);
    await request.exchange(await landedAt(page, catcher.redirectUri));

    for (const [attempt, code] of [
      [1, codes[3]],
      [2, codes[3]],
    ] as const) {
      const fresh = await browser.newContext();
      try {
        const p = await fresh.newPage();
        const next = await authorizationRequest(app);
        await p.goto(next.url.href);
        await signIn(p, 'carol', PASSWORD);
        await expectHeading(p, 'Two-step verification');
        await p.getByRole('link', { name: /recovery code/i }).click();
        await expectHeading(p, 'Use a recovery code');
        await p.getByLabel('Recovery code').fill(code.toUpperCase());
        await p.getByRole('button', { name: 'Verify' }).click();
        if (attempt === 1) {
          const claims = (await next.exchange(await landedAt(p, catcher.redirectUri))).claims()!;
          expect(claims.amr).toEqual(['pwd', 'otp']);
        } else {
          await expectHeading(p, 'Use a recovery code');
          await expectVisible(p, 'That recovery code is not valid.');
        }
      } finally {
        await fresh.close();
      }
    }
  });

  test('a TOTP code is accepted once', async () => {
    const secret = await userWithTotp('dan');
    // one code, typed twice: computed once, so a period boundary between the logins cannot make it fresh
    const code = codeFor(secret);
    const page = await context.newPage();
    await logIn(page, 'dan', secret, code);
    await allow(page);
    await landedAt(page, catcher.redirectUri);
    const other = await browser.newContext();
    try {
      const p = await other.newPage();
      await logIn(p, 'dan', secret, code);
      await expectHeading(p, 'Two-step verification');
      await expectVisible(p, /That code is not valid/);
    } finally {
      await other.close();
    }
  });
});

describe('lockout', () => {
  test('five wrong passwords lock the account with the generic message; user unlock clears it', async () => {
    const secret = await userWithTotp('eve');
    const page = await context.newPage();
    const request = await authorizationRequest(app);
    await page.goto(request.url.href);
    for (let i = 0; i < 5; i++) {
      await signIn(page, 'eve', 'wrong password!');
      await expectVisible(page, 'Invalid username or password.');
    }
    await signIn(page, 'eve', PASSWORD);
    await expectHeading(page, 'Sign in');
    await expectVisible(page, 'Invalid username or password.');
    await signIn(page, 'nobody-at-all', PASSWORD);
    await expectVisible(page, 'Invalid username or password.');

    expect(server.logs()).toMatch(/"level":"warn".*"step":"password".*"msg":"account locked"/);
    const listed = await cli(env, 'user', 'list');
    expect(listed.json.find((u: { username: string }) => u.username === 'eve').locked_until).toEqual(expect.any(String));
    expect((await cli(env, 'user', 'unlock', 'eve')).json.locked_until).toBeNull();

    await signIn(page, 'eve', PASSWORD);
    await expectHeading(page, 'Two-step verification');
    // three wrong codes end this login: the password is asked again
    for (let i = 0; i < 3; i++) await enterCode(page, '000000');
    await expectHeading(page, 'Sign in');
    await expectVisible(page, 'Too many wrong codes. Sign in again with your username and password.');
    // two more (five in a row, counted across logins) lock the account; the right code is then refused
    await signIn(page, 'eve', PASSWORD);
    await expectHeading(page, 'Two-step verification');
    for (let i = 0; i < 2; i++) {
      await enterCode(page, '000000');
      await expectVisible(page, /That code is not valid/);
    }
    await enterCode(page, codeFor(secret));
    await expectHeading(page, 'Sign in');
    expect((await cli(env, 'user', 'list')).json.find((u: { username: string }) => u.username === 'eve').locked_until).toEqual(
      expect.any(String),
    );
  });
});

describe('sessions: SSO, prompt=login, max_age, logout, userinfo, public clients', () => {
  test('prompt=login and max_age=0 ask again; RP-initiated logout ends the session', async () => {
    const secret = await userWithTotp('frank');
    const page = await context.newPage();
    const first = await logIn(page, 'frank', secret);
    await allow(page);
    const firstTokens = await first.exchange(await landedAt(page, catcher.redirectUri));

    // same browser, no prompt: single sign-on straight back to the partner
    const sso = await authorizationRequest(app);
    await page.goto(sso.url.href);
    const ssoClaims = (await sso.exchange(await landedAt(page, catcher.redirectUri))).claims()!;
    expect(ssoClaims.auth_time).toBe(firstTokens.claims()!.auth_time);

    // prompt=login: both factors again, and a newer auth_time
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const relogin = await logIn(page, 'frank', secret, 1, { prompt: 'login' });
    const reClaims = (await relogin.exchange(await landedAt(page, catcher.redirectUri))).claims()!;
    expect(reClaims.auth_time!).toBeGreaterThan(firstTokens.claims()!.auth_time!);

    // max_age=0: the login page again
    const aged = await authorizationRequest(app, { max_age: '0' });
    await page.goto(aged.url.href);
    await expectHeading(page, 'Sign in');

    // logout with the ID token as hint, back to the partner; then the session is gone
    const logout = client.buildEndSessionUrl(app.config, {
      id_token_hint: firstTokens.id_token!,
      post_logout_redirect_uri: catcher.redirectUri,
    });
    await page.goto(logout.href);
    await expectHeading(page, 'Sign out');
    await page.getByRole('button', { name: 'Yes, sign me out' }).click();
    await landedAt(page, catcher.redirectUri);
    const after = await authorizationRequest(app);
    await page.goto(after.url.href);
    await expectHeading(page, 'Sign in');
  });

  test('a public partner (PKCE, no secret) asking only for openid gets a /userinfo token', async () => {
    const secret = await userWithTotp('grace');
    const publicApp = await registerPartnerApp(env, server.url, catcher.redirectUri, { name: 'Pocket App', public: true });
    const page = await context.newPage();
    const request = await authorizationRequest(publicApp, { scope: 'openid' });
    await page.goto(request.url.href);
    await signIn(page, 'grace', PASSWORD);
    await enterCode(page, codeFor(secret));
    await expectHeading(page, 'Allow Pocket App?');
    await page.getByRole('button', { name: 'Allow' }).click();
    const tokens = await request.exchange(await landedAt(page, catcher.redirectUri));
    const sub = tokens.claims()!.sub;
    expect(await client.fetchUserInfo(publicApp.config, tokens.access_token, sub)).toEqual(expect.objectContaining({ sub }));
    expect(tokens.refresh_token).toEqual(expect.any(String));

    // a disabled person's refresh tokens stop working
    expect((await cli(env, 'user', 'disable', 'grace')).code).toBe(0);
    await expect(client.refreshTokenGrant(publicApp.config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  test('deny sends the person back with access_denied', async () => {
    const secret = await userWithTotp('heidi');
    const page = await context.newPage();
    const request = await logIn(page, 'heidi', secret);
    await expectHeading(page, 'Allow Acme Budgeting?');
    await page.getByRole('button', { name: 'Deny' }).click();
    const back = await landedAt(page, catcher.redirectUri);
    expect(back.searchParams.get('error')).toBe('access_denied');
    await expect(request.exchange(back)).rejects.toMatchObject({ error: 'access_denied' });
  });
});

describe('the server log', () => {
  test('holds no provider warnings, no server errors and no password', () => {
    const logs = server.logs();
    expect(logs).not.toMatch(/oidc-provider (WARNING|NOTICE)/);
    expect(logs).not.toMatch(/"level":"error"/);
    expect(logs).not.toContain(PASSWORD);
  });
});
