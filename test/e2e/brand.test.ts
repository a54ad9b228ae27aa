import fs from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
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
  secretOf,
  startRedirectCatcher,
} from '../support/login.ts';

// The brand settings on every kind of page — sign-in, second factor, consent, an error — at a
// desktop and a phone's width, by keyboard; a screenshot of each lands in test-output/screenshots/.

// What the functions run in the page use (this project type-checks without the DOM library).
type PageElement = { innerText: string; getAttribute(name: string): string | null; complete?: boolean; naturalWidth?: number };
declare const document: { activeElement: PageElement | null; body: PageElement; documentElement: { scrollWidth: number } };
declare function getComputedStyle(element: unknown): { backgroundColor: string; color: string; outlineStyle: string; fontSize: string };

const PASSWORD = 'correct horse battery staple';
const BRAND = { name: 'Acme Pay', accent: '#0f5e7a', accentRgb: 'rgb(15, 94, 122)' };
const PARTNER = 'Kyoto <script>alert(1)</script> Bank';
const SCREENSHOTS = path.join(ROOT, 'test-output', 'screenshots');
const LOGO = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 96 40" width="96" height="40"><rect width="96" height="40" rx="8" fill="${BRAND.accent}"/><circle cx="20" cy="20" r="10" fill="#fff"/></svg>`;
const PHONE = { width: 360, height: 740 };

let server: InProcessServer;
let browser: Browser;
let catcher: Awaited<ReturnType<typeof startRedirectCatcher>>;
/** One person per test: each login then has its own second factor and its own consent to give. */
const totp: Record<string, string> = {};
let app: Awaited<ReturnType<typeof registerPartnerApp>>;

beforeAll(async () => {
  const dir = tempDir();
  const logo = path.join(dir, 'acme-logo.svg');
  fs.writeFileSync(logo, LOGO);
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  server = await startInProcess(
    instanceEnv(dir, freshDatabaseUrl(dir), { BRAND_NAME: BRAND.name, BRAND_ACCENT: BRAND.accent, BRAND_LOGO: logo }),
  );
  await seedPartner(server.env);
  catcher = await startRedirectCatcher();
  for (const username of ['desk', 'phone']) {
    const person = await createUser(server.env, username, PASSWORD, '--with-totp');
    expect(person.code).toBe(0);
    totp[username] = secretOf(person.json.totp_uri);
  }
  app = await registerPartnerApp(server.env, server.url, catcher.redirectUri, { name: PARTNER });
  browser = await launchBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await catcher?.close();
  await server?.stop();
});

/** The page shows the brand: its name in the header and the title, its logo (this very file), its accent on `primary`. */
async function expectBrand(page: Page, title: string, primary?: string): Promise<void> {
  expect(await page.title()).toBe(`${title} — ${BRAND.name}`);
  expect((await page.locator('header .brand-name').innerText()).trim()).toBe(BRAND.name);
  const logo = page.locator('header img.logo');
  expect(await logo.getAttribute('alt')).toBe(''); // the name beside it says it
  const logoAnswer = await page.request.get(new URL((await logo.getAttribute('src'))!, page.url()).href);
  expect(logoAnswer.headers()['content-type']).toBe('image/svg+xml');
  expect(logoAnswer.headers()['cache-control']).toMatch(/max-age=31536000/);
  expect(await logoAnswer.text()).toBe(LOGO);
  expect(
    await logo.evaluate(
      (img) => (img as unknown as PageElement).complete === true && Number((img as unknown as PageElement).naturalWidth) > 0,
    ),
  ).toBe(true);
  if (primary !== undefined) {
    const button = page.getByRole('button', { name: primary });
    expect(await button.evaluate((element) => getComputedStyle(element).backgroundColor)).toBe(BRAND.accentRgb);
    expect(await button.evaluate((element) => getComputedStyle(element).color)).toBe('rgb(255, 255, 255)');
  }
}

/** What has focus (a field by its name, a button or link by its text) and whether it shows an outline. */
const focused = (page: Page) =>
  page.evaluate(() => {
    const element = document.activeElement;
    if (!element || element === document.body) return undefined;
    return { name: (element.innerText || element.getAttribute('name') || '').trim(), outline: getComputedStyle(element).outlineStyle };
  });

/**
 * From the page as it arrives (the field with autofocus, or nothing), Tab until `name` has focus,
 * which must show a visible outline; returns the names that had focus, in order.
 */
