import fs from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { freshDatabaseUrl, instanceEnv, ROOT, seedPartner, tempDir } from '../support/harness.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import {
  authorizationRequest,
  checkPage,
  codeFor,
  createUser,
  expectHeading,
  landedAt,
  launchBrowser,
  registerPartnerApp,
  startRedirectCatcher,
} from '../support/login.ts';

const PASSWORD = 'correct horse battery staple';
/** Each page in the shipped brand (test/e2e/brand.test.ts photographs a custom one). */
const SCREENSHOTS = path.join(ROOT, 'test-output', 'screenshots', 'default');
const screenshot = (page: Page, name: string) => page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });

let server: InProcessServer;
let browser: Browser;
let catcher: Awaited<ReturnType<typeof startRedirectCatcher>>;

beforeAll(async () => {
  const dir = tempDir();
  server = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir)));
  await seedPartner(server.env);
  catcher = await startRedirectCatcher();
  browser = await launchBrowser();
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await catcher?.close();
  await server?.stop();
});

test('the whole login works without JavaScript, by keyboard alone, and every page is labelled', async () => {
  const app = await registerPartnerApp(server.env, server.url, catcher.redirectUri, { name: 'Keyboard Bank' });
  const created = await createUser(server.env, 'kate', PASSWORD);
  expect(created.code).toBe(0);
  const context = await browser.newContext({ javaScriptEnabled: false });
  try {
    const page = await context.newPage();
    const request = await authorizationRequest(app);
    await page.goto(request.url.href);

    await expectHeading(page, 'Sign in');
    await checkPage(page);
    await screenshot(page, 'sign-in');
    // the username field has focus on arrival; Tab to the password, Enter submits
    await page.keyboard.type('kate');
    await page.keyboard.press('Tab');
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press('Enter');

    await expectHeading(page, 'Set up your authenticator');
    await checkPage(page);
    await screenshot(page, 'enrolment-code');
    // the enrolment code field has focus on arrival
    await page.keyboard.type(created.json.enrolment_code);
    await page.keyboard.press('Enter');

    await expectHeading(page, 'Connect your authenticator');
    await checkPage(page);
    await screenshot(page, 'enrol-authenticator');
    const secret = (await page.locator('#secret').innerText()).replace(/\s+/g, '');
    await page.getByLabel('Code').focus();
    await page.keyboard.type(codeFor(secret));
    await page.keyboard.press('Enter');

    await expectHeading(page, 'Save your recovery codes');
    await checkPage(page);
    await screenshot(page, 'recovery-codes');
    await page.getByRole('button', { name: /continue/i }).focus();
    await page.keyboard.press('Enter');

    await expectHeading(page, 'Allow Keyboard Bank?');
    await checkPage(page);
    await screenshot(page, 'consent');
    await page.getByRole('button', { name: 'Allow' }).focus();
    await page.keyboard.press('Enter');

    const tokens = await request.exchange(await landedAt(page, catcher.redirectUri));
    expect(tokens.claims()!.amr).toEqual(['pwd', 'otp']);
  } finally {
    await context.close();
  }
});

test('error pages are labelled pages too', async () => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  try {
    const page = await context.newPage();
    const res = await page.goto(`${server.url}/interaction/unknown`);
    expect(res!.status()).toBe(400);
    await expectHeading(page, 'Sign-in expired');
    await checkPage(page);
    await screenshot(page, 'error');
  } finally {
    await context.close();
  }
});
