import fs from 'node:fs';
import path from 'node:path';
import * as jose from 'jose';
import * as oauth from 'oauth4webapi';
import { cli, freshDatabaseUrl, instanceEnv, tempDir } from '../support/harness.ts';
import { cookieAgent } from '../support/agent.ts';
import { httpLogin } from '../support/http-login.ts';
import { startInProcess, testClock, type InProcessServer, type TestClock } from '../support/in-process.ts';
import { codeFor, createUser, secretOf } from '../support/login.ts';
import { PAYMENT, PAYMENTS_API, supportedDetailsTypes, untilTypesSupported } from '../support/payments.ts';
import { codeRequest, PASSWORD, REDIRECT, registerApp, registerService, tokenCall, type App } from '../support/person-flow.ts';

// Rich authorization requests (RFC 9396) for payments, through the real flow: the partner asks
// with `authorization_details`, the person sees the payment in words and approves it, the token
// carries it and introspection returns it; a payment consent is never remembered.

const PAYMENTS = PAYMENTS_API; // opaque tokens, introspected: payment_initiation
const ACCOUNTS = 'https://api.bank.test/accounts'; // JWT tokens: a custom type with its own schema

const ACCOUNT_ACCESS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'accounts'],
  properties: {
    type: { const: 'account_access' },
    accounts: { type: 'array', minItems: 1, maxItems: 5, items: { type: 'string', format: 'iban' } },
    locations: { type: 'array', items: { type: 'string' } },
  },
};

let server: InProcessServer;
let env: Record<string, string>;
let clock: TestClock;
let payer: App; // may use both APIs
let other: App; // may use the accounts API only
let introspector: App;
let as: oauth.AuthorizationServer;

beforeAll(async () => {
  const dir = tempDir();
  const schemaFile = path.join(dir, 'account-access.json');
  fs.writeFileSync(schemaFile, JSON.stringify(ACCOUNT_ACCESS_SCHEMA));
  clock = testClock();
  server = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir), { LOG_LEVEL: 'warn', KEY_POLL_INTERVAL: '1s' }), { clock });
  env = server.env;
  const payments = await cli(
    env,
    'resource',
    'create',
    '--uri',
    PAYMENTS,
    '--scope',
    'payments:write',
    '--format',
    'opaque',
    '--default',
    '--details-type',
    'payment_initiation',
  );
  expect(payments.stderr).toBe('');
  expect(payments.json.authorization_details_types).toEqual([{ type: 'payment_initiation', schema: 'built-in' }]);
  const accounts = await cli(
    env,
    'resource',
    'create',
    '--uri',
    ACCOUNTS,
    '--scope',
    'accounts:read',
    '--details-type',
    'account_access',
    '--details-schema',
    schemaFile,
  );
  expect(accounts.stderr).toBe('');
  expect(accounts.json.authorization_details_types).toEqual([{ type: 'account_access', schema: ACCOUNT_ACCESS_SCHEMA }]);
  introspector = await registerService(env, 'Payments API', 'payments:write');
  expect((await cli(env, 'resource', 'update', '--uri', PAYMENTS, '--introspector', introspector.clientId)).code).toBe(0);
  payer = await registerApp(env, { name: 'Acme Pay', scope: 'payments:write accounts:read' });
  other = await registerApp(env, { name: 'Other Bank', scope: 'accounts:read' });
  // the types above were registered after the server started: it takes them with its next Provider
  await untilTypesSupported(server.url, ['payment_initiation', 'account_access']);
  as = await oauth.processDiscoveryResponse(
    new URL(server.url),
    await oauth.discoveryRequest(new URL(server.url), { [oauth.allowInsecureRequests]: true }),
  );
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

