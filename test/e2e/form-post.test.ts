import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as jose from 'jose';
import type { Browser } from 'playwright-core';
import { cli, createCodePartner, freshDatabaseUrl, instanceEnv, tempDir } from '../support/harness.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import { codeFor, createUser, enterCode, expectHeading, launchBrowser, secretOf, signIn } from '../support/login.ts';

// Discovery lists response_mode form_post (and form_post.jwt, JARM): the browser must really post
// the answer to the partner. The page oidc-provider renders auto-submits with an inline script
// whose hash it adds to our CSP; the CSP's form-action must also name the partner's origin.

const PASSWORD = 'correct horse battery staple';

let server: InProcessServer;
let browser: Browser;
let catcher: http.Server;
let redirectUri: string;
const posts: URLSearchParams[] = [];
let partner: { clientId: string };

beforeAll(async () => {
  const dir = tempDir();
  server = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir), { LOG_LEVEL: 'warn' }));
  await cli(server.env, 'resource', 'create', '--uri', 'https://api.bank.test/payments', '--scope', 'payments:read', '--default');
  catcher = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      if (req.method === 'POST') posts.push(new URLSearchParams(body));
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>Partner app</title><h1>Back at the partner app</h1>');
    });
  });
  await new Promise<void>((resolve) => catcher.listen(0, '127.0.0.1', resolve));
  redirectUri = `http://127.0.0.1:${(catcher.address() as AddressInfo).port}/callback`;
  partner = await createCodePartner(server.env, redirectUri, { name: 'Acme Budgeting' });
  browser = await launchBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => catcher.close(() => resolve()));
  await server?.stop();
});

test.each(['form_post', 'form_post.jwt'])('response_mode=%s: the browser posts the code to the partner', async (mode) => {
  const username = `poster-${mode.replace('.', '-')}`;
  const created = await createUser(server.env, username, PASSWORD, '--with-totp');
  const url = new URL(`${server.url}/auth`);
  for (const [name, value] of Object.entries({
    client_id: partner.clientId,
    response_type: 'code',
    response_mode: mode,
    redirect_uri: redirectUri,
    scope: 'openid payments:read',
    state: 'state-1',
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    code_challenge_method: 'S256',
  }))
    url.searchParams.set(name, value);
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const before = posts.length;
    await page.goto(url.href);
    await expectHeading(page, 'Sign in');
    await signIn(page, username, PASSWORD);
    await expectHeading(page, 'Two-step verification');
    await enterCode(page, codeFor(secretOf(created.json.totp_uri)));
    await expectHeading(page, 'Allow Acme Budgeting?');
    await page.getByRole('button', { name: 'Allow' }).click();
    await expectHeading(page, 'Back at the partner app');
    expect(posts).toHaveLength(before + 1);
    const answer = posts[before];
    if (mode === 'form_post') {
      expect({ code: Boolean(answer.get('code')), state: answer.get('state'), iss: answer.get('iss') }).toEqual({
        code: true,
        state: 'state-1',
        iss: server.url,
      });
    } else {
      const response = answer.get('response') ?? '';
      const { payload } = await jose.jwtVerify(response, jose.createRemoteJWKSet(new URL(`${server.url}/jwks`)), {
        issuer: server.url,
        audience: partner.clientId,
      });
      expect(payload).toMatchObject({ state: 'state-1', code: expect.any(String) });
    }
  } finally {
    await context.close();
  }
});
