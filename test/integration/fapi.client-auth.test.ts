import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as jose from 'jose';
import * as oauth from 'oauth4webapi';
import { cli, freshDatabaseUrl, instanceEnv, tempDir, TEST_PG_URL } from '../support/harness.ts';
import { basic } from '../support/http.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import { httpLogin } from '../support/http-login.ts';
import { codeFor, createUser, secretOf } from '../support/login.ts';
import {
  assertion,
  assertionFields,
  clientCredentials,
  clientOf,
  createKeyPartner,
  fetchVia,
  dpopHandle,
  dpopProof,
  jwksFile,
  nonceFor,
  partnerKey,
  post,
  unsignedAssertion,
  type KeyPartner,
} from '../support/fapi.ts';

// Partners proving themselves with their own keys (issue 11): private_key_jwt with PS256 or ES256,
// DPoP-bound tokens, and every refusal a FAPI 2.0 client expects. Two instances share one database
// (ISSUER is their common public name), so the replay caches are shown to hold across instances.

const ENGINE = TEST_PG_URL ? 'postgres' : 'sqlite';
const ISSUER = 'http://login.bank.test';
const TOKEN = `${ISSUER}/token`;
const PARALLEL = 10;
const LOGINS = 4;
const PASSWORD = 'correct horse battery staple';

let a: InProcessServer;
let b: InProcessServer;
let env: Record<string, string>;
let as: oauth.AuthorizationServer;
let fapi: KeyPartner;
let baseline: KeyPartner;

const HOST = { host: new URL(ISSUER).host };
const tokenAt = (server: InProcessServer) => `${server.local}/token`;
/** POST /token at one instance, as a request for the public issuer. */
const tokenPost = (server: InProcessServer, fields: Record<string, string>, headers: Record<string, string> = {}) =>
  post(tokenAt(server), fields, { ...HOST, ...headers });

beforeAll(async () => {
  const dir = tempDir();
  env = instanceEnv(dir, freshDatabaseUrl(dir), { ISSUER, LOG_LEVEL: 'warn' });
  a = await startInProcess(env);
  b = await startInProcess(env);
  await cli(env, 'resource', 'create', '--uri', 'https://api.bank.test/payments', '--scope', 'payments:read payments:write', '--default');
  fapi = await createKeyPartner(env, { name: 'FAPI Bank' });
  baseline = await createKeyPartner(env, { name: 'Key Bank', profile: 'baseline' });
  const metadata = await oauth.processDiscoveryResponse(
    new URL(ISSUER),
    await oauth.discoveryRequest(new URL(ISSUER), { [oauth.allowInsecureRequests]: true, [oauth.customFetch]: fetchVia(ISSUER, a.local) }),
  );
  as = metadata;
}, 60_000);

afterAll(async () => {
  await a?.stop();
  await b?.stop();
});