/** A person with an authenticator, and a browser of theirs (cookies kept across logins). */
async function person() {
  const username = `payer-${Math.random().toString(36).slice(2, 8)}`;
  const created = await createUser(env, username, PASSWORD, '--with-totp');
  expect(created.code).toBe(0);
  const totp = secretOf(created.json.totp_uri);
  const agent = cookieAgent(() => server.url);
  let step = 0;
  return {
    /** Runs an authorization request in this person's browser: the code, its PKCE verifier, the pages seen. */
    async authorize(app: App, params: Record<string, string>) {
      const { url, verifier } = codeRequest(server.url, app, params);
      // a TOTP code is taken once: each login uses the next period's
      const login = await httpLogin({
        authorizationUrl: url,
        redirectUri: REDIRECT,
        username,
        password: PASSWORD,
        code: () => codeFor(totp, step++),
        agent,
      });
      if (!login.callback.searchParams.get('code')) throw new Error(`no code: ${login.callback.href}`);
      return { code: login.callback.searchParams.get('code')!, verifier, pages: login.pages, html: login.html };
    },
  };
}

const paymentRequest = (details: object[], extra: Record<string, string> = {}) => ({
  scope: 'openid payments:write',
  resource: PAYMENTS,
  authorization_details: JSON.stringify(details),
  ...extra,
});

/** The code exchanged with oauth4webapi (client_secret_basic): its token response. */
async function exchange(app: App, code: string, verifier: string) {
  const client: oauth.Client = { client_id: app.clientId };
  const callback = new URL(`${REDIRECT}?code=${code}&iss=${encodeURIComponent(server.url)}`);
  const params = oauth.validateAuthResponse(as, client, callback, oauth.expectNoState);
  const response = await oauth.authorizationCodeGrantRequest(
    as,
    client,
    oauth.ClientSecretBasic(app.clientSecret!),
    params,
    REDIRECT,
    verifier,
    {
      [oauth.allowInsecureRequests]: true,
    },
  );
  return oauth.processAuthorizationCodeResponse(as, client, response);
}

async function introspect(token: string) {
  const client: oauth.Client = { client_id: introspector.clientId };
  const response = await oauth.introspectionRequest(as, client, oauth.ClientSecretBasic(introspector.clientSecret!), token, {
    [oauth.allowInsecureRequests]: true,
  });
  return oauth.processIntrospectionResponse(as, client, response);
}

/** The refusal an authorization request gets (a redirect to the partner with the error). */
async function refusal(app: App, params: Record<string, string>) {
  const { url } = codeRequest(server.url, app, params);
  const res = await fetch(url, { redirect: 'manual' });
  const location = new URL(res.headers.get('location') ?? '', server.url);
  expect(location.href.startsWith(REDIRECT)).toBe(true);
  return { error: location.searchParams.get('error'), description: location.searchParams.get('error_description') ?? '' };
}

const pageText = (html: string) =>
  html
    .replace(/<[^>]+>/g, '')
    .replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code)))
    .replace(/\s+/g, ' ');

test('discovery lists the registered types', async () => {
  expect((await supportedDetailsTypes(server.url)).sort()).toEqual(['account_access', 'payment_initiation']);
});

test('the person sees the payment in words; the token carries it, introspection returns it, a refreshed token keeps it', async () => {
  const browser = await person();
  const { code, verifier, pages, html } = await browser.authorize(payer, paymentRequest([PAYMENT]));
  expect(pages.at(-1)).toBe('Allow Acme Pay?');
  const consent = pageText(html.at(-1)!);
  expect(consent).toContain('Pay €1,250.00 to ACME Supplies Ltd, IBAN DE89 3704 0044 0532 0130 00, reference Invoice 2291');
  expect(consent).toContain('Acme Pay may also check its status.');

  const tokens = await exchange(payer, code, verifier);
  expect(tokens.authorization_details).toEqual([PAYMENT]);
  const introspected = await introspect(tokens.access_token);
  expect(introspected.active).toBe(true);
  expect(introspected.aud).toBe(PAYMENTS);
  expect(introspected.authorization_details).toEqual([PAYMENT]);

  // RFC 9396 section 7: refreshed tokens of the grant carry what was approved with it
  const refreshed = await tokenCall(server.url, payer, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! });
  expect(refreshed.status).toBe(200);
  expect(refreshed.body.authorization_details).toEqual([PAYMENT]);
  expect((await introspect(refreshed.body.access_token as string)).authorization_details).toEqual([PAYMENT]);
  // a token request may ask for no more than was approved
  const more = await tokenCall(server.url, payer, {
    grant_type: 'refresh_token',
    refresh_token: refreshed.body.refresh_token as string,
    resource: PAYMENTS,
    authorization_details: JSON.stringify([{ ...PAYMENT, instructedAmount: { currency: 'EUR', amount: '9999.00' } }]),
  });
  expect(more.status).toBe(400);
  expect(more.body.error).toBe('invalid_authorization_details');
});

