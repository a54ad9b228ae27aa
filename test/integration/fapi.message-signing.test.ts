import { randomBytes, type webcrypto } from 'node:crypto';
import * as jose from 'jose';
import * as oauth from 'oauth4webapi';
import { cli, freshDatabaseUrl, instanceEnv, tempDir, TEST_PG_URL } from '../support/harness.ts';
import { httpLogin } from '../support/http-login.ts';
import { startInProcess, testClock, type InProcessServer } from '../support/in-process.ts';
import { codeFor, createUser, secretOf } from '../support/login.ts';
import { PASSWORD, REDIRECT } from '../support/person-flow.ts';
import { clientOf, createKeyPartner, dpopHandle, partnerKey, withNonceRetry, type KeyPartner } from '../support/fapi.ts';

// FAPI 2.0 Message Signing, per partner (issue 11): request objects the partner signs (JAR) pushed
// through PAR, authorization responses we sign (JARM), and signed introspection answers (RFC 9701)
// for the APIs that ask. oauth4webapi plays the partner and the API; the person signs in over HTTP.

const ENGINE = TEST_PG_URL ? 'postgres' : 'sqlite';
const PAYMENTS = 'https://api.bank.test/payments';
const ACCOUNTS = 'https://api.bank.test/accounts';
const LEDGER = 'https://api.bank.test/ledger';
const INSECURE = { [oauth.allowInsecureRequests]: true } as const;
const JWT_INTROSPECTION = 'application/token-introspection+jwt';

const clock = testClock();
let server: InProcessServer;
let env: Record<string, string>;
let as: oauth.AuthorizationServer;
let signing: KeyPartner;
let plain: KeyPartner;

beforeAll(async () => {
  const dir = tempDir();
  env = instanceEnv(dir, freshDatabaseUrl(dir), { LOG_LEVEL: 'warn' });
  server = await startInProcess(env, { clock });
  await cli(env, 'resource', 'create', '--uri', PAYMENTS, '--scope', 'payments:read payments:write', '--default');
  const code = ['--grant', 'authorization_code', '--redirect-uri', REDIRECT];
  signing = await createKeyPartner(env, { name: 'Signing Bank', extra: [...code, '--message-signing'] });
  plain = await createKeyPartner(env, { name: 'Plain Bank', extra: code });
  const issuer = new URL(server.url);
  as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, INSECURE));
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

/** A new person with an authenticator: each sign-in uses a fresh one (a TOTP step is accepted once). */
async function newPerson() {
  const username = `person-${randomBytes(4).toString('hex')}`;
  const created = await createUser(env, username, PASSWORD, '--with-totp');
  if (created.code !== 0) throw new Error(created.stderr);
  const secret = secretOf(created.json.totp_uri);
  return { username, code: () => codeFor(secret) };
}

/** The authorization request's parameters (PKCE S256), and what the partner keeps to finish. */
async function authorizationParams(extra: Record<string, string> = {}) {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const params = {
    response_type: 'code',
    redirect_uri: REDIRECT,
    scope: 'openid payments:read',
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    ...extra,
  };
  return { params, verifier, state };
}

/** PAR as `partner` (private_key_jwt, DPoP): its answer, or the OAuth error it got. */
async function push(partner: KeyPartner, parameters: Record<string, string>, dpop: oauth.DPoPHandle) {
  const { client, auth } = clientOf(partner);
  return withNonceRetry(async () =>
    oauth.processPushedAuthorizationResponse(
      as,
      client,
      await oauth.pushedAuthorizationRequest(as, client, auth, parameters, { ...INSECURE, DPoP: dpop }),
    ),
  ).catch((error: unknown) => {
    if (error instanceof oauth.ResponseBodyError) return { error: error.error, error_description: error.error_description };
    throw error;
  });
}

/** The person signs in at /auth with the pushed request; where the browser is sent back to. */
async function signIn(partner: KeyPartner, requestUri: string): Promise<URL> {
  const authorizationUrl = new URL(as.authorization_endpoint!);
  authorizationUrl.search = new URLSearchParams({ client_id: partner.clientId, request_uri: requestUri }).toString();
  const person = await newPerson();
  const { callback } = await httpLogin({ authorizationUrl, redirectUri: REDIRECT, password: PASSWORD, ...person });
  return callback;
}

/** The code exchanged with the DPoP key the request was pushed with. */
async function redeem(partner: KeyPartner, callbackParams: URLSearchParams, verifier: string, dpop: oauth.DPoPHandle) {
  const { client, auth } = clientOf(partner);
  return withNonceRetry(async () =>
    oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(as, client, auth, callbackParams, REDIRECT, verifier, { ...INSECURE, DPoP: dpop }),
    ),
  );
}

