import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as client from 'openid-client';
import { chromium, type Browser, type Page } from 'playwright-core';
import { totpCode } from '../../src/accounts/totp.service.ts';
import { cliWithInput, createCodePartner, type CliResult } from './harness.ts';

const CHROMIUM = '/usr/bin/chromium';

/** Debian's chromium, headless. CI installs it (`apt-get install -y chromium`): no skipping. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/** `portcullis user create … --password-stdin` with `password` on standard input. */
export function createUser(env: Record<string, string>, username: string, password: string, ...flags: string[]): Promise<CliResult> {
  return cliWithInput(env, `${password}\n`, 'user', 'create', '--username', username, '--password-stdin', ...flags);
}

export function secretOf(totpUri: string): string {
  return new URL(totpUri).searchParams.get('secret')!;
}

/** The code an authenticator shows now, or `steps` periods later (still inside the ±1 window). */
export function codeFor(secret: string, steps = 0): string {
  return totpCode(secret.replace(/\s+/g, ''), Date.now() + steps * 30_000);
}

/** A partner app's redirect URI: a local HTTP listener that records where the browser lands. */
export async function startRedirectCatcher() {
  const hits: URL[] = [];
  const server = http.createServer((req, res) => {
    hits.push(new URL(req.url ?? '/', `http://127.0.0.1:${(server.address() as AddressInfo).port}`));
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>Partner app</title><h1>Back at the partner app</h1>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    redirectUri: `${base}/callback`,
    logoutUri: `${base}/logged-out`,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export type PartnerApp = Readonly<{ clientId: string; config: client.Configuration; redirectUri: string }>;

/** Registers an authorization-code partner and points openid-client at the server (through `options.fetch` if given). */
export async function registerPartnerApp(
  env: Record<string, string>,
  issuer: string,
  redirectUri: string,
  options: { name?: string; scope?: string; public?: boolean; fetch?: client.CustomFetch } = {},
): Promise<PartnerApp> {
  const { clientId, clientSecret } = await createCodePartner(env, redirectUri, options);
  const config = await client.discovery(new URL(issuer), clientId, clientSecret, options.public ? client.None() : undefined, {
    execute: [client.allowInsecureRequests],
    ...(options.fetch ? { [client.customFetch]: options.fetch } : {}),
  });
  return { clientId, config, redirectUri };
}

/** What the partner app keeps between sending the person off and getting them back. */
export async function authorizationRequest(app: PartnerApp, params: Record<string, string> = {}) {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(app.config, {
    redirect_uri: app.redirectUri,
    scope: 'openid payments:read',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    ...params,
  });
  return {
    url,
    exchange: (callback: URL) => client.authorizationCodeGrant(app.config, callback, { pkceCodeVerifier: verifier, expectedState: state }),
  };
}

/** Waits until the browser is back on the partner's redirect URI and returns that URL. */
export async function landedAt(page: Page, redirectUri: string): Promise<URL> {
  await page.waitForURL((url) => url.href.startsWith(redirectUri), { timeout: 15_000 });
  return new URL(page.url());
}

export async function signIn(page: Page, username: string, password: string): Promise<void> {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** The enrolment page's first step: the one-time code `user create` / `user reset-totp` printed. */
export async function enterEnrolmentCode(page: Page, code: string): Promise<void> {
  await page.getByLabel('Enrolment code').fill(code);
  await page.getByRole('button', { name: 'Continue' }).click();
}

export async function enterCode(page: Page, code: string): Promise<void> {
  await page.getByLabel('Code').fill(code);
  await page.getByRole('button', { name: /verify|confirm/i }).click();
}

/** Waits for the page whose one h1 reads `name`; fails (with the page's h1) otherwise. */
export async function expectHeading(page: Page, name: string | RegExp): Promise<void> {
  try {
    await page.getByRole('heading', { level: 1, name }).waitFor({ timeout: 10_000 });
  } catch {
    throw new Error(
      `expected the page "${String(name)}", got "${(await page.locator('h1').allInnerTexts()).join(' / ')}" at ${page.url()}`,
    );
  }
  if ((await page.locator('h1').count()) !== 1) throw new Error(`${page.url()} has more than one h1`);
}

export async function expectVisible(page: Page, text: string | RegExp): Promise<void> {
  await page.getByText(text).first().waitFor({ timeout: 5_000 });
}

/**
 * One h1, a language, a label for every input, a name for every button and image (but the logo in
 * the header, which the brand's name beside it names: alt=""), no script or inline style.
 */
export async function checkPage(page: Page): Promise<void> {
  expect(await page.locator('h1').count()).toBe(1);
  expect(await page.locator('html').getAttribute('lang')).toBe('en');
  for (const input of await page.locator('input:not([type=hidden])').all()) {
    const id = await input.getAttribute('id');
    expect(id).toBeTruthy();
    expect(await page.locator(`label[for="${id}"]`).count()).toBe(1);
  }
  for (const button of await page.locator('button').all()) expect((await button.innerText()).trim()).not.toBe('');
  for (const img of await page.locator('img:not(header .logo)').all()) expect(await img.getAttribute('alt')).toBeTruthy();
  for (const logo of await page.locator('header .logo').all()) expect(await logo.getAttribute('alt')).toBe('');
  expect((await page.locator('header .brand-name').innerText()).trim()).not.toBe('');
  expect(await page.locator('script, [style]').count()).toBe(0);
}
