import path from 'node:path';
import * as client from 'openid-client';
import type { Browser, Page } from 'playwright-core';
import { totpCode } from '../../src/accounts/totp.service.ts';
import { cli, freshDatabaseUrl, instanceEnv, ROOT, tempDir } from '../support/harness.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import {
  authorizationRequest,
  checkPage,
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
import { introspectAs, registerService, type App } from '../support/person-flow.ts';

// A person in Chromium on their own page: sees the partner they allowed (scopes in words),
// withdraws it (the partner's refresh token fails, its opaque access token is inactive), changes
// the password (a wrong current one refused), replaces the authenticator (a wrong current code
// refused; the new one signs in next time). Screenshots in test-output/screenshots/.

const PASSWORD = 'correct horse battery staple';
const NEW_PASSWORD = 'violet kettle harbour 77';
const API = 'https://api.bank.test/payments';
const SCREENSHOTS = path.join(ROOT, 'test-output', 'screenshots');

let server: InProcessServer;
let browser: Browser;
let catcher: Awaited<ReturnType<typeof startRedirectCatcher>>;
let app: PartnerApp;
let introspector: App;
let secret: string;

const screenshot = (page: Page, name: string) => page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });

/**
 * Codes of an authenticator on the real clock, each of a step after the last one used (a step is
 * accepted once): starting one step back, three codes fit in the ±1 window of one step.
 */
function authenticator(key: string) {
  let used = -Infinity;
  return () => {
    used = Math.max(used + 1, Math.floor(Date.now() / 30_000) - 1);
    return totpCode(key, used * 30_000);
  };
}

beforeAll(async () => {
  const dir = tempDir();
  server = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir), { LOG_LEVEL: 'warn' }));
  const { env } = server;
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
    'payments:read=See your payments and balances',
  );
  introspector = await registerService(env, 'Payments API');
  expect((await cli(env, 'resource', 'update', '--uri', API, '--introspector', introspector.clientId)).code).toBe(0);
  catcher = await startRedirectCatcher();
  app = await registerPartnerApp(env, server.url, catcher.redirectUri, { name: 'Acme Budgeting' });
  const person = await createUser(env, 'pia', PASSWORD, '--with-totp');
  expect(person.code).toBe(0);
  secret = secretOf(person.json.totp_uri);
  browser = await launchBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await catcher?.close();
  await server?.stop();
});

test('a person withdraws a partner’s access, changes the password and replaces the authenticator on /account', async () => {
  const code = authenticator(secret);
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    await page.goto(`${server.url}/account`);
    await expectHeading(page, 'Sign in');
    await signIn(page, 'pia', PASSWORD);
    await enterCode(page, code());
    await expectHeading(page, 'Your account');
    await expectVisible(page, 'No partner holds a permission of yours now');

    // the partner app asks; the Portcullis session is there, so only the consent page is shown
    const request = await authorizationRequest(app, { resource: API });
    await page.goto(request.url.href);
    await expectHeading(page, 'Allow Acme Budgeting?');
    await page.getByRole('button', { name: 'Allow' }).click();
    const tokens = await request.exchange(await landedAt(page, catcher.redirectUri));
    expect(tokens.refresh_token).toBeTruthy();
    expect((await introspectAs(server.url, introspector, tokens.access_token)).active).toBe(true);

    await page.goto(`${server.url}/account`);
    await expectHeading(page, 'Your account');
    await checkPage(page);
    const grant = page.locator('li.grant');
    expect(await grant.locator('h3').innerText()).toBe('Acme Budgeting');
    expect(await grant.locator('ul.scopes').innerText()).toContain('See your payments and balances');
    await expectVisible(page, /JWT form .* stop working when they expire/);
    await screenshot(page, 'account');
    await page.setViewportSize({ width: 360, height: 800 });
    await screenshot(page, 'account-360');
    expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(360);
    await page.setViewportSize({ width: 1280, height: 800 });

    await page.getByRole('button', { name: 'Withdraw Acme Budgeting’s access' }).click();
    await expectVisible(page, 'permission is withdrawn');
    expect(await page.locator('li.grant').count()).toBe(0);
    await expect(client.refreshTokenGrant(app.config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    expect((await introspectAs(server.url, introspector, tokens.access_token)).active).toBe(false);

    await page.getByRole('link', { name: 'Password' }).click();
    await expectHeading(page, 'Change your password');
    await checkPage(page);
    await page.getByLabel('Current password').fill('not my password at all');
    await page.getByLabel('New password', { exact: true }).fill(NEW_PASSWORD);
    await page.getByLabel('New password again').fill(NEW_PASSWORD);
    await page.getByRole('button', { name: 'Change password' }).click();
    await expectVisible(page, 'Your current password is not right.');
    await screenshot(page, 'account-password');
    await page.getByLabel('Current password').fill(PASSWORD);
    await page.getByLabel('New password', { exact: true }).fill(NEW_PASSWORD);
    await page.getByLabel('New password again').fill(NEW_PASSWORD);
    await page.getByRole('button', { name: 'Change password' }).click();
    await expectVisible(page, 'Done: your password is changed.');

    await page.getByRole('link', { name: 'Authenticator' }).click();
    await expectHeading(page, 'Your authenticator');
    await checkPage(page);
    await page.getByLabel('Code from your current authenticator').first().fill('000000');
    await page.getByRole('button', { name: 'Continue' }).click();
    await expectVisible(page, 'That code is not right.');
    await page.getByLabel('Code from your current authenticator').first().fill(code());
    await page.getByRole('button', { name: 'Continue' }).click();
    await expectHeading(page, 'Connect your new authenticator');
    await checkPage(page);
    await screenshot(page, 'account-authenticator');
    const newCode = authenticator((await page.locator('#secret').innerText()).replace(/\s+/g, ''));
    await page.getByLabel('Code from the new authenticator').fill(newCode());
    await page.getByRole('button', { name: 'Confirm' }).click();
    await expectVisible(page, 'Done: your new authenticator');

    await page.getByRole('link', { name: 'Recent sign-ins' }).click();
    await expectHeading(page, 'Recent sign-ins');
    await checkPage(page);
    expect(await page.locator('table.sign-ins tbody tr').count()).toBeGreaterThanOrEqual(2);
    await screenshot(page, 'account-sign-ins');

    // the next sign-in (another browser): the new password and the new authenticator
    const next = await browser.newContext();
    try {
      const fresh = await next.newPage();
      await fresh.goto(`${server.url}/account`);
      await expectHeading(fresh, 'Sign in');
      await signIn(fresh, 'pia', NEW_PASSWORD);
      await enterCode(fresh, newCode());
      await expectHeading(fresh, 'Your account');
    } finally {
      await next.close();
    }
  } finally {
    await context.close();
  }
}, 90_000); // about 15 s on an idle machine; more when the machine is shared