describe(`private_key_jwt and DPoP (${ENGINE})`, () => {
  test('discovery advertises private_key_jwt with PS256/ES256, DPoP and PAR', () => {
    expect(as.token_endpoint_auth_methods_supported).toContain('private_key_jwt');
    expect(as.token_endpoint_auth_signing_alg_values_supported).toEqual(['ES256', 'PS256']);
    expect(as.dpop_signing_alg_values_supported).toEqual(['ES256', 'PS256']);
    expect(as.pushed_authorization_request_endpoint).toBe(`${ISSUER}/request`);
    expect(as.authorization_response_iss_parameter_supported).toBe(true);
  });

  test.each(['ES256', 'PS256'] as const)('a fapi2 partner with an %s key gets a DPoP-bound client_credentials token', async (alg) => {
    const partner = alg === 'ES256' ? fapi : await createKeyPartner(env, { alg });
    const { keyPair, handle } = await dpopHandle(clientOf(partner).client);
    const tokens = await clientCredentials(as, partner, { dpop: handle, fetch: fetchVia(ISSUER, b.local) });
    expect(tokens.token_type).toBe('dpop');
    const claims = jose.decodeJwt(tokens.access_token);
    expect(claims).toMatchObject({ client_id: partner.clientId, aud: 'https://api.bank.test/payments', scope: 'payments:read' });
    expect((claims.cnf as { jkt: string }).jkt).toBe(await jose.calculateJwkThumbprint(await jose.exportJWK(keyPair.publicKey)));
  });

  test('partner show tells the profile, the method, the key IDs and the binding, never a key', async () => {
    const shown = await cli(env, 'partner', 'show', fapi.clientId);
    expect(shown.json).toMatchObject({
      profile: 'fapi2',
      auth_method: 'private_key_jwt',
      key_ids: [fapi.kid],
      token_binding: 'dpop',
      public: false,
    });
    expect(shown.stdout).not.toContain(String(fapi.publicJwk.x));
    expect(fapi.created.client_secret).toBeUndefined();
  });

  test('a fapi2 partner without a DPoP proof is refused: its tokens must be sender-constrained', async () => {
    const answer = await tokenPost(a, assertionFields(await assertion(fapi, ISSUER)));
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ error: 'invalid_grant', error_description: 'DPoP proof JWT not provided' });
  });

  test('a shared secret is refused from a fapi2 partner', async () => {
    const answer = await tokenPost(
      a,
      { grant_type: 'client_credentials', scope: 'payments:read' },
      { authorization: basic(fapi.clientId, 'guess') },
    );
    expect(answer.status).toBe(401);
    expect(answer.body.error).toBe('invalid_client');
  });

  test('a replayed client assertion is refused, at the same instance and at the other', async () => {
    const jwt = await assertion(baseline, ISSUER);
    expect((await tokenPost(a, assertionFields(jwt))).status).toBe(200);
    for (const server of [a, b]) {
      const again = await tokenPost(server, assertionFields(jwt));
      expect(again.status).toBe(401);
      expect(again.body).toMatchObject({ error: 'invalid_client' });
    }
  });

  test(`one assertion sent ${PARALLEL} times at once to two instances: exactly one token`, async () => {
    const jwt = await assertion(baseline, ISSUER);
    const answers = await Promise.all(Array.from({ length: PARALLEL }, (_, i) => tokenPost(i % 2 ? a : b, assertionFields(jwt))));
    expect(answers.map((answer) => answer.status).sort()).toEqual([200, ...Array<number>(PARALLEL - 1).fill(401)]);
  });

  test.each([
    ['expired', { exp: Math.floor(Date.now() / 1000) - 120, iat: Math.floor(Date.now() / 1000) - 180 }],
    ['living longer than 5 minutes', { exp: Math.floor(Date.now() / 1000) + 3600 }],
  ])('an assertion %s is refused', async (_label, times) => {
    const answer = await tokenPost(a, assertionFields(await assertion(baseline, ISSUER, times)));
    expect(answer.status).toBe(401);
    expect(answer.body.error).toBe('invalid_client');
  });

  test('an assertion addressed to the token endpoint instead of the issuer is refused', async () => {
    const answer = await tokenPost(a, assertionFields(await assertion(baseline, TOKEN)));
    expect(answer.status).toBe(401);
    expect(answer.body.error).toBe('invalid_client');
  });

  test('an assertion signed with an unregistered key, unsigned, or with HS256 is refused', async () => {
    const stranger = await partnerKey('ES256');
    const forged = [
      await assertion(baseline, ISSUER, { key: stranger.privateKey }),
      await assertion(baseline, ISSUER, { key: stranger.privateKey, kid: stranger.kid }),
      unsignedAssertion(baseline.clientId, ISSUER),
      await assertion(baseline, ISSUER, { alg: 'HS256', key: new TextEncoder().encode('a shared secret of thirty-two bytes!') }),
    ];
    for (const jwt of forged) {
      const answer = await tokenPost(a, assertionFields(jwt));
      expect({ status: answer.status, error: answer.body.error }).toEqual({ status: 401, error: 'invalid_client' });
    }
  });

  describe('DPoP proofs', () => {
    const fields = async () => assertionFields(await assertion(fapi, ISSUER));

    test('a proof for another URL or another method is refused', async () => {
      const { keyPair } = await dpopHandle(clientOf(fapi).client);
      const nonce = await nonceFor(tokenAt(a), keyPair, fields, { htu: TOKEN, headers: HOST });
      for (const claims of [
        { htm: 'POST', htu: `${ISSUER}/token/introspection`, nonce },
        { htm: 'GET', htu: TOKEN, nonce },
      ]) {
        const answer = await tokenPost(a, await fields(), { dpop: await dpopProof(keyPair, claims) });
        expect({ status: answer.status, error: answer.body.error }).toEqual({ status: 400, error: 'invalid_dpop_proof' });
      }
    });

    test('a proof with a stale or made-up nonce gets use_dpop_nonce and a fresh DPoP-Nonce', async () => {
      const { keyPair } = await dpopHandle(clientOf(fapi).client);
      const answer = await tokenPost(a, await fields(), { dpop: await dpopProof(keyPair, { htm: 'POST', htu: TOKEN, nonce: 'made-up' }) });
      expect(answer.status).toBe(400);
      expect(answer.body.error).toBe('use_dpop_nonce');
      expect(answer.headers.get('dpop-nonce')).toBeTruthy();
    });

    test('a nonce from one instance is good at the other (derived from the shared KEK)', async () => {
      const { keyPair } = await dpopHandle(clientOf(fapi).client);
      const nonce = await nonceFor(tokenAt(a), keyPair, fields, { htu: TOKEN, headers: HOST });
      const answer = await tokenPost(b, await fields(), { dpop: await dpopProof(keyPair, { htm: 'POST', htu: TOKEN, nonce }) });
      expect(answer.status).toBe(200);
      expect(answer.body.token_type).toBe('DPoP');
    });

    test(`one proof replayed ${PARALLEL} times at once on two instances: exactly one token`, async () => {
      const { keyPair } = await dpopHandle(clientOf(fapi).client);
      const nonce = await nonceFor(tokenAt(a), keyPair, fields, { htu: TOKEN, headers: HOST });
      const proof = await dpopProof(keyPair, { htm: 'POST', htu: TOKEN, nonce });
      const answers = await Promise.all(
        Array.from({ length: PARALLEL }, async (_, i) => tokenPost(i % 2 ? a : b, await fields(), { dpop: proof })),
      );
      expect(answers.filter((answer) => answer.status === 200)).toHaveLength(1);
      // oidc-provider answers a replayed proof with invalid_grant (its description withheld)
      for (const refused of answers.filter((answer) => answer.status !== 200)) expect(refused.body.error).toBe('invalid_grant');
    });
  });
});

