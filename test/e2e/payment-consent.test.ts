import type { Browser, Page } from 'playwright-core';
import { cli, freshDatabaseUrl, instanceEnv, tempDir } from '../support/harness.ts';
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
  signIn,
  enterCode,
  startRedirectCatcher,
  type PartnerApp,
} from '../support/login.ts';
import { PAYMENT, PAYMENTS_API, untilTypesSupported } from '../support/payments.ts';

// A person approving a payment in Chromium: the consent page says the payment in words, is an
// accessible page, is shown for every payment, and the token carries what was approved.

const PASSWORD = 'correct horse battery staple';

let server: InProcessServer;
let browser: Browser;
let catcher: Awaited<ReturnType<typeof startRedirectCatcher>>;
let app: PartnerApp;
let totp: string;

beforeAll(async () => {
  const dir = tempDir();
  server = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir), { KEY_POLL_INTERVAL: '1s' }));
  const api = await cli(
    server.env,
    'resource',
    'create',
    '--uri',
    PAYMENTS_API,
    '--scope',
    'payments:write',
    '--default',
    '--details-type',
    'payment_initiation',
  );
  expect(api.stderr).toBe('');
  catcher = await startRedirectCatcher();
  app = await registerPartnerApp(server.env, server.url, catcher.redirectUri, { name: 'Acme Pay', scope: 'payments:write' });
  const person = await createUser(server.env, 'paula', PASSWORD, '--with-totp');
  expect(person.code).toBe(0);
  totp = secretOf(person.json.totp_uri);
  browser = await launchBrowser();
  await untilTypesSupported(server.url, ['payment_initiation']);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await catcher?.close();
  await server?.stop();
});

const paymentParams = (detail: object) => ({
  scope: 'openid payments:write',
  resource: PAYMENTS_API,
  authorization_details: JSON.stringify([detail]),
});

/** The consent page's list, as the person reads it. */
async function consentItems(page: Page): Promise<string[]> {
  return (await page.locator('ul.scopes > li').allInnerTexts()).map((text) => text.replace(/\s+/g, ' ').trim());
}

test('the person sees each payment in words, approves it by keyboard, and the token carries it', async () => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  try {
    const page = await context.newPage();
    const first = await authorizationRequest(app, paymentParams(PAYMENT));
    await page.goto(first.url.href);
    await expectHeading(page, 'Sign in');
    await signIn(page, 'paula', PASSWORD);
    await enterCode(page, codeFor(totp));

    await expectHeading(page, 'Allow Acme Pay?');
    await checkPage(page);
    const items = await consentItems(page);
    expect(items[0]).toBe(
      'Pay €1,250.00 to ACME Supplies Ltd, IBAN DE89 3704 0044 0532 0130 00, reference Invoice 2291 Acme Pay may also check its status.',
    );
    expect(await page.getByText('it is not remembered').count()).toBe(1);
    await page.getByRole('button', { name: 'Allow' }).focus();
    await page.keyboard.press('Enter');
    const tokens = await first.exchange(await landedAt(page, catcher.redirectUri));
    expect(tokens.authorization_details).toEqual([PAYMENT]);

    // the next payment, same browser and partner, scopes already granted: asked again, this payment only
    const next = {
      ...PAYMENT,
      instructedAmount: { currency: 'JPY', amount: '5000' },
      creditorName: 'Kyoto Tea <Shop>',
      requestedExecutionDate: '2026-12-01',
    };
    const second = await authorizationRequest(app, paymentParams(next));
    await page.goto(second.url.href);
    await expectHeading(page, 'Allow Acme Pay?');
    await checkPage(page);
    const nextItems = await consentItems(page);
    expect(nextItems[0]).toMatch(
      /^Pay JP¥5,000 to Kyoto Tea <Shop>, IBAN DE89 3704 0044 0532 0130 00, reference Invoice 2291, on 1 December 2026/,
    );
    expect(nextItems.join(' ')).not.toContain('1,250.00');
    await page.getByRole('button', { name: 'Allow' }).click();
    const secondTokens = await second.exchange(await landedAt(page, catcher.redirectUri));
    expect(secondTokens.authorization_details).toEqual([next]);
  } finally {
    await context.close();
  }
});
