import * as jose from 'jose';
import * as oauth from 'oauth4webapi';
import { CLOSE } from '../../examples/payments-api/src/events.ts';
import type { RunningApi } from '../../examples/payments-api/src/server.ts';
import { clientCredentials, createKeyPartner, dpopHandle, withNonceRetry, type KeyPartner } from '../support/fapi.ts';
import { cli, freshDatabaseUrl, instanceEnv, tempDir } from '../support/harness.ts';
import { basic, form } from '../support/http.ts';
import { startInProcess, testClock, type InProcessServer, type TestClock } from '../support/in-process.ts';
import { fetchJwks, kidOf } from '../support/keys.support.ts';
import { PAYMENT, PAYMENTS_API, untilTypesSupported } from '../support/payments.ts';
import { call, connectMqtt, mqttClosed, openEvents, proofFor, startExample } from '../support/payments-api.ts';
import { personTokens, registerApp, registerService, tokenCall, type App } from '../support/person-flow.ts';

// The reference resource server (examples/payments-api) against a real Portcullis: every route,
// the WebSocket and the MQTT broker accept a good token and refuse each kind of bad one with the
// right challenge; payments execute only as approved; sessions end at expiry and revocation.

const OTHER_API = 'https://api.bank.test/ledger';
const SCOPES = 'accounts:read payments:read payments:write';

let server: InProcessServer;
let env: Record<string, string>;
let api: RunningApi; // the example, on its own clock
let apiClock: TestClock;
let service: App; // client_credentials, every scope of the API and of the other API
let limited: App; // accounts:read only
let payer: App; // acts for people: payments with authorization_details
let introspector: App;
let keyPartner: KeyPartner; // fapi2: DPoP-bound tokens
let as: oauth.AuthorizationServer;
let exampleEnv: Record<string, string>;

beforeAll(async () => {
  const dir = tempDir();
  server = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir), { LOG_LEVEL: 'warn', KEY_POLL_INTERVAL: '1s' }));
  env = server.env;
  const created = await cli(
    env,
    'resource',
    'create',
    '--uri',
    PAYMENTS_API,
    '--scope',
    SCOPES,
    '--default',
    '--details-type',
    'payment_initiation',
  );
  expect(created.stderr).toBe('');
  expect((await cli(env, 'resource', 'create', '--uri', OTHER_API, '--scope', 'ledger:read')).code).toBe(0);
  introspector = await registerService(env, 'Payments API', 'payments:read');
  expect((await cli(env, 'resource', 'update', '--uri', PAYMENTS_API, '--introspector', introspector.clientId)).code).toBe(0);
  service = await registerService(env, 'Terminal Fleet', `${SCOPES} ledger:read`);
  limited = await registerService(env, 'Account Viewer', 'accounts:read');
  payer = await registerApp(env, { name: 'Acme Pay', scope: SCOPES });
  keyPartner = await createKeyPartner(env, { scope: SCOPES, profile: 'fapi2' });
  await untilTypesSupported(server.url, ['payment_initiation']);
  as = await oauth.processDiscoveryResponse(
    new URL(server.url),
    await oauth.discoveryRequest(new URL(server.url), { [oauth.allowInsecureRequests]: true }),
  );
  exampleEnv = {
    PORTCULLIS_ISSUER: server.url,
    API_AUDIENCE: PAYMENTS_API,
    INTROSPECTION_CLIENT_ID: introspector.clientId,
    INTROSPECTION_CLIENT_SECRET: introspector.clientSecret!,
  };
  apiClock = testClock();
  api = await startExample(exampleEnv, { now: apiClock.now });
}, 60_000);

afterAll(async () => {
  await api?.close();
  await server?.stop();
});

const serviceToken = async (scope = SCOPES, resource = PAYMENTS_API) => {
  const answer = await tokenCall(server.url, service, { grant_type: 'client_credentials', scope, resource });
  expect(answer.status).toBe(200);
  return answer.body.access_token as string;
};