describe(`pushed authorization requests (${ENGINE})`, () => {
  // oidc-provider consumes a request_uri when it answers (the code), not when a login starts: several
  // people may begin a login from one pushed request, only one of them may end it with a code.
  test(`one request_uri, ${LOGINS} logins finishing at once on two instances: exactly one code`, async () => {
    const redirectUri = 'https://app.bank.test/callback';
    const app = await createKeyPartner(env, { name: 'PAR Bank', extra: ['--grant', 'authorization_code', '--redirect-uri', redirectUri] });
    const pushed = await post(
      `${a.local}/request`,
      {
        client_id: app.clientId,
        response_type: 'code',
        redirect_uri: redirectUri,
        scope: 'openid payments:read',
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
        code_challenge_method: 'S256',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await assertion(app, ISSUER),
      },
      HOST,
    );
    expect(pushed.status).toBe(201);
    const query = new URLSearchParams({ client_id: app.clientId, request_uri: pushed.body.request_uri as string });
    const secrets = await Promise.all(
      Array.from({ length: LOGINS }, async (_, i) => secretOf((await createUser(env, `par-${i}`, PASSWORD, '--with-totp')).json.totp_uri)),
    );
    // every login waits at its consent page until all are there, then all consent at once
    let arrived = 0;
    let release: () => void = () => undefined;
    const allThere = new Promise<void>((resolve) => (release = resolve));
    const lineUp = () => {
      if ((arrived += 1) === LOGINS) release();
      return allThere;
    };
    const callbacks = await Promise.all(
      Array.from({ length: LOGINS }, async (_, i) => {
        const { callback } = await httpLogin({
          beforeConsent: lineUp,
          authorizationUrl: new URL(`${(i % 2 ? a : b).local}/auth?${query}`),
          redirectUri,
          username: `par-${i}`,
          password: PASSWORD,
          code: () => codeFor(secrets[i]),
        });
        return callback;
      }),
    );
    expect(callbacks.filter((url) => url.searchParams.has('code'))).toHaveLength(1);
    for (const refused of callbacks.filter((url) => !url.searchParams.has('code')))
      expect(refused.searchParams.get('error')).toBe('invalid_request_uri');
  });
});