/** A request object signed by hand: every claim and header can be bent for a refusal. */
async function handSigned(
  partner: KeyPartner,
  params: Record<string, string>,
  options: { key?: webcrypto.CryptoKey; kid?: string; claims?: Record<string, unknown> } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new jose.SignJWT({
    ...params,
    client_id: partner.clientId,
    iss: partner.clientId,
    aud: as.issuer,
    nbf: now,
    exp: now + 60,
    jti: randomBytes(8).toString('hex'),
    ...options.claims,
  })
    .setProtectedHeader({ alg: 'ES256', kid: options.kid ?? partner.kid })
    .sign(options.key ?? partner.privateKey);
}

describe(`signed authorization requests and responses (${ENGINE})`, () => {
  test('a message-signing fapi2 partner: signed request object through PAR → sign-in → JARM response → DPoP-bound tokens', async () => {
    const { client } = clientOf(signing);
    const { keyPair, handle } = await dpopHandle(client);
    const { params, verifier, state } = await authorizationParams({ response_mode: 'jwt' });
    const request = await oauth.issueRequestObject(as, client, params, { key: signing.privateKey, kid: signing.kid });
    const pushed = await push(signing, { request }, handle);
    if (!('request_uri' in pushed)) throw new Error(`PAR refused: ${JSON.stringify(pushed)}`);

    const callback = await signIn(signing, pushed.request_uri);
    // the response is one JWT (query.jwt): no bare code in the URL
    expect([...callback.searchParams.keys()]).toEqual(['response']);
    const response = jose.decodeJwt(callback.searchParams.get('response')!);
    expect(jose.decodeProtectedHeader(callback.searchParams.get('response')!)).toMatchObject({
      alg: 'ES256',
      kid: server.app.keySet.signingKid,
    });
    expect(response).toMatchObject({ iss: as.issuer, aud: signing.clientId, state });
    expect(Number(response.exp) - Math.floor(Date.now() / 1000)).toBeLessThanOrEqual(120);
    const validated = await oauth.validateJwtAuthResponse(as, client, callback, state, INSECURE);
    expect(validated.get('code')).toBeTruthy();

    const tokens = await redeem(signing, validated, verifier, handle);
    expect(tokens.token_type).toBe('dpop');
    const claims = jose.decodeJwt(tokens.access_token);
    expect(claims).toMatchObject({ client_id: signing.clientId, aud: PAYMENTS, scope: 'payments:read' });
    expect((claims.cnf as { jkt: string }).jkt).toBe(await jose.calculateJwkThumbprint(await jose.exportJWK(keyPair.publicKey)));
  });

  test('a partner without message signing keeps plain PAR and a plain response; it may sign when it chooses', async () => {
    const { client } = clientOf(plain);
    const { handle } = await dpopHandle(client);
    const { params, verifier, state } = await authorizationParams();
    const pushed = await push(plain, params, handle);
    if (!('request_uri' in pushed)) throw new Error(`PAR refused: ${JSON.stringify(pushed)}`);
    const callback = await signIn(plain, pushed.request_uri);
    const validated = oauth.validateAuthResponse(as, client, callback, state);
    expect((await redeem(plain, validated, verifier, handle)).token_type).toBe('dpop');

    // before its operator turns message signing on, it can start signing: a request object and JARM are accepted
    const signed = await authorizationParams({ response_mode: 'jwt' });
    const request = await oauth.issueRequestObject(as, client, signed.params, { key: plain.privateKey, kid: plain.kid });
    const pushedSigned = await push(plain, { request }, handle);
    if (!('request_uri' in pushedSigned)) throw new Error(`PAR refused: ${JSON.stringify(pushedSigned)}`);
    const jarm = await oauth.validateJwtAuthResponse(as, client, await signIn(plain, pushedSigned.request_uri), signed.state, INSECURE);
    expect(jarm.get('code')).toBeTruthy();
  });

  test('refused at PAR: unsigned parameters, an unregistered key, alg none, expired, wrong aud, too long-lived, a plain response mode', async () => {
    const { client } = clientOf(signing);
    const { handle } = await dpopHandle(client);
    const { params } = await authorizationParams({ response_mode: 'jwt' });
    const stranger = await partnerKey('ES256');
    const now = Math.floor(Date.now() / 1000);
    const unsigned = new jose.UnsecuredJWT({ ...params, client_id: signing.clientId, nbf: now, exp: now + 60 })
      .setIssuer(signing.clientId)
      .setAudience(as.issuer)
      .encode();
    const cases: Array<[string, Record<string, string>, string]> = [
      ['unsigned parameters', params, 'invalid_request'],
      [
        'a stranger’s key under its own kid',
        { request: await handSigned(signing, params, { key: stranger.privateKey, kid: stranger.kid }) },
        'invalid_request_object',
      ],
      [
        'a stranger’s key under the partner’s kid',
        { request: await handSigned(signing, params, { key: stranger.privateKey }) },
        'invalid_request_object',
      ],
      ['alg none', { request: unsigned }, 'invalid_request_object'],
      ['expired', { request: await handSigned(signing, params, { claims: { nbf: now - 120, exp: now - 60 } }) }, 'invalid_request_object'],
      [
        'aud the PAR endpoint',
        { request: await handSigned(signing, params, { claims: { aud: as.pushed_authorization_request_endpoint } }) },
        'invalid_request_object',
      ],
      ['no nbf', { request: await handSigned(signing, params, { claims: { nbf: undefined } }) }, 'invalid_request_object'],
      ['living 2 hours', { request: await handSigned(signing, params, { claims: { exp: now + 7200 } }) }, 'invalid_request_object'],
      [
        'nbf 61 minutes old',
        { request: await handSigned(signing, params, { claims: { nbf: now - 3660, exp: now + 60 } }) },
        'invalid_request_object',
      ],
      ['response_mode query', { request: await handSigned(signing, { ...params, response_mode: 'query' }) }, 'invalid_request'],
    ];
    const outcomes = [];
    for (const [label, parameters] of cases)
      outcomes.push([label, ((await push(signing, parameters, handle)) as { error?: string }).error]);
    expect(outcomes).toEqual(cases.map(([label, , error]) => [label, error]));
    // and a well-made one from the same partner is accepted, so the refusals are the claims'
    expect(await push(signing, { request: await handSigned(signing, params) }, handle)).toHaveProperty('request_uri');
  });

  test('a signed request object sent to /auth directly is refused: message signing goes through PAR, on any profile', async () => {
    const baseline = await createKeyPartner(env, {
      name: 'Baseline Signing Bank',
      profile: 'baseline',
      extra: ['--grant', 'authorization_code', '--redirect-uri', REDIRECT, '--message-signing'],
    });
    const { params } = await authorizationParams({ response_mode: 'jwt' });
    const url = new URL(as.authorization_endpoint!);
    url.search = new URLSearchParams({ client_id: baseline.clientId, request: await handSigned(baseline, params) }).toString();
    const res = await fetch(url, { redirect: 'manual' });
    // sent back to its one registered redirect URI with the error (the response mode asked for is in the unread request object)
    expect(res.status).toBe(303);
    const back = new URL(res.headers.get('location')!);
    expect(`${back.origin}${back.pathname}`).toBe(REDIRECT);
    expect(Object.fromEntries(back.searchParams)).toMatchObject({
      error: 'invalid_request',
      error_description: 'Pushed Authorization Request must be used',
    });
    // through PAR, the same partner is served
    const { handle } = await dpopHandle(clientOf(baseline).client);
    expect(await push(baseline, { request: await handSigned(baseline, params) }, handle)).toHaveProperty('request_uri');
  });

  test('partner update turns message signing on and off, at once, under the same checks', async () => {
    const partner = await createKeyPartner(env, {
      name: 'Switching Bank',
      extra: ['--grant', 'authorization_code', '--redirect-uri', REDIRECT],
    });
    const { handle } = await dpopHandle(clientOf(partner).client);
    const plainPush = async () => push(partner, (await authorizationParams()).params, handle);
    expect(await plainPush()).toHaveProperty('request_uri');

    const on = await cli(env, 'partner', 'update', partner.clientId, '--message-signing');
    expect(on.json).toMatchObject({ message_signing: true });
    expect(await plainPush()).toMatchObject({ error: 'invalid_request', error_description: 'Request Object must be used by this client' });

    const off = await cli(env, 'partner', 'update', partner.clientId, '--no-message-signing');
    expect(off.json).toMatchObject({ message_signing: false });
    expect(await plainPush()).toHaveProperty('request_uri');

    const secret = await cli(env, 'partner', 'create', '--name', 'Secret Bank', '--scope', 'payments:read');
    const refused = await cli(env, 'partner', 'update', secret.json.client_id, '--message-signing');
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n')).toEqual([expect.stringMatching(/--message-signing needs the partner’s public keys/)]);
    const both = await cli(env, 'partner', 'update', partner.clientId, '--message-signing', '--no-message-signing');
    expect(both.code).toBe(2);
  });
});