test('a payment consent is never remembered, and one payment never reaches a later token of the same grant', async () => {
  const browser = await person();
  const first = await browser.authorize(payer, paymentRequest([PAYMENT]));
  expect(first.pages).toEqual(['Sign in', 'Two-step verification', 'Allow Acme Pay?']);
  await exchange(payer, first.code, first.verifier);

  // the same person, browser and partner, the scopes already granted: the second payment is asked again
  const second = {
    ...PAYMENT,
    instructedAmount: { currency: 'GBP', amount: '20.5' },
    creditorName: 'Bright Energy plc',
    remittanceInformationUnstructured: 'Account 77',
  };
  const again = await browser.authorize(payer, paymentRequest([second]));
  expect(again.pages).toEqual(['Allow Acme Pay?']);
  expect(pageText(again.html[0])).toContain('Pay £20.50 to Bright Energy plc');
  expect(pageText(again.html[0])).not.toContain('1,250.00');
  const secondTokens = await exchange(payer, again.code, again.verifier);
  expect(secondTokens.authorization_details).toEqual([second]);

  // the same grant without authorization_details: no consent page (the scopes are remembered), no payment in the token
  const plain = await browser.authorize(payer, { scope: 'openid payments:write', resource: PAYMENTS });
  expect(plain.pages).toEqual([]);
  const plainTokens = await exchange(payer, plain.code, plain.verifier);
  expect(plainTokens.authorization_details).toBeUndefined();
  expect((await introspect(plainTokens.access_token)).authorization_details).toBeUndefined();
});

test('a custom type with its own schema reaches a JWT access token as a claim', async () => {
  const detail = { type: 'account_access', accounts: ['GB82WEST12345698765432'], locations: [ACCOUNTS] };
  const browser = await person();
  const { code, verifier, html } = await browser.authorize(other, {
    scope: 'openid accounts:read',
    resource: ACCOUNTS,
    authorization_details: JSON.stringify([detail]),
  });
  expect(pageText(html.at(-1)!)).toContain('account_accessaccounts.0: GB82WEST12345698765432locations.0: https://api.bank.test/accounts');
  const tokens = await exchange(other, code, verifier);
  expect(tokens.authorization_details).toEqual([detail]);
  const claims = jose.decodeJwt(tokens.access_token);
  expect(claims.aud).toBe(ACCOUNTS);
  expect(claims.authorization_details).toEqual([detail]);
});