describe(`key management (${ENGINE})`, () => {
  test('partner create refuses a fapi2 partner with a secret, without keys, or with a private key in its set', async () => {
    const key = await partnerKey();
    const privateJwk = await jose.exportJWK(key.privateKey);
    const refusals = [
      ['--profile', 'fapi2'],
      ['--profile', 'fapi2', '--auth-method', 'client_secret_basic'],
      ['--profile', 'fapi2', '--public', '--grant', 'authorization_code', '--redirect-uri', 'https://app.test/cb'],
      ['--auth-method', 'private_key_jwt'],
      ['--jwks-file', jwksFile([{ ...privateJwk, kid: 'p' }])],
      ['--jwks-file', jwksFile([{ ...key.publicJwk, alg: 'RS256' }])],
      ['--jwks-uri', 'http://keys.example.com/jwks'],
    ];
    for (const extra of refusals) {
      const result = await cli(env, 'partner', 'create', '--name', `Refused ${extra.join(' ')}`, '--scope', 'payments:read', ...extra);
      expect({ extra, code: result.code }).toEqual({ extra, code: 1 });
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
    const unreadable = await cli(
      env,
      'partner',
      'create',
      '--name',
      'No file',
      '--scope',
      'payments:read',
      '--jwks-file',
      '/nonexistent.json',
    );
    expect(unreadable.code).toBe(2);
    expect(unreadable.stderr).toMatch(/--jwks-file \/nonexistent.json cannot be read/);
  });

  test('DEFAULT_PROFILE is the profile of a partner created without --profile', async () => {
    const fapiByDefault = { ...env, DEFAULT_PROFILE: 'fapi2' };
    const key = await partnerKey();
    const made = await cli(
      fapiByDefault,
      'partner',
      'create',
      '--name',
      'Default FAPI',
      '--scope',
      'payments:read',
      '--jwks-file',
      jwksFile([key.publicJwk]),
    );
    expect(made.json).toMatchObject({ profile: 'fapi2', token_binding: 'dpop' });
    const secret = await cli(fapiByDefault, 'partner', 'create', '--name', 'Default secret', '--scope', 'payments:read');
    expect(secret.code).toBe(1);
    expect(secret.stderr).toMatch(/DEFAULT_PROFILE=fapi2, or pass --profile baseline/);
    const baselineAnyway = await cli(
      fapiByDefault,
      'partner',
      'create',
      '--name',
      'Explicit baseline',
      '--scope',
      'payments:read',
      '--profile',
      'baseline',
    );
    expect(baselineAnyway.json).toMatchObject({ profile: 'baseline', auth_method: 'client_secret_basic' });
    expect((await cli({ ...env, DEFAULT_PROFILE: 'gold' }, 'partner', 'list')).stderr).toMatch(/DEFAULT_PROFILE/);
  });

  test('set-keys rotates at once; a secret partner moves to private_key_jwt and set-profile fapi2 then binds its tokens', async () => {
    const created = await cli(env, 'partner', 'create', '--name', 'Moving Bank', '--scope', 'payments:read');
    const clientId = created.json.client_id as string;
    const secretCall = () =>
      tokenPost(
        a,
        { grant_type: 'client_credentials', scope: 'payments:read' },
        { authorization: basic(clientId, created.json.client_secret) },
      );
    expect((await secretCall()).status).toBe(200);
    const refused = await cli(env, 'partner', 'set-profile', clientId, 'fapi2');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/not a shared secret|shared secret/);

    const first = await partnerKey('PS256');
    const moved = await cli(env, 'partner', 'set-keys', clientId, '--jwks-file', jwksFile([first.publicJwk]));
    expect(moved.json).toMatchObject({ auth_method: 'private_key_jwt', key_ids: [first.kid], profile: 'baseline' });
    expect((await secretCall()).status).toBe(401);
    const signer = { clientId, kid: first.kid, privateKey: first.privateKey };
    expect((await tokenPost(a, assertionFields(await assertion(signer, ISSUER, { alg: 'PS256' })))).status).toBe(200);

    const second = await partnerKey('ES256');
    await cli(env, 'partner', 'set-keys', clientId, '--jwks-file', jwksFile([second.publicJwk]));
    const old = await tokenPost(b, assertionFields(await assertion(signer, ISSUER, { alg: 'PS256' })));
    expect(old.status).toBe(401);
    const next = { clientId, kid: second.kid, privateKey: second.privateKey };
    expect((await tokenPost(b, assertionFields(await assertion(next, ISSUER)))).status).toBe(200);

    const fapi2 = await cli(env, 'partner', 'set-profile', clientId, 'fapi2');
    expect(fapi2.json).toMatchObject({ profile: 'fapi2', token_binding: 'dpop' });
    const unbound = await tokenPost(a, assertionFields(await assertion(next, ISSUER)));
    expect(unbound.body.error_description).toBe('DPoP proof JWT not provided');
    expect((await cli(env, 'partner', 'set-profile', clientId, 'gold')).stderr).toMatch(/not a profile/);
  });
});

