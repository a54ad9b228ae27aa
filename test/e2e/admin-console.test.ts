import fs from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { cli, freshDatabaseUrl, instanceEnv, ROOT, tempDir } from '../support/harness.ts';
import { basic, form } from '../support/http.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import { checkPage, codeFor, createUser, enterCode, expectHeading, launchBrowser, secretOf, signIn } from '../support/login.ts';

// The admin console in Chromium: sign in as an admin, the overview, a partner created with its
// secret shown once, that secret's token, the partner suspended and its token refused, a signing
// key rotated and another revoked with its kid typed (the JWKS changes at once), a non-admin
// refused, a form without its CSRF token refused, and a second sign-in asked when the first is
// older than ADMIN_AUTH_MAX_AGE. Screenshots of each page land in test-output/screenshots/.

// What the functions run in the page use (this project type-checks without the DOM library).
declare const document: { documentElement: { scrollWidth: number } };

const PASSWORD = 'correct horse battery staple';
const API = 'https://api.bank.test/payments';
const SCREENSHOTS = path.join(ROOT, 'test-output', 'screenshots');
const PHONE = { width: 360, height: 740 };

let server: InProcessServer;
/** A second instance on the same database whose sign-ins count as recent for one second only. */
let strict: InProcessServer;
let browser: Browser;
let admin: BrowserContext;
let page: Page;
const totp: Record<string, string> = {};

beforeAll(async () => {
  const dir = tempDir();
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  server = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir)));
  expect((await cli(server.env, 'resource', 'create', '--uri', API, '--scope', 'payments:read payments:write', '--default')).code).toBe(0);
  for (const [username, ...flags] of [['root', '--admin'], ['ops', '--admin'], ['pat']]) {
    const person = await createUser(server.env, username, PASSWORD, '--with-totp', ...flags);
    expect(person.code).toBe(0);
    totp[username] = secretOf(person.json.totp_uri);
  }
  strict = await startInProcess({ ...instanceEnv(dir, server.env.DATABASE_URL), ADMIN_AUTH_MAX_AGE: '1s' });
  browser = await launchBrowser();
  admin = await browser.newContext();
  page = await admin.newPage();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await strict?.stop();
  await server?.stop();
});