describe('invalid authorization_details are refused with invalid_authorization_details and a reason', () => {
  type Case = { name: string; details: object[]; reason: RegExp; app?: () => App; extra?: Record<string, string> };
  const payment = (change: object) => [{ ...PAYMENT, ...change }];
  const cases: Case[] = [
    {
      name: 'a bad IBAN (check digits)',
      details: payment({ creditorAccount: { iban: 'DE89370400440532013001' } }),
      reason: /creditorAccount\.iban 'DE89370400440532013001' is not a valid IBAN/,
    },
    {
      name: 'a negative amount',
      details: payment({ instructedAmount: { currency: 'EUR', amount: '-5.00' } }),
      reason: /instructedAmount\.amount '-5\.00' must be a positive decimal amount/,
    },
    {
      name: 'a zero amount',
      details: payment({ instructedAmount: { currency: 'EUR', amount: '0.00' } }),
      reason: /must be a positive decimal amount/,
    },
    {
      name: 'an amount as a number',
      details: payment({ instructedAmount: { currency: 'EUR', amount: 1250 } }),
      reason: /instructedAmount\.amount must be string/,
    },
    {
      name: 'more decimals than the currency has',
      details: payment({ instructedAmount: { currency: 'JPY', amount: '100.5' } }),
      reason: /JPY amounts have none/,
    },
    {
      name: 'an unknown currency',
      details: payment({ instructedAmount: { currency: 'XYZ', amount: '5.00' } }),
      reason: /instructedAmount\.currency 'XYZ' is not an ISO 4217 currency code/,
    },
    {
      name: 'a field the schema does not know',
      details: payment({ debtorAccount: { iban: 'DE89370400440532013000' } }),
      reason: /unknown field debtorAccount/,
    },
    { name: 'a missing creditor', details: payment({ creditorName: undefined }), reason: /creditorName is missing/ },
    {
      name: 'a hidden bidirectional override in the creditor name',
      details: payment({ creditorName: 'ACME \u202eLtd' }),
      reason: /creditorName must be text without control or invisible/,
    },
    {
      name: 'an unknown type',
      details: [{ type: 'crypto_transfer', amount: '1' }],
      reason: /unsupported authorization details type value/,
    },
    {
      name: 'a type of an API the partner may not use',
      app: () => other,
      details: [PAYMENT],
      reason: /authorization details type 'payment_initiation' is not allowed for this client/,
      extra: { scope: 'openid accounts:read' },
    },
    {
      name: 'a location other than the type’s API',
      details: payment({ locations: [ACCOUNTS] }),
      reason: /locations may name only https:\/\/api\.bank\.test\/payments/,
    },
    {
      name: 'a type of another API than the resource asked for',
      details: [PAYMENT],
      reason: /this type is for https:\/\/api\.bank\.test\/payments/,
      extra: { scope: 'openid accounts:read', resource: ACCOUNTS },
    },
    {
      name: 'a detail against a custom schema',
      app: () => other,
      details: [{ type: 'account_access', accounts: ['not an iban'] }],
      reason: /account_access: accounts\.0 'not an iban' is not a valid IBAN/,
      extra: { scope: 'openid accounts:read', resource: ACCOUNTS },
    },
  ];
  test.each(cases)('$name', async ({ details, reason, app, extra }) => {
    // the partners are made in beforeAll, after this table
    const answer = await refusal(app ? app() : payer, paymentRequest(details, extra));
    expect(answer.error).toBe('invalid_authorization_details');
    expect(answer.description).toMatch(reason);
  });

  test('client credentials cannot carry a payment (it needs a person’s approval)', async () => {
    const service = await registerService(env, 'Batch Payer', 'payments:write');
    const answer = await tokenCall(server.url, service, {
      grant_type: 'client_credentials',
      scope: 'payments:write',
      resource: PAYMENTS,
      authorization_details: JSON.stringify([PAYMENT]),
    });
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe('invalid_authorization_details');
    expect(answer.body.error_description).toMatch(/need a person/);
  });
});

test('a type registered or dropped while the server runs applies without a restart', async () => {
  const dir = tempDir();
  const schemaFile = path.join(dir, 'standing-order.json');
  fs.writeFileSync(
    schemaFile,
    JSON.stringify({
      type: 'object',
      required: ['type', 'every'],
      properties: { type: { const: 'standing_order' }, every: { enum: ['month', 'week'] } },
    }),
  );
  const detail = { type: 'standing_order', every: 'month' };
  const added = await cli(
    env,
    'resource',
    'update',
    '--uri',
    PAYMENTS,
    '--details-type',
    'payment_initiation',
    '--details-type',
    'standing_order',
    '--details-schema',
    schemaFile,
  );
  expect(added.stderr).toBe('');
  await untilTypesSupported(server.url, ['standing_order']);
  // accepted: the request goes on to the sign-in page (no redirect back to the partner)
  const { url } = codeRequest(server.url, payer, paymentRequest([detail]));
  expect(new URL((await fetch(url, { redirect: 'manual' })).headers.get('location')!, server.url).pathname).toMatch(/^\/interaction\//);

  expect((await cli(env, 'resource', 'update', '--uri', PAYMENTS, '--details-type', 'payment_initiation')).code).toBe(0);
  clock.advance(5_000); // past the resource cache: refused at once, before any new Provider
  expect((await refusal(payer, paymentRequest([detail]))).description).toMatch(
    /unsupported authorization details type value 'standing_order'/,
  );
  expect(await supportedDetailsTypes(server.url)).not.toContain('standing_order');
});