describe(`jwks_uri (${ENGINE})`, () => {
  let keysServer: http.Server;
  let answer: { status: number; body: string } = { status: 200, body: '' };
  let jwksUrl: string;
  let hits = 0;

  beforeAll(async () => {
    keysServer = http.createServer((_req, res) => {
      hits += 1;
      if (answer.status === 0) return; // never answers: the fetch times out
      res.writeHead(answer.status, { 'content-type': 'application/json', 'cache-control': 'max-age=0' });
      res.end(answer.body);
    });
    await new Promise<void>((resolve) => keysServer.listen(0, '127.0.0.1', resolve));
    jwksUrl = `http://127.0.0.1:${(keysServer.address() as AddressInfo).port}/jwks`;
  });
  afterAll(() => new Promise<void>((resolve) => keysServer.close(() => resolve())));

  test('keys fetched from the partner’s jwks_uri; a failing fetch is invalid_client, never a 500', async () => {
    const key = await partnerKey('ES256');
    answer = { status: 200, body: JSON.stringify({ keys: [key.publicJwk] }) };
    const created = await cli(env, 'partner', 'create', '--name', 'URI Bank', '--scope', 'payments:read', '--jwks-uri', jwksUrl);
    expect(created.json).toMatchObject({ auth_method: 'private_key_jwt', jwks_uri: jwksUrl });
    const signer = { clientId: created.json.client_id as string, kid: key.kid, privateKey: key.privateKey };
    expect((await tokenPost(a, assertionFields(await assertion(signer, ISSUER)))).status).toBe(200);
    // kept (at least 60 s, at most 5 minutes): the next assertion is checked without a fetch
    const fetched = hits;
    expect((await tokenPost(a, assertionFields(await assertion(signer, ISSUER)))).status).toBe(200);
    expect(hits).toBe(fetched);

    // another server instance (no cache yet) meets each failure
    for (const failure of [
      { status: 500, body: 'oops' },
      { status: 200, body: 'not json' },
      { status: 200, body: JSON.stringify({ keys: [key.publicJwk], padding: 'x'.repeat(70 * 1024) }) },
      { status: 0, body: '' }, // no answer: refused after oidc-provider's 2.5 s timeout
    ]) {
      answer = failure;
      const before = hits;
      const refused = await tokenPost(b, assertionFields(await assertion(signer, ISSUER)));
      expect(hits).toBe(before + 1); // each failure is a fetch of its own (nothing kept from the last)
      expect({ failure: failure.status, status: refused.status, error: refused.body.error }).toEqual({
        failure: failure.status,
        status: 401,
        error: 'invalid_client',
      });
    }
  });
});
