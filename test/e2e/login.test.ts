import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as client from 'openid-client';
import type { Browser, BrowserContext } from 'playwright-core';
import { cli, freshDatabaseUrl, instanceEnv, seedPartner, startInstance, tempDir, type Instance } from '../support/harness.ts';
import {
  authorizationRequest,
  codeFor,
  createUser,
  enterCode,
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
let server: Instance;
let browser: Browser;
let catcher: Awaited<ReturnType<typeof startRedirectCatcher>>;
let app: PartnerApp;
let context: BrowserContext;

beforeAll(async () => {
  const dir = tempDir();
  server = await startInstance(instanceEnv(dir, freshDatabaseUrl(dir)));
  env = server.env;
  await seedPartner(env, { uri: API, allowed: 'payments:read' });
  await cli(env, 'resource', 'create', '--uri', API, '--scope', 'payments:read payments:write', '--default',
    '--describe', 'payments:read=See your payments and balances', '--describe', 'payments:write=Make payments from your accounts');
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

afterEach(async () => {
  await context?.close();
});

describe('login → enrolment → consent → code → tokens', () => {
  test('a new person enrols TOTP, sees recovery codes once, consents; the partner gets verified tokens', async () => {
    expect((await createUser(env, 'alice', PASSWORD)).code).toBe(0);
    const page = await context.newPage();
    const request = await authorizationRequest(app);
    await page.goto(request.url.href);

    await expectHeading(page, 'Sign in');
    await signIn(page, 'alice', PASSWORD);

    await expectHeading(page, 'Set up your authenticator');
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
      issuer: server.url, audience: API, typ: 'at+jwt', algorithms: ['ES256'],
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
