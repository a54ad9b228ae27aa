import fs from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { cli, freshDatabaseUrl, instanceEnv, ROOT, tempDir } from '../support/harness.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import { checkPage, codeFor, createUser, enterCode, expectHeading, launchBrowser, secretOf, signIn } from '../support/login.ts';
import { personTokens, registerApp, tokenCall } from '../support/person-flow.ts';

// The admin console's People, Grants and Audit log pages in Chromium: an admin signs in, creates
// a person and sees the enrolment code once, unlocks and resets a person, revokes a grant (the
// partner's refresh token then fails), and filters the audit log. Screenshots of each page.

// What the functions run in the page use (this project type-checks without the DOM library).
declare const document: { documentElement: { scrollWidth: number } };

const PASSWORD = 'correct horse battery staple 42';
const API = 'https://api.bank.test/payments';
const SCREENSHOTS = path.join(ROOT, 'test-output', 'screenshots');
const screenshot = (page: Page, name: string) => page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });

let server: InProcessServer;
let browser: Browser;
let page: Page;
let rootSecret: string;

beforeAll(async () => {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const dir = tempDir();
  server = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir), { LOG_LEVEL: 'warn' }));
  await cli(server.env, 'resource', 'create', '--uri', API, '--scope', 'payments:read payments:write', '--format', 'opaque', '--default');
  rootSecret = secretOf((await createUser(server.env, 'root', PASSWORD, '--with-totp', '--admin')).json.totp_uri);
  browser = await launchBrowser();
  page = await (await browser.newContext()).newPage();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

test('people: sign in, create a person (the code once), unlock, reset the second factor', async () => {
  await page.goto(`${server.url}/admin/people`);
  await expectHeading(page, 'Sign in');
  await signIn(page, 'root', PASSWORD);
  await enterCode(page, codeFor(rootSecret));
  await expectHeading(page, 'People');
  await checkPage(page);
  expect(await page.locator('nav [aria-current="page"]').allInnerTexts()).toEqual(['People']);

  await page.getByRole('link', { name: 'New person' }).click();
  await expectHeading(page, 'New person');
  await checkPage(page);
  await page.getByLabel('Username').fill('fiona');
  await page.getByLabel('First password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create person' }).click();
  await expectHeading(page, 'Person created');
  const code = (await page.locator('#enrolment-code').innerText()).trim();
  expect(code.length).toBeGreaterThan(8);
  await page.getByRole('link', { name: /fiona’s page/ }).click();
  await expectHeading(page, 'fiona');
  expect(await page.content()).not.toContain(code);

  // a person locked out by failed sign-ins: the page says so, one button lifts it
  await server
    .db('users')
    .where({ username: 'fiona' })
    .update({ locked_until: Date.now() + 3_600_000 });
  await page.reload();
  await page.getByText('yes, until').waitFor();
  await page.getByRole('button', { name: 'Unlock' }).click();
  await page.getByText('Unlocked: the person may sign in again.').waitFor();
  expect(await page.getByRole('button', { name: 'Unlock' }).count()).toBe(0);

  await page.getByRole('link', { name: 'Reset second factor' }).click();
  await expectHeading(page, 'Reset fiona’s second factor?');
  await page.getByRole('button', { name: 'Reset second factor' }).click();
  await expectHeading(page, 'Second factor reset');
  const second = (await page.locator('#enrolment-code').innerText()).trim();
  expect(second).not.toBe(code);
  await page.getByRole('link', { name: /fiona’s page/ }).click();
  await expectHeading(page, 'fiona');
  await checkPage(page);
  await screenshot(page, 'admin-person');

  await page.goto(`${server.url}/admin/people?search=fi`);
  await page.getByRole('link', { name: 'fiona' }).waitFor();
  await screenshot(page, 'admin-people');
}, 60_000);

test('grants: a person’s grant in words, revoked; the partner’s refresh token then fails', async () => {
  const app = await registerApp(server.env, { name: 'Granted Budgeting' });
  const person = await personTokens(server.url, server.env, app);
  await page.goto(`${server.url}/admin/grants`);
  await expectHeading(page, 'Grants');
  await page.getByLabel('Person (username)').fill(person.username);
  await page.getByRole('button', { name: 'Filter' }).click();
  const row = page.getByRole('row').filter({ hasText: person.username });
  await row.getByText('Granted Budgeting').waitFor();
  expect(await row.innerText()).toContain('payments:read');
  await checkPage(page);
  await screenshot(page, 'admin-grants');
  await row.getByRole('button', { name: 'Revoke' }).click();
  await page.getByText('The grant was revoked').waitFor();
  expect(await page.getByRole('row').filter({ hasText: person.username }).count()).toBe(0);
  const refreshed = await tokenCall(server.url, app, { grant_type: 'refresh_token', refresh_token: person.refresh_token });
  expect(refreshed.body.error).toBe('invalid_grant');
}, 60_000);

test('audit log: filtered by action, the chain checked, usable at a phone’s width', async () => {
  await page.goto(`${server.url}/admin/audit`);
  await expectHeading(page, 'Audit log');
  await page.getByLabel('Action').fill('user.reset_totp');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL(/action=user\.reset_totp/);
  const rows = page.locator('tbody tr');
  expect(await rows.count()).toBe(1);
  expect(await rows.first().innerText()).toContain('user.reset_totp');
  expect(await rows.first().innerText()).toContain('username: fiona');
  await checkPage(page);
  await page.getByLabel('Action').fill('user.*');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL(/action=user\.\*/);
  const actions = await page.locator('tbody tr td:nth-child(4)').allInnerTexts();
  expect(new Set(actions)).toEqual(new Set(['user.create', 'user.unlock', 'user.reset_totp']));
  await screenshot(page, 'admin-audit');

  await page.setViewportSize({ width: 360, height: 740 });
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
  await page.getByRole('button', { name: 'Check the chain' }).click();
  await expectHeading(page, 'Audit log check');
  await page.getByText('The chain holds').waitFor();
}, 60_000);