/** A person approves PAYMENT for `payer`: tokens carrying it as authorization_details. */
const approvedPayment = (scope = 'openid payments:write') =>
  personTokens(server.url, env, payer, { scope, resource: PAYMENTS_API, authorization_details: JSON.stringify([PAYMENT]) });

const ORDER = {
  instructedAmount: PAYMENT.instructedAmount,
  creditorName: PAYMENT.creditorName,
  creditorAccount: PAYMENT.creditorAccount,
  remittanceInformationUnstructured: PAYMENT.remittanceInformationUnstructured,
};

/** The refusal expected: status, error code, the challenge's scheme; `sendAs` the scheme the token is sent with (default: the challenge's). */
type Expected = { status: number; error: string; scheme?: 'Bearer' | 'DPoP'; description?: RegExp; sendAs?: 'Bearer' | 'DPoP' };

function expectChallenge(status: number, headers: { get(name: string): string | null }, body: Record<string, any>, expected: Expected) {
  expect({ status, error: body.error }).toEqual({ status: expected.status, error: expected.error });
  const challenge = headers.get('www-authenticate') ?? '';
  expect(challenge.startsWith(`${expected.scheme ?? 'Bearer'} realm="payments"`)).toBe(true);
  expect(challenge).toContain(`error="${expected.error}"`);
  if (expected.description) expect(body.error_description).toMatch(expected.description);
}

/** The same token refused the same way by GET /accounts, POST /payments, the /events upgrade and MQTT CONNECT. */
async function refusedEverywhere(token: string, expected: Expected, target: RunningApi = api, clientId = service.clientId) {
  const scheme = expected.sendAs ?? expected.scheme ?? 'Bearer';
  for (const [method, path] of [
    ['GET', '/accounts'],
    ['POST', '/payments'],
  ] as const) {
    const answer = await call(target, method, path, `${scheme} ${token}`, { body: method === 'POST' ? ORDER : undefined });
    expectChallenge(answer.status, answer.headers, answer.body, expected);
  }
  const upgrade = await openEvents(target, { authorization: `${scheme} ${token}` });
  if (!('refused' in upgrade)) throw new Error('the WebSocket upgrade was accepted');
  const headers = upgrade.refused.headers;
  expectChallenge(upgrade.refused.status, { get: (name) => (headers[name] as string | undefined) ?? null }, upgrade.refused.body, expected);
  expect(await connectMqtt(target, clientId, token)).toEqual({ code: 4 }); // CONNACK: bad user name or password
}