describe(`signed introspection, RFC 9701 (${ENGINE})`, () => {
  let introspector: { client: oauth.Client; auth: oauth.ClientAuth };
  let accountsToken: string;
  let ledgerToken: string;

  beforeAll(async () => {
    await cli(env, 'resource', 'create', '--uri', ACCOUNTS, '--scope', 'accounts:read', '--format', 'opaque');
    await cli(env, 'resource', 'create', '--uri', LEDGER, '--scope', 'ledger:read', '--format', 'opaque');
    const api = await cli(env, 'partner', 'create', '--name', 'Accounts API', '--scope', 'accounts:read');
    introspector = { client: { client_id: api.json.client_id }, auth: oauth.ClientSecretBasic(api.json.client_secret) };
    const signed = await cli(env, 'resource', 'update', '--uri', ACCOUNTS, '--introspector', api.json.client_id, '--signed-introspection');
    expect(signed.json).toMatchObject({ introspector: api.json.client_id, signed_introspection: true });
    await cli(env, 'resource', 'update', '--uri', LEDGER, '--introspector', api.json.client_id);

    const caller = await cli(env, 'partner', 'create', '--name', 'Caller', '--scope', 'accounts:read ledger:read');
    const client = { client_id: caller.json.client_id };
    const auth = oauth.ClientSecretBasic(caller.json.client_secret);
    const token = async (resource: string, scope: string) =>
      (
        await oauth.processClientCredentialsResponse(
          as,
          client,
          await oauth.clientCredentialsGrantRequest(as, client, auth, { scope, resource }, INSECURE),
        )
      ).access_token;
    accountsToken = await token(ACCOUNTS, 'accounts:read');
    ledgerToken = await token(LEDGER, 'ledger:read');
  });

  const introspect = (token: string, requestJwtResponse: boolean) =>
    oauth.introspectionRequest(as, introspector.client, introspector.auth, token, { ...INSECURE, requestJwtResponse });

  test('the API’s introspector asking for a JWT gets one signed ES256 with the current key, verified against /jwks', async () => {
    const response = await introspect(accountsToken, true);
    expect(response.headers.get('content-type')).toMatch(/^application\/token-introspection\+jwt/);
    const jwt = await response.clone().text();
    const answer = await oauth.processIntrospectionResponse(as, introspector.client, response);
    await oauth.validateApplicationLevelSignature(as, response, INSECURE);
    expect(answer).toMatchObject({ active: true, aud: ACCOUNTS, scope: 'accounts:read', iss: as.issuer });

    const verified = await jose.jwtVerify(jwt, jose.createRemoteJWKSet(new URL(as.jwks_uri!)), {
      issuer: as.issuer,
      audience: introspector.client.client_id,
      typ: 'token-introspection+jwt',
      algorithms: ['ES256'],
    });
    expect(verified.protectedHeader.kid).toBe(server.app.keySet.signingKid);
    expect(verified.payload.token_introspection).toMatchObject({ active: true, aud: ACCOUNTS });
  });

  test('plain JSON about that API’s tokens is refused; an API that did not ask still gets JSON', async () => {
    const refused = await introspect(accountsToken, false);
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({
      error: 'invalid_request',
      error_description: `introspection answers about tokens for ${ACCOUNTS} are signed: ask with Accept: ${JWT_INTROSPECTION}`,
    });
    const ledger = await introspect(ledgerToken, false);
    expect(ledger.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await oauth.processIntrospectionResponse(as, introspector.client, ledger)).toMatchObject({ active: true, aud: LEDGER });
  });

  test('resource update --no-signed-introspection applies without a restart; the CLI keeps the rules', async () => {
    await cli(env, 'resource', 'update', '--uri', ACCOUNTS, '--no-signed-introspection');
    clock.advance(3000); // past the resource directory's 2-second cache
    const json = await introspect(accountsToken, false);
    expect(json.status).toBe(200);
    expect(await json.json()).toMatchObject({ active: true, aud: ACCOUNTS });

    const withoutIntrospector = await cli(env, 'resource', 'update', '--uri', PAYMENTS, '--signed-introspection');
    expect(withoutIntrospector.code).toBe(1);
    expect(withoutIntrospector.stderr).toMatch(/--signed-introspection needs the API’s introspector/);
    await cli(env, 'resource', 'update', '--uri', ACCOUNTS, '--signed-introspection');
    const dropped = await cli(env, 'resource', 'update', '--uri', ACCOUNTS, '--no-introspector');
    expect(dropped.code).toBe(1);
    const both = await cli(env, 'resource', 'update', '--uri', ACCOUNTS, '--signed-introspection', '--no-signed-introspection');
    expect(both.code).toBe(2);
    const listed = (await cli(env, 'resource', 'list')).json as Array<{ uri: string; signed_introspection: boolean }>;
    expect(listed.find((resource) => resource.uri === ACCOUNTS)?.signed_introspection).toBe(true);
  });
});
