import * as oauth from 'oauth4webapi';
import type { Browser } from 'playwright-core';
import { cli, tempDir } from '../support/harness.ts';
import type { InProcessServer } from '../support/in-process.ts';
import {
  codeFor,
  createUser,
  enterCode,
  expectHeading,
  landedAt,
  launchBrowser,
  secretOf,
  signIn,
  startRedirectCatcher,
} from '../support/login.ts';
import { startNativeTls, thumbprint, type ClientCa, type NativeTlsServer } from '../support/tls.ts';

// A person signs in (Chromium: password, TOTP, consent) for a partner app that authenticates
// with its certificate (tls_client_auth) over the native TLS listener and gets certificate-bound
// tokens (oauth4webapi, through the mTLS endpoint aliases): the code exchange, userinfo (the
// protected resource this server is) with and without the certificate, refreshes with the same certificate, another partner's, and a renewed one.

const PAYMENTS = 'https://api.bank.test/payments';
const PASSWORD = 'correct horse battery staple';
const DN = 'CN=budgeting-app,O=Acme Budgeting,C=GB';
const SUBJECT = '/C=GB/O=Acme Budgeting/CN=budgeting-app';

let server: InProcessServer;
let partnerCa: ClientCa;
let over: NativeTlsServer['over'];
let browser: Browser | undefined;
let catcher: Awaited<ReturnType<typeof startRedirectCatcher>>;

beforeAll(async () => {
  ({ server, partnerCa, over } = await startNativeTls(tempDir('portcullis-mtls-login-')));
  catcher = await startRedirectCatcher();
  browser = await launchBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await catcher.close();
  await server.stop();
});

test('authorization code with tls_client_auth and certificate-bound tokens; refresh with the same, another and a renewed certificate', async () => {
  const resource = await cli(server.env, 'resource', 'create', '--uri', PAYMENTS, '--scope', 'payments:read', '--default');
  expect(resource.code).toBe(0);
  const created = await cli(
    server.env,
    'partner',
    'create',
    '--name',
    'Acme Budgeting',
    '--scope',
    'payments:read',
    '--grant',
    'authorization_code',
    '--redirect-uri',
    catcher.redirectUri,
    '--auth-method',
    'tls_client_auth',
    '--tls-subject-dn',
    DN,
    '--token-binding',
    'mtls',
  );
  expect(created.stderr).toBe('');
  const client: oauth.Client = {
    client_id: created.json.client_id as string,
    use_mtls_endpoint_aliases: true,
    id_token_signed_response_alg: 'ES256',
  };
  const certificate = partnerCa.issue('budgeting', SUBJECT);
  const person = await createUser(server.env, 'alice', PASSWORD, '--with-totp');
  expect(person.code).toBe(0);

  const as = await oauth.processDiscoveryResponse(new URL(server.url), await oauth.discoveryRequest(new URL(server.url), over()));
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const authorizationUrl = new URL(as.authorization_endpoint!);
  for (const [name, value] of Object.entries({
    client_id: client.client_id,
    redirect_uri: catcher.redirectUri,
    response_type: 'code',
    // openid only: the access token is for userinfo (opaque), where this server itself checks the binding
    scope: 'openid',
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  }))
    authorizationUrl.searchParams.set(name, value);

  // the person's steps: the browser presents no certificate (the listener asks, and requires none)
  const context = await browser!.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await page.goto(authorizationUrl.href);
  await expectHeading(page, 'Sign in');
  await signIn(page, 'alice', PASSWORD);
  await expectHeading(page, 'Two-step verification');
  await enterCode(page, codeFor(secretOf(person.json.totp_uri as string)));
  await expectHeading(page, 'Allow Acme Budgeting?');
  await page.getByRole('button', { name: 'Allow' }).click();
  const callback = oauth.validateAuthResponse(as, client, await landedAt(page, catcher.redirectUri), state);
  await context.close();

  /** The token's `cnf`, as introspection (by the partner, with `presented`) tells it. */
  const cnfOf = async (token: string, presented = certificate) => {
    const response = await oauth.introspectionRequest(as, client, oauth.TlsClientAuth(), token, over(presented));
    const introspected = await oauth.processIntrospectionResponse(as, client, response);
    expect(introspected.active).toBe(true);
    return introspected.cnf;
  };
  const exchanged = await oauth.processAuthorizationCodeResponse(
    as,
    client,
    await oauth.authorizationCodeGrantRequest(
      as,
      client,
      oauth.TlsClientAuth(),
      callback,
      catcher.redirectUri,
      verifier,
      over(certificate),
    ),
  );
  expect(oauth.getValidatedIdTokenClaims(exchanged)?.amr).toEqual(['pwd', 'otp']);
  const bound = { 'x5t#S256': thumbprint(certificate.cert) };
  expect(await cnfOf(exchanged.access_token)).toEqual(bound);
  expect(exchanged.refresh_token).toBeDefined();

  // userinfo (an mTLS alias) takes the bound token with its certificate only
  const userinfo = await oauth.userInfoRequest(as, client, exchanged.access_token, over(certificate));
  expect(userinfo.status).toBe(200);
  const other = partnerCa.issue('globex', '/C=GB/O=Globex/CN=globex-app');
  for (const presented of [undefined, other]) {
    const refused = await oauth.userInfoRequest(as, client, exchanged.access_token, over(presented));
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toMatch(/invalid_token/);
  }

  // refresh with the same certificate: a new token, bound to it
  const refreshed = await oauth.processRefreshTokenResponse(
    as,
    client,
    await oauth.refreshTokenGrantRequest(as, client, oauth.TlsClientAuth(), exchanged.refresh_token!, over(certificate)),
  );
  expect(await cnfOf(refreshed.access_token)).toEqual(bound);

  // another partner's certificate (the CA's, another DN), or none: invalid_client
  for (const presented of [other, undefined]) {
    const response = await oauth.refreshTokenGrantRequest(as, client, oauth.TlsClientAuth(), refreshed.refresh_token!, over(presented));
    expect(response.status).toBe(401);
    expect(((await response.json()) as { error: string }).error).toBe('invalid_client');
  }

  // a renewed certificate (new key, same DN) carries on (RFC 8705 §3: the refresh token is the partner's), and binds the new token
  const renewed = partnerCa.issue('budgeting-renewed', SUBJECT);
  const afterRenewal = await oauth.processRefreshTokenResponse(
    as,
    client,
    await oauth.refreshTokenGrantRequest(as, client, oauth.TlsClientAuth(), refreshed.refresh_token!, over(renewed)),
  );
  expect(await cnfOf(afterRenewal.access_token, renewed)).toEqual({ 'x5t#S256': thumbprint(renewed.cert) });
  expect(thumbprint(renewed.cert)).not.toBe(bound['x5t#S256']);
}, 60_000);