describe('JWT access tokens', () => {
  test('a good token: every route, the socket and the broker accept it; a payment event reaches both streams', async () => {
    const token = await serviceToken();
    const accounts = await call(api, 'GET', '/accounts', `Bearer ${token}`);
    expect(accounts.status).toBe(200);
    expect(accounts.body.accounts[0].viewedBy).toBe(service.clientId);

    const opened = await openEvents(api, { authorization: `Bearer ${token}` });
    if (!('socket' in opened)) throw new Error(JSON.stringify(opened.refused));
    expect((await opened.socket.next('ready')).client_id).toBe(service.clientId);
    const mqttClient = await connectMqtt(api, service.clientId, token);
    if (!('client' in mqttClient)) throw new Error(`CONNACK ${mqttClient.code}`);
    const granted = await mqttClient.client.subscribeAsync(`partners/${service.clientId}/payments/#`, { qos: 1 });
    expect(granted[0].qos).toBe(1);

    // a client_credentials token carries no approved payment: POST /payments is refused, with a reason
    const refused = await call(api, 'POST', '/payments', `Bearer ${token}`, { body: ORDER });
    expect(refused.status).toBe(403);
    expect(refused.body).toEqual({
      error: 'payment_not_approved',
      error_description: expect.stringMatching(/carries no approved payment/),
    });
    expect(refused.headers.get('www-authenticate')).toBeNull();

    // the broker takes a terminal's status report on its own topic only
    await mqttClient.client.publishAsync(`partners/${service.clientId}/payments/t-1/status`, '{"status":"seen"}', { qos: 1 });
    opened.socket.ws.close();
    await mqttClient.client.endAsync();
  });

  test('a payment executes only as approved: a different amount or creditor is refused with an explanation; the approved one once', async () => {
    const tokens = await approvedPayment();
    const auth = `Bearer ${tokens.access_token}`;
    const events = await openEvents(api, { authorization: auth });
    // the payer's token has payments:write only: the event stream (payments:read) is refused
    expect('refused' in events && events.refused.status).toBe(403);

    const more = await call(api, 'POST', '/payments', auth, {
      body: { ...ORDER, instructedAmount: { currency: 'EUR', amount: '9999.00' } },
    });
    expect(more.status).toBe(403);
    expect(more.body.error).toBe('payment_not_approved');
    expect(more.body.error_description).toBe('this payment was not approved: the amount 9999.00 EUR is not the approved 1250.00 EUR');
    const elsewhere = await call(api, 'POST', '/payments', auth, {
      body: { ...ORDER, creditorName: 'Mallory Ltd', creditorAccount: { iban: 'GB82WEST12345698765432' } },
    });
    expect(elsewhere.status).toBe(403);
    expect(elsewhere.body.error_description).toMatch(
      /the creditor "Mallory Ltd" is not the approved "ACME Supplies Ltd"; the creditor account/,
    );
    const currency = await call(api, 'POST', '/payments', auth, {
      body: { ...ORDER, instructedAmount: { currency: 'GBP', amount: '1250.00' } },
    });
    expect(currency.body.error_description).toMatch(/1250.00 GBP is not the approved 1250.00 EUR/);
    expect((await call(api, 'POST', '/payments', auth, { body: { creditorName: 'x' } })).status).toBe(400);

    // the approved payment (the amount written differently is the same amount), once
    const paid = await call(api, 'POST', '/payments', auth, {
      body: { ...ORDER, instructedAmount: { currency: 'EUR', amount: '1250.0' } },
    });
    expect(paid.status).toBe(201);
    expect(paid.body).toMatchObject({ status: 'executed', creditorName: 'ACME Supplies Ltd', id: expect.any(String) });
    const again = await call(api, 'POST', '/payments', auth, { body: ORDER });
    expect(again.status).toBe(403);
    expect(again.body.error_description).toMatch(/executed already/);
    // the ID token of the same login is not an access token (typ)
    await refusedEverywhere(tokens.id_token, { status: 401, error: 'invalid_token', description: /typ/ }, api, payer.clientId);
  });

  test('a payment event reaches the partner’s socket and its MQTT topic, not another partner’s', async () => {
    const tokens = await approvedPayment('openid payments:read payments:write');
    const auth = `Bearer ${tokens.access_token}`;
    const opened = await openEvents(api, { authorization: auth });
    if (!('socket' in opened)) throw new Error(JSON.stringify(opened.refused));
    await opened.socket.next('ready');
    const terminal = await connectMqtt(api, payer.clientId, tokens.access_token);
    if (!('client' in terminal)) throw new Error(`CONNACK ${terminal.code}`);
    await terminal.client.subscribeAsync(`partners/${payer.clientId}/payments/#`, { qos: 1 });
    const published = new Promise<{ topic: string; body: Record<string, any> }>((resolve) =>
      terminal.client.once('message', (topic, payload) => resolve({ topic, body: JSON.parse(String(payload)) })),
    );
    // another partner's socket hears nothing of it
    const bystander = await openEvents(api, { authorization: `Bearer ${await serviceToken()}` });
    if (!('socket' in bystander)) throw new Error('refused');
    await bystander.socket.next('ready');

    const paid = await call(api, 'POST', '/payments', auth, { body: ORDER });
    expect(paid.status).toBe(201);
    expect(await opened.socket.next('payment.status')).toMatchObject({ payment_id: paid.body.id, status: 'executed' });
    expect(await published).toEqual({
      topic: `partners/${payer.clientId}/payments/${paid.body.id}`,
      body: expect.objectContaining({ status: 'executed' }),
    });
    expect(bystander.socket.messages).toEqual([]);
    for (const socket of [opened.socket, bystander.socket]) socket.ws.close();
    await terminal.client.endAsync();
  });

  test('no token: 401 with both challenges and no error code', async () => {
    const answer = await call(api, 'GET', '/accounts', undefined);
    expect(answer.status).toBe(401);
    expect(answer.headers.get('www-authenticate')).toBe('Bearer realm="payments", DPoP realm="payments", algs="ES256 PS256"');
    const upgrade = await openEvents(api, {});
    expect('refused' in upgrade && upgrade.refused.status).toBe(401);
    expect(await connectMqtt(api, service.clientId, '')).toEqual({ code: 4 });
  });

  test('a token for another API (aud)', async () => {
    await refusedEverywhere(await serviceToken('ledger:read', OTHER_API), { status: 401, error: 'invalid_token', description: /aud/ });
  });

  test('alg none, and a token whose signature was tampered with', async () => {
    const token = await serviceToken();
    const [header, payload] = token.split('.');
    const none = `${Buffer.from(JSON.stringify({ ...jose.decodeProtectedHeader(token), alg: 'none' })).toString('base64url')}.${payload}.`;
    await refusedEverywhere(none, { status: 401, error: 'invalid_token', description: /ES256/ });
    const tampered = `${header}.${Buffer.from(JSON.stringify({ ...jose.decodeJwt(token), scope: `${SCOPES} admin` })).toString('base64url')}.${token.split('.')[2]}`;
    await refusedEverywhere(tampered, { status: 401, error: 'invalid_token', description: /signature/ });
  });

  test('a missing scope: 403 insufficient_scope naming it; the socket refused; MQTT topics of the scope refused', async () => {
    const answer = await tokenCall(server.url, limited, {
      grant_type: 'client_credentials',
      scope: 'accounts:read',
      resource: PAYMENTS_API,
    });
    const token = answer.body.access_token as string;
    expect((await call(api, 'GET', '/accounts', `Bearer ${token}`)).status).toBe(200);
    const payment = await call(api, 'POST', '/payments', `Bearer ${token}`, { body: ORDER });
    expectChallenge(payment.status, payment.headers, payment.body, { status: 403, error: 'insufficient_scope' });
    expect(payment.headers.get('www-authenticate')).toContain('scope="payments:write"');
    const upgrade = await openEvents(api, { authorization: `Bearer ${token}` });
    if (!('refused' in upgrade)) throw new Error('accepted');
    expect(upgrade.refused.status).toBe(403);
    expect(upgrade.refused.headers['www-authenticate']).toContain(
      'error="insufficient_scope", error_description="this needs the scope payments:read", scope="payments:read"',
    );
    // MQTT: the connection is the partner's, each topic needs its scope and must be the partner's own
    const connected = await connectMqtt(api, limited.clientId, token);
    if (!('client' in connected)) throw new Error(`CONNACK ${connected.code}`);
    // a refused subscription is a SUBACK of 0x80 (mqtt.js rejects the subscribe with it)
    const refusedSubscription = (client: typeof connected.client, topic: string) =>
      expect(client.subscribeAsync(topic)).rejects.toMatchObject({ packet: { granted: [128] } });
    await refusedSubscription(connected.client, `partners/${limited.clientId}/payments/#`);
    await connected.client.endAsync();
    // another partner's topic, and a wildcard over partners, with every scope
    const full = await serviceToken();
    const fleet = await connectMqtt(api, service.clientId, full);
    if (!('client' in fleet)) throw new Error(`CONNACK ${fleet.code}`);
    for (const topic of [`partners/${limited.clientId}/payments/#`, 'partners/+/payments/#', '#'])
      await refusedSubscription(fleet.client, topic);
    const dropped = mqttClosed(fleet.client);
    fleet.client.publish(`partners/${limited.clientId}/payments/x`, 'forged');
    await dropped; // a refused PUBLISH ends the connection (MQTT 3.1.1 has no negative PUBACK)
    // the user name must be the token's client
    expect(await connectMqtt(api, limited.clientId, full)).toEqual({ code: 5 });
  });

  test('DPoP-bound tokens: without the proof, as Bearer, with a proof for another key; then with nonce and proof, over HTTP and the socket', async () => {
    const { handle, keyPair } = await dpopHandle({ client_id: keyPartner.clientId });
    const tokens = await clientCredentials(as, keyPartner, { scope: SCOPES, dpop: handle });
    expect(tokens.token_type.toLowerCase()).toBe('dpop');
    const token = tokens.access_token;
    // as DPoP without a proof: invalid_dpop_proof; as Bearer: invalid_token (RFC 9449 §7.1)
    const noProof = await call(api, 'GET', '/accounts', `DPoP ${token}`);
    expectChallenge(noProof.status, noProof.headers, noProof.body, {
      status: 401,
      error: 'invalid_dpop_proof',
      scheme: 'DPoP',
      description: /DPoP proof/,
    });
    await refusedEverywhere(
      token,
      { status: 401, error: 'invalid_token', scheme: 'DPoP', sendAs: 'Bearer', description: /DPoP-bound/ },
      api,
      keyPartner.clientId,
    );

    // a proof by another key
    const stranger = await jose.generateKeyPair('ES256', { extractable: true });
    const url = `${api.url}/accounts`;
    const first = await call(api, 'GET', '/accounts', `DPoP ${token}`, { dpop: await proofFor(keyPair, 'GET', url, token) });
    expectChallenge(first.status, first.headers, first.body, { status: 401, error: 'use_dpop_nonce', scheme: 'DPoP' });
    const nonce = first.headers.get('dpop-nonce')!;
    const foreign = await call(api, 'GET', '/accounts', `DPoP ${token}`, { dpop: await proofFor(stranger, 'GET', url, token, nonce) });
    expectChallenge(foreign.status, foreign.headers, foreign.body, {
      status: 401,
      error: 'invalid_token',
      scheme: 'DPoP',
      description: /key other than the one the token is bound to/,
    });
    const proof = await proofFor(keyPair, 'GET', url, token, nonce);
    expect((await call(api, 'GET', '/accounts', `DPoP ${token}`, { dpop: proof })).status).toBe(200);
    const replay = await call(api, 'GET', '/accounts', `DPoP ${token}`, { dpop: proof });
    expect(replay.body).toMatchObject({ error: 'invalid_dpop_proof', error_description: expect.stringMatching(/used already/) });
    const wrongMethod = await call(api, 'POST', '/payments', `DPoP ${token}`, {
      dpop: await proofFor(keyPair, 'GET', url, token, nonce),
      body: ORDER,
    });
    expect(wrongMethod.body.error).toBe('invalid_dpop_proof');

    // a real client: oauth4webapi's protectedResourceRequest with its DPoP handle retries on use_dpop_nonce by itself
    const request = () =>
      oauth.protectedResourceRequest(token, 'GET', new URL(url), new Headers(), null, {
        DPoP: handle,
        [oauth.allowInsecureRequests]: true,
      });
    const response = await withNonceRetry(request);
    expect(response.status).toBe(200);

    // the socket: the upgrade carries the proof (htm GET, htu the http URL of /events)
    const eventsUrl = `${api.url}/events`;
    const opened = await openEvents(api, { authorization: `DPoP ${token}`, dpop: await proofFor(keyPair, 'GET', eventsUrl, token, nonce) });
    if (!('socket' in opened)) throw new Error(JSON.stringify(opened.refused));
    await opened.socket.next('ready');
    // re-authentication on the open socket needs a fresh proof too
    opened.socket.ws.send(JSON.stringify({ type: 'authenticate', authorization: `DPoP ${token}` }));
    expect((await opened.socket.next('error')).error).toBe('invalid_dpop_proof');
    opened.socket.ws.send(
      JSON.stringify({
        type: 'authenticate',
        authorization: `DPoP ${token}`,
        dpop: await proofFor(keyPair, 'GET', eventsUrl, token, nonce),
      }),
    );
    expect((await opened.socket.next('authenticated')).expires_at).toMatch(/Z$/);
    opened.socket.ws.close();
    // MQTT has no place for a proof: a DPoP-bound token is refused there
    expect(await connectMqtt(api, keyPartner.clientId, token)).toEqual({ code: 4 });
  });

  test('expiry: an expired token is refused everywhere; an open socket and an MQTT session end when their token expires', async () => {
    const clock = testClock();
    const later = await startExample(exampleEnv, { now: clock.now });
    try {
      const token = await serviceToken();
      const opened = await openEvents(later, { authorization: `Bearer ${token}` });
      if (!('socket' in opened)) throw new Error(JSON.stringify(opened.refused));
      await opened.socket.next('ready');
      const connected = await connectMqtt(later, service.clientId, token);
      if (!('client' in connected)) throw new Error(`CONNACK ${connected.code}`);
      const dropped = mqttClosed(connected.client);
      clock.advance(601_000); // the API's tokens live 600 s
      expect(await opened.socket.closed).toEqual({ code: CLOSE.expired, reason: 'token expired' });
      await dropped;
      await refusedEverywhere(token, { status: 401, error: 'invalid_token', description: /expired/ }, later);
    } finally {
      await later.close();
    }
  });

  test('re-authentication keeps a socket open past its first token, for the same partner and person only', async () => {
    // a 30-second token to open with, then a 600-second one (the API's lifetime changed in between)
    const tokenLiving = async (seconds: number) => {
      expect((await cli(env, 'resource', 'update', '--uri', PAYMENTS_API, '--ttl', String(seconds))).code).toBe(0);
      for (let i = 0; i < 50; i += 1) {
        const token = await serviceToken();
        const { exp, iat } = jose.decodeJwt(token);
        if (exp! - iat! === seconds) return token;
        await new Promise((resolve) => setTimeout(resolve, 100)); // the server applies an API change within 2 s
      }
      throw new Error(`no ${seconds}-second token`);
    };
    const short = await tokenLiving(30);
    const long = await tokenLiving(600);
    const clock = testClock();
    const later = await startExample(exampleEnv, { now: clock.now });
    try {
      const opened = await openEvents(later, { authorization: `Bearer ${short}` });
      if (!('socket' in opened)) throw new Error(JSON.stringify(opened.refused));
      await opened.socket.next('ready');
      opened.socket.ws.send(JSON.stringify({ type: 'authenticate', authorization: `Bearer ${long}` }));
      await opened.socket.next('authenticated');
      clock.advance(31_000); // past the first token's expiry
      const other = await tokenCall(server.url, limited, {
        grant_type: 'client_credentials',
        scope: 'accounts:read',
        resource: PAYMENTS_API,
      });
      opened.socket.ws.send(JSON.stringify({ type: 'authenticate', authorization: `Bearer ${other.body.access_token as string}` }));
      expect((await opened.socket.next('error')).error).toBe('insufficient_scope'); // refused, and the socket lives on
      opened.socket.ws.send('not json');
      expect((await opened.socket.next('error')).error).toBe('invalid_request');
      // a token of another partner closes the socket
      const stranger = await approvedPayment('openid payments:read');
      opened.socket.ws.send(JSON.stringify({ type: 'authenticate', authorization: `Bearer ${stranger.access_token}` }));
      expect(await opened.socket.closed).toEqual({ code: CLOSE.forbidden, reason: 'a token of another partner or person' });
    } finally {
      await later.close();
    }
  });

  test('a token signed by a revoked key is refused (after the JWKS cache time, or at once at an API that fetches afresh); the new key’s tokens verify at once', async () => {
    const before = await serviceToken();
    const oldKid = kidOf(before);
    const since = server.logs().length;
    const rotated = await cli(env, 'keys', 'rotate', '--now');
    expect(rotated.code).toBe(0);
    await server.log.next(/"msg":"signing keys changed"/, { since });
    const revoked = await cli(env, 'keys', 'revoke', oldKid);
    expect(revoked.code).toBe(0);
    for (let i = 0; i < 100 && (await fetchJwks(server.url)).kids.includes(oldKid); i += 1)
      await new Promise((resolve) => setTimeout(resolve, 100));
    // the running API still holds the old JWKS: a token of a key it has not seen makes it fetch once
    const after = await serviceToken();
    expect(kidOf(after)).not.toBe(oldKid);
    expect((await call(api, 'GET', '/accounts', `Bearer ${after}`)).status).toBe(200);
    // that fetch dropped the revoked key
    await refusedEverywhere(before, { status: 401, error: 'invalid_token', description: /not in the issuer's JWKS/ });
    const fresh = await startExample(exampleEnv);
    try {
      await refusedEverywhere(before, { status: 401, error: 'invalid_token', description: /revoked/ }, fresh);
    } finally {
      await fresh.close();
    }
  });
});

describe('opaque access tokens (the same API, switched to --format opaque)', () => {
  beforeAll(async () => {
    expect((await cli(env, 'resource', 'update', '--uri', PAYMENTS_API, '--format', 'opaque')).code).toBe(0);
    // the server applies an API change within 2 s
    for (let i = 0; i < 50 && (await serviceToken()).includes('.'); i += 1) await new Promise((resolve) => setTimeout(resolve, 100));
  });

  test('a good opaque token everywhere; a revoked one is refused, and its socket and MQTT session end', async () => {
    const token = await serviceToken();
    expect(token).not.toContain('.');
    expect((await call(api, 'GET', '/accounts', `Bearer ${token}`)).status).toBe(200);
    const opened = await openEvents(api, { authorization: `Bearer ${token}` });
    if (!('socket' in opened)) throw new Error(JSON.stringify(opened.refused));
    await opened.socket.next('ready');
    const connected = await connectMqtt(api, service.clientId, token);
    if (!('client' in connected)) throw new Error(`CONNACK ${connected.code}`);
    const dropped = mqttClosed(connected.client);

    const revoked = await fetch(`${server.url}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(service.clientId, service.clientSecret!) },
      body: form({ token }),
    });
    expect(revoked.status).toBe(200);
    expect(await opened.socket.closed).toEqual({ code: CLOSE.revoked, reason: 'token revoked' });
    await dropped;
    apiClock.advance(31_000); // past the introspection cache (30 s)
    await refusedEverywhere(token, { status: 401, error: 'invalid_token', description: /not active/ });
  });

  test('an unknown opaque token, and an opaque token at an API without an introspection credential', async () => {
    await refusedEverywhere('not-a-token-at-all', { status: 401, error: 'invalid_token', description: /not active/ });
    const blind = await startExample({ PORTCULLIS_ISSUER: server.url, API_AUDIENCE: PAYMENTS_API });
    try {
      await refusedEverywhere(
        await serviceToken(),
        { status: 401, error: 'invalid_token', description: /no introspection credential/ },
        blind,
      );
    } finally {
      await blind.close();
    }
  });
});
