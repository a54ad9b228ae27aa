import * as jose from 'jose';
import * as oauth from 'oauth4webapi';
import type { Browser, Page } from 'playwright-core';
import { cli, freshDatabaseUrl, instanceEnv, tempDir, TEST_PG_URL } from '../support/harness.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import { httpLogin } from '../support/http-login.ts';
import { PAYMENT } from '../support/payments.ts';
import { assertion, clientOf, createKeyPartner, dpopHandle, fetchVia, post, withNonceRetry, type KeyPartner } from '../support/fapi.ts';
import {
  codeFor,
  createUser,
  enterCode,
  expectHeading,
  expectVisible,
  landedAt,
  launchBrowser,
  secretOf,
  signIn,
  startRedirectCatcher,
} from '../support/login.ts';

// The FAPI 2.0 authorization-code flow as a partner runs it (issue 11): oauth4webapi pushes the
// request (PAR) with private_key_jwt and DPoP, the person signs in and consents in Chromium, the
// code comes back with RFC 9207 `iss`, and the tokens are bound to the partner's DPoP key.

const ENGINE = TEST_PG_URL ? 'postgres' : 'sqlite';
const PASSWORD = 'correct horse battery staple';
const API = 'https://api.bank.test/payments';

let server: InProcessServer;
let env: Record<string, string>;
let browser: Browser;
let catcher: Awaited<ReturnType<typeof startRedirectCatcher>>;
let partner: KeyPartner;
let as: oauth.AuthorizationServer;
let people = 0;

const options = () => ({ [oauth.allowInsecureRequests]: true, [oauth.customFetch]: fetchVia(server.url, server.local) });

beforeAll(async () => {
  const dir = tempDir();
  // the API and its payment type exist before the server starts: it offers the type at once
  const setup = instanceEnv(dir, freshDatabaseUrl(dir), { LOG_LEVEL: 'warn' });
  const api = await cli(
    setup,
    'resource',
    'create',
    '--uri',
    API,
    '--scope',
    'payments:read payments:write',
    '--default',
    '--details-type',
    'payment_initiation',
  );
  if (api.code !== 0) throw new Error(api.stderr);
  server = await startInProcess(setup);
  env = server.env;
  catcher = await startRedirectCatcher();
  partner = await createKeyPartner(env, {
    name: 'Acme Open Banking',
    extra: ['--grant', 'authorization_code', '--redirect-uri', catcher.redirectUri],
  });
  as = await oauth.processDiscoveryResponse(new URL(server.url), await oauth.discoveryRequest(new URL(server.url), options()));
  browser = await launchBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await catcher?.close();
  await server?.stop();
});

/** A person with an authenticator (CLI), for the browser or for httpLogin. */
async function person() {
  const username = `fapi-person-${(people += 1)}`;
  const created = await createUser(env, username, PASSWORD, '--with-totp');
  if (created.code !== 0) throw new Error(created.stderr);
  return { username, secret: secretOf(created.json.totp_uri) };
}

/** PAR through oauth4webapi (private_key_jwt, DPoP): the authorization URL and what the partner keeps. */
async function pushed(dpop: oauth.DPoPHandle, extra: Record<string, string> = {}) {
  const { client, auth } = clientOf(partner);
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const params = {
    redirect_uri: catcher.redirectUri,
    scope: 'openid payments:read',
    response_type: 'code',
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    ...extra,
  };
  const par = await withNonceRetry(async () =>
    oauth.processPushedAuthorizationResponse(
      as,
      client,
      await oauth.pushedAuthorizationRequest(as, client, auth, params, { ...options(), DPoP: dpop }),
    ),
  );
  const url = new URL(as.authorization_endpoint!);
  url.searchParams.set('client_id', partner.clientId);
  url.searchParams.set('request_uri', par.request_uri);
  return { url, verifier, state };
}

async function exchange(callback: URL, request: { verifier: string; state: string }, dpop: oauth.DPoPHandle) {
  const { client, auth } = clientOf(partner);
  const params = oauth.validateAuthResponse(as, client, callback, request.state);
  return withNonceRetry(async () =>
    oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(as, client, auth, params, catcher.redirectUri, request.verifier, {
        ...options(),
        DPoP: dpop,
      }),
    ),
  );
}

async function signInInBrowser(page: Page, url: URL, who: { username: string; secret: string }, onConsent?: () => Promise<void>) {
  await page.goto(url.href);
  await expectHeading(page, 'Sign in');
  await signIn(page, who.username, PASSWORD);
  await expectHeading(page, 'Two-step verification');
  await enterCode(page, codeFor(who.secret));
  await expectHeading(page, 'Allow Acme Open Banking?');
  await onConsent?.();
  await page.getByRole('button', { name: 'Allow' }).click();
  return landedAt(page, catcher.redirectUri);
}