async function screenshot(on: Page, name: string): Promise<void> {
  await on.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** From a console page not signed in: the sign-in, the second factor, and back on `heading`. */
async function consoleSignIn(on: Page, url: string, username: string, step: number, heading: string | RegExp) {
  await on.goto(url);
  await expectHeading(on, 'Sign in');
  await signIn(on, username, PASSWORD);
  await enterCode(on, codeFor(totp[username], step));
  await expectHeading(on, heading);
}

const clientCredentials = (clientId: string, secret: string) =>
  fetch(`${server.url}/token`, {
    method: 'POST',
    headers: { authorization: basic(clientId, secret), 'content-type': 'application/x-www-form-urlencoded' },
    body: form({ grant_type: 'client_credentials', scope: 'payments:read' }),
  });

const jwksKids = async () =>
  ((await (await fetch(`${server.url}/jwks`)).json()) as { keys: Array<{ kid: string }> }).keys.map((key) => key.kid);

test('an admin signs in and the overview shows the last hour, the counts and the key timeline', async () => {
  await consoleSignIn(page, `${server.url}/admin`, 'root', 0, 'Administration');
  await checkPage(page);
  const figures = await page.locator('.figures li').allInnerTexts();
  expect(figures.map((text) => text.replace(/\s+/g, ' ').trim())).toEqual([
    expect.stringMatching(/^\d+ tokens issued$/),
    expect.stringMatching(/^\d+ failed logins$/),
    '0 partners',
    '3 people',
    '2 APIs',
  ]);
  expect(await page.locator('.key-timeline svg[role="img"] rect.bar.signing').count()).toBeGreaterThan(0);
  expect(await page.locator('table caption', { hasText: 'Signing keys' }).count()).toBe(1);
  await screenshot(page, 'admin-overview');
});

test('a partner created in the console: its secret shown once, its token; suspended, its token refused', async () => {
  await page.goto(`${server.url}/admin/partners`);
  await page.getByRole('link', { name: 'New partner' }).click();
  await expectHeading(page, 'New partner');
  await checkPage(page);
  await page.getByLabel('Name', { exact: true }).fill('Kyoto <b>Bank</b>');
  await page.getByLabel('payments:read').check();
  await screenshot(page, 'admin-partner-new');
  await page.getByRole('button', { name: 'Create the partner' }).click();
  await expectHeading(page, 'Client secret of Kyoto <b>Bank</b>');
  const secret = (await page.locator('#client-secret').innerText()).trim();
  const clientId = page.url().split('/')[5];
  expect(secret).toMatch(/^[\w-]{43}$/);
  await screenshot(page, 'admin-partner-secret');
  // a reload, and back then forward, show it no more
  await page.reload();
  expect(await page.content()).not.toContain(secret);
  await page.goBack();
  await page.goForward();
  await expectHeading(page, 'Client secret of Kyoto <b>Bank</b>');
  expect(await page.content()).not.toContain(secret);
  await page.getByText('was shown once').waitFor();

  const token = await clientCredentials(clientId, secret);
  expect(token.status).toBe(200);

  await page.getByRole('link', { name: /Go to Kyoto/ }).click();
  await expectHeading(page, 'Kyoto <b>Bank</b>');
  await checkPage(page);
  await screenshot(page, 'admin-partner');
  await page.getByRole('link', { name: 'Suspend…' }).click();
  await expectHeading(page, 'Suspend a partner');
  await page.getByRole('button', { name: 'Suspend' }).click();
  await expectHeading(page, 'Kyoto <b>Bank</b>');
  await page.getByText('The partner is suspended').waitFor();
  const refused = await clientCredentials(clientId, secret);
  expect(refused.status).toBe(401);
  expect(((await refused.json()) as { error: string }).error).toBe('invalid_client');

  await page.goto(`${server.url}/admin/partners`);
  await expectHeading(page, 'Partners');
  await checkPage(page);
  await screenshot(page, 'admin-partners');
  const phone = await admin.newPage();
  await phone.setViewportSize(PHONE);
  await phone.goto(`${server.url}/admin/partners`);
  await expectHeading(phone, 'Partners');
  expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(PHONE.width);
  await screenshot(phone, 'admin-partners-360');
  await phone.close();
});

test('APIs and scopes: the list, scope descriptions in words, the built-in admin API read-only', async () => {
  await page.goto(`${server.url}/admin/apis`);
  await expectHeading(page, 'APIs and scopes');
  await checkPage(page);
  await screenshot(page, 'admin-apis');
  await page.getByRole('link', { name: API }).click();
  await expectHeading(page, 'Change an API');
  await page.getByLabel('What each scope allows, in words').fill('payments:read = See your payments\npayments:write = Make payments');
  await page.getByRole('button', { name: 'Save the changes' }).click();
  await page.getByText('The API is changed.').waitFor();
  expect(await page.getByLabel('What each scope allows, in words').inputValue()).toBe(
    'payments:read = See your payments\npayments:write = Make payments',
  );
  await screenshot(page, 'admin-api');
  await page.goto(`${server.url}/admin/apis`);
  // (the second instance, below, has its own ISSUER: the built-in API follows the last one started)
  await page.getByRole('link', { name: /\/admin\/api\/v1$/ }).click();
  await expectHeading(page, 'Built-in API');
  expect(await page.locator('main form:not(.sign-out)').count()).toBe(0);
});

test('signing keys: rotate (the new key is in the JWKS at once), revoke with the kid typed (it leaves at once)', async () => {
  const before = await jwksKids();
  await page.goto(`${server.url}/admin/keys`);
  await expectHeading(page, 'Signing keys');
  await checkPage(page);
  await page.getByRole('button', { name: 'Rotate the signing key' }).click();
  await page.getByText(/added: it is in the JWKS now/).waitFor();
  const after = await jwksKids();
  expect(after).toHaveLength(before.length + 1);
  expect(after).toEqual(expect.arrayContaining(before));
  await screenshot(page, 'admin-keys');

  const signing = before[0]; // the signer is first in the JWKS
  await page.getByRole('link', { name: `Revoke… key ${signing}` }).click();
  await expectHeading(page, 'Revoke a signing key');
  await page.getByLabel('Type the key ID to confirm').fill(signing.slice(0, -1));
  await page.getByRole('button', { name: 'Revoke this key' }).click();
  await page.getByText('does not match').waitFor();
  expect(await jwksKids()).toEqual(after);
  await screenshot(page, 'admin-key-revoke');
  await page.getByLabel('Type the key ID to confirm').fill(signing);
  await page.getByRole('button', { name: 'Revoke this key' }).click();
  await page.getByText(/is revoked: it has left the JWKS/).waitFor();
  const revoked = await jwksKids();
  expect(revoked).not.toContain(signing);
  expect(revoked[0]).not.toBe(signing);
});

test('a person who is not an admin is refused; a form without its CSRF token is refused', async () => {
  const context = await browser.newContext();
  const other = await context.newPage();
  await consoleSignIn(other, `${server.url}/admin`, 'pat', 0, 'Not an administrator');
  await context.close();

  const kids = await jwksKids();
  const forged = await page.request.post(`${server.url}/admin/keys/rotate`, { form: { now: 'yes' }, maxRedirects: 0 });
  expect(forged.status()).toBe(403);
  expect(await forged.text()).toContain('Form refused');
  expect(await jwksKids()).toEqual(kids);
});

test('a destructive action asks for the password and second factor again once the sign-in is older than ADMIN_AUTH_MAX_AGE', async () => {
  const context = await browser.newContext();
  const on = await context.newPage();
  await consoleSignIn(on, `${strict.url}/admin/partners`, 'ops', 0, 'Partners');
  const signedInAt = Date.now();
  const partner = on.getByRole('link', { name: 'Kyoto <b>Bank</b>' });
  const target = `${strict.url}${(await partner.getAttribute('href'))!}/rotate-secret`;
  // auth_time counts whole seconds: with ADMIN_AUTH_MAX_AGE=1s the sign-in is too old two seconds
  // (at most) after it; the real clock is oidc-provider's, so this waits on it
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, (Math.floor(signedInAt / 1000) + 2) * 1000 - Date.now())));
  await on.goto(target);
  await expectHeading(on, 'Sign in');
  await signIn(on, 'ops', PASSWORD);
  await enterCode(on, codeFor(totp.ops, 1));
  await expectHeading(on, 'Rotate a client secret');
  expect(new URL(on.url()).pathname).toBe(new URL(target).pathname);
  await context.close();
});