async function tabTo(page: Page, name: string): Promise<string[]> {
  const passed: string[] = [];
  for (let step = 0; step < 12; step += 1) {
    const now = await focused(page);
    if (now) passed.push(now.name);
    if (now?.name === name) {
      expect(now.outline).toBe('solid');
      return passed;
    }
    await page.keyboard.press('Tab');
  }
  throw new Error(`Tab never reached "${name}": ${passed.join(' → ')}`);
}

async function expectNoHorizontalScroll(page: Page): Promise<void> {
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(PHONE.width);
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** Sign-in, second factor and consent of one login in `context`, checked and photographed; returns the token answer's claims. */
async function login(context: BrowserContext, username: string, width?: number) {
  const label = width ? 'phone' : 'desktop';
  const page = await context.newPage();
  const request = await authorizationRequest(app);
  await page.goto(request.url.href);

  await expectHeading(page, 'Sign in');
  await checkPage(page);
  await expectBrand(page, 'Sign in', 'Sign in');
  if (width) await expectNoHorizontalScroll(page);
  expect(await tabTo(page, 'Sign in')).toEqual(['username', 'password', 'Sign in']);
  await screenshot(page, `sign-in-${label}`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.keyboard.press('Enter');

  await expectHeading(page, 'Two-step verification');
  await checkPage(page);
  await expectBrand(page, 'Two-step verification', 'Verify');
  if (width) await expectNoHorizontalScroll(page);
  expect(await tabTo(page, 'Verify')).toEqual(['code', 'Verify']);
  await screenshot(page, `second-factor-${label}`);
  await page.getByLabel('Code').fill(codeFor(totp[username]));
  await page.keyboard.press('Enter');

  // the partner's name, markup and all, is text: in the heading, the title and the "who asks" line
  await expectHeading(page, `Allow ${PARTNER}?`);
  await checkPage(page);
  await expectBrand(page, `Allow ${PARTNER}?`, 'Allow');
  expect(await page.locator('.requester-name').innerText()).toBe(PARTNER);
  expect(await page.locator('.requester-name').evaluate((element) => parseFloat(getComputedStyle(element).fontSize))).toBeGreaterThan(
    await page
      .locator('main > p')
      .last()
      .evaluate((element) => parseFloat(getComputedStyle(element).fontSize)),
  );
  const deny = page.getByRole('button', { name: 'Deny' });
  expect(await deny.evaluate((element) => getComputedStyle(element).backgroundColor)).toBe('rgb(255, 255, 255)');
  const account = page.getByRole('link', { name: 'your account page' });
  expect(await account.getAttribute('href')).toBe('/account');
  expect(await page.locator('main').innerText()).toContain(`You can withdraw what you allow ${PARTNER} at any time, on your account page.`);
  if (width) await expectNoHorizontalScroll(page);
  // Allow comes before Deny; the link to the account page after both
  const order = await tabTo(page, 'Allow');
  expect(order.at(-1)).toBe('Allow');
  await screenshot(page, `consent-${label}`);
  await page.keyboard.press('Enter');
  const tokens = await request.exchange(await landedAt(page, catcher.redirectUri));
  await page.close();
  return tokens.claims();
}

test('sign-in, second factor and consent carry the brand, by keyboard, on a desktop', async () => {
  const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1280, height: 800 } });
  try {
    expect((await login(context, 'desk'))?.amr).toEqual(['pwd', 'otp']);
  } finally {
    await context.close();
  }
});

test('the same pages fit a 360 px phone screen without sideways scrolling', async () => {
  const context = await browser.newContext({ javaScriptEnabled: false, viewport: PHONE, isMobile: true, hasTouch: true });
  try {
    expect((await login(context, 'phone', PHONE.width))?.amr).toEqual(['pwd', 'otp']);
  } finally {
    await context.close();
  }
});

test('an error page carries the brand too', async () => {
  for (const [label, viewport] of [
    ['desktop', { width: 1280, height: 800 }],
    ['phone', PHONE],
  ] as const) {
    const context = await browser.newContext({ javaScriptEnabled: false, viewport });
    try {
      const page = await context.newPage();
      const res = await page.goto(`${server.url}/interaction/unknown`);
      expect(res!.status()).toBe(400);
      await expectHeading(page, 'Sign-in expired');
      await checkPage(page);
      await expectBrand(page, 'Sign-in expired');
      if (label === 'phone') await expectNoHorizontalScroll(page);
      await screenshot(page, `error-${label}`);
    } finally {
      await context.close();
    }
  }
});