describe(`FAPI 2.0 code flow (${ENGINE})`, () => {
  test('PAR + private_key_jwt + DPoP, the person in Chromium: iss in the response, DPoP-bound tokens, refresh with the same key', async () => {
    const { client, auth } = clientOf(partner);
    const { keyPair, handle } = await dpopHandle(client);
    const request = await pushed(handle);
    const context = await browser.newContext();
    try {
      const callback = await signInInBrowser(await context.newPage(), request.url, await person());
      expect(callback.searchParams.get('iss')).toBe(server.url); // RFC 9207
      const tokens = await exchange(callback, request, handle);
      expect(tokens.token_type).toBe('dpop');
      const jkt = await jose.calculateJwkThumbprint(await jose.exportJWK(keyPair.publicKey));
      expect(jose.decodeJwt(tokens.access_token)).toMatchObject({ aud: API, scope: 'payments:read', cnf: { jkt } });
      const claims = oauth.getValidatedIdTokenClaims(tokens);
      expect(claims).toMatchObject({ acr: 'urn:portcullis:acr:mfa', amr: ['pwd', 'otp'] });

      const refreshed = await withNonceRetry(async () =>
        oauth.processRefreshTokenResponse(
          as,
          client,
          await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token!, { ...options(), DPoP: handle }),
        ),
      );
      expect(jose.decodeJwt(refreshed.access_token).cnf).toEqual({ jkt });
    } finally {
      await context.close();
    }
  });

  test('a payment through PAR with DPoP: the consent page shows it in words, the bound token carries it', async () => {
    const { client } = clientOf(partner);
    const { keyPair, handle } = await dpopHandle(client);
    const request = await pushed(handle, { authorization_details: JSON.stringify([PAYMENT]), resource: API });
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const callback = await signInInBrowser(page, request.url, await person(), async () => {
        await expectVisible(page, 'Pay €1,250.00 to ACME Supplies Ltd, IBAN DE89 3704 0044 0532 0130 00, reference Invoice 2291');
      });
      const tokens = await exchange(callback, request, handle);
      const claims = jose.decodeJwt(tokens.access_token);
      expect(claims.authorization_details).toEqual([PAYMENT]);
      expect(claims.cnf).toEqual({ jkt: await jose.calculateJwkThumbprint(await jose.exportJWK(keyPair.publicKey)) });
      expect(tokens.authorization_details).toEqual([PAYMENT]);
    } finally {
      await context.close();
    }
  });

  test('an authorization request that was not pushed is refused for a fapi2 partner', async () => {
    const url = new URL(as.authorization_endpoint!);
    for (const [name, value] of Object.entries({
      client_id: partner.clientId,
      response_type: 'code',
      redirect_uri: catcher.redirectUri,
      scope: 'openid payments:read',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
    }))
      url.searchParams.set(name, value);
    const res = await fetch(url, { redirect: 'manual' });
    const location = new URL(res.headers.get('location') ?? 'http://none/', url);
    expect(location.searchParams.get('error')).toBe('invalid_request');
    expect(location.searchParams.get('error_description')).toMatch(/pushed authorization request/i);
  });

  test('PAR without PKCE, or with plain PKCE, is refused', async () => {
    const variants: Array<Record<string, string>> = [{}, { code_challenge_method: 'plain', code_challenge: 'a'.repeat(43) }];
    for (const pkce of variants) {
      const answer = await post(`${server.local}/request`, {
        client_id: partner.clientId,
        response_type: 'code',
        redirect_uri: catcher.redirectUri,
        scope: 'openid payments:read',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await assertion(partner, server.url),
        ...pkce,
      });
      expect({ pkce, status: answer.status, error: answer.body.error }).toEqual({ pkce, status: 400, error: 'invalid_request' });
    }
  });

  test('a DPoP-bound access token presented without its proof is refused at userinfo; with it, answered', async () => {
    const { client } = clientOf(partner);
    const { handle } = await dpopHandle(client);
    const request = await pushed(handle, { scope: 'openid' }); // an openid-only request: a token for /userinfo
    const who = await person();
    const { callback } = await httpLogin({
      authorizationUrl: request.url,
      redirectUri: catcher.redirectUri,
      username: who.username,
      password: PASSWORD,
      code: () => codeFor(who.secret),
    });
    const tokens = await exchange(callback, request, handle);
    const bearer = await fetch(as.userinfo_endpoint!.replace(server.url, server.local), {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    });
    expect(bearer.status).toBe(401);
    expect(bearer.headers.get('www-authenticate')).toMatch(/invalid_token/);
    const answered = await withNonceRetry(async () =>
      oauth.processUserInfoResponse(
        as,
        client,
        oauth.skipSubjectCheck,
        await oauth.userInfoRequest(as, client, tokens.access_token, { ...options(), DPoP: handle }),
      ),
    );
    expect(answered.sub).toBeTruthy();
  });
});
