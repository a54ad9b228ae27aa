import fs from 'node:fs';
import path from 'node:path';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import * as oauth from 'oauth4webapi';
import * as client from 'openid-client';
import { cli, freshDatabaseUrl, instanceEnv, seedPartner, tempDir } from '../support/harness.ts';
import { basic, form, type SeededPartner } from '../support/http.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';

let dir: string;
let env: Record<string, string>;
let server: InProcessServer;
let partner: SeededPartner;

beforeAll(async () => {
  dir = tempDir();
  env = instanceEnv(dir, freshDatabaseUrl(dir));
  server = await startInProcess(env);
  env = server.env;
  partner = await seedPartner(env, { allowed: 'payments:read' });
  await cli(env, 'resource', 'create', '--uri', 'https://api.bank.test/accounts', '--scope', 'accounts:read', '--ttl', '120');
});

afterAll(async () => {
  await server?.stop();
});

async function tokenRequest(body: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${server.url}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: basic(partner.clientId, partner.clientSecret),
      ...headers,
    },
    body,
  });
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', body: (await res.json()) as Record<string, any> };
}

describe('client credentials through real clients', () => {
  test('openid-client gets an RFC 9068 ES256 JWT that jose verifies against /jwks', async () => {
    const config = await client.discovery(new URL(server.url), partner.clientId, partner.clientSecret, undefined, {
      execute: [client.allowInsecureRequests],
    });
    const tokens = await client.clientCredentialsGrant(config, { scope: 'payments:read', resource: partner.uri });
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(tokens.scope).toBe('payments:read');

    const header = decodeProtectedHeader(tokens.access_token);
    expect(header).toEqual(expect.objectContaining({ alg: 'ES256', typ: 'at+jwt' }));
    expect(typeof header.kid).toBe('string');

    const jwks = createRemoteJWKSet(new URL(`${server.url}/jwks`));
    const { payload } = await jwtVerify(tokens.access_token, jwks, {
      issuer: server.url,
      audience: partner.uri,
      typ: 'at+jwt',
      algorithms: ['ES256'],
    });
    expect(payload).toEqual(expect.objectContaining({ client_id: partner.clientId, sub: partner.clientId, scope: 'payments:read' }));
    for (const claim of ['iat', 'exp', 'jti']) expect(payload[claim]).toBeDefined();
    expect(payload.exp! - payload.iat!).toBe(600);
  });

  test('oauth4webapi with client_secret_post and the default resource', async () => {
    const as = await oauth.processDiscoveryResponse(
      new URL(server.url),
      await oauth.discoveryRequest(new URL(server.url), { [oauth.allowInsecureRequests]: true }),
    );
    const res = await oauth.clientCredentialsGrantRequest(
      as,
      { client_id: partner.clientId },
      oauth.ClientSecretPost(partner.clientSecret),
      new URLSearchParams({ scope: 'payments:read' }),
      { [oauth.allowInsecureRequests]: true },
    );
    const result = await oauth.processClientCredentialsResponse(as, { client_id: partner.clientId }, res);
    const { payload } = await jwtVerify(result.access_token, createRemoteJWKSet(new URL(as.jwks_uri!)), {
      audience: partner.uri,
      issuer: server.url,
    });
    expect(payload.scope).toBe('payments:read');
  });
});

describe('scope, target and client rules', () => {
  test('a scope beyond the allow-list is invalid_scope', async () => {
    const res = await tokenRequest(form({ grant_type: 'client_credentials', scope: 'payments:read payments:write' }));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_scope');
  });

  test("another resource's scope is invalid_scope, an unknown resource invalid_target", async () => {
    expect((await tokenRequest(form({ grant_type: 'client_credentials', scope: 'accounts:read' }))).body.error).toBe('invalid_scope');
    const unknown = await tokenRequest(form({ grant_type: 'client_credentials', scope: 'payments:read', resource: 'https://evil.test/' }));
    expect(unknown.status).toBe(400);
    expect(unknown.body.error).toBe('invalid_target');
    expect((await tokenRequest(form({ grant_type: 'client_credentials', resource: 'not a uri' }))).body.error).toBe('invalid_target');
  });

  test('a wrong secret and an unknown client are invalid_client (401)', async () => {
    const wrong = await tokenRequest(form({ grant_type: 'client_credentials' }), {
      authorization: basic(partner.clientId, 'not-the-secret'),
    });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toBe('invalid_client');
    const unknown = await tokenRequest(form({ grant_type: 'client_credentials' }), { authorization: basic('ptn_nobody', 'x') });
    expect(unknown.status).toBe(401);
    expect(unknown.body.error).toBe('invalid_client');
  });

  test('a suspended partner is invalid_client until resumed; a rotated secret replaces the old one', async () => {
    const other = await cli(env, 'partner', 'create', '--name', 'Suspendable PSP', '--scope', 'payments:read');
    const auth = { authorization: basic(other.json.client_id, other.json.client_secret) };
    const body = form({ grant_type: 'client_credentials', scope: 'payments:read' });
    expect((await tokenRequest(body, auth)).status).toBe(200);

    expect((await cli(env, 'partner', 'suspend', other.json.client_id)).json.status).toBe('suspended');
    const suspended = await tokenRequest(body, auth);
    expect(suspended.status).toBe(401);
    expect(suspended.body.error).toBe('invalid_client');

    expect((await cli(env, 'partner', 'resume', other.json.client_id)).json.status).toBe('active');
    expect((await tokenRequest(body, auth)).status).toBe(200);

    const rotated = await cli(env, 'partner', 'rotate-secret', other.json.client_id);
    expect(rotated.json.client_secret).not.toBe(other.json.client_secret);
    expect((await tokenRequest(body, auth)).status).toBe(401);
    expect((await tokenRequest(body, { authorization: basic(other.json.client_id, rotated.json.client_secret) })).status).toBe(200);
  });
});

describe('bad requests get OAuth error JSON, never a 500', () => {
  test.each([
    ['JSON body', 'application/json', JSON.stringify({ grant_type: 'client_credentials' })],
    ['text body', 'text/plain', 'grant_type=client_credentials'],
    ['no grant_type', 'application/x-www-form-urlencoded', 'scope=payments:read'],
    ['unknown grant_type', 'application/x-www-form-urlencoded', 'grant_type=password&username=a&password=b'],
    ['garbage', 'application/x-www-form-urlencoded', '%%%&&&==='],
    ['huge body', 'application/x-www-form-urlencoded', `grant_type=client_credentials&scope=${'a'.repeat(2_000_000)}`],
  ])('%s', async (_name, contentType, body) => {
    const res = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': contentType, authorization: basic(partner.clientId, partner.clientSecret) },
      body,
    });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    const json = (await res.json()) as { error: string };
    expect(typeof json.error).toBe('string');
  });

  test('a malformed Authorization header', async () => {
    const res = await tokenRequest(form({ grant_type: 'client_credentials' }), { authorization: 'Basic !!!' });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
  });
});

describe('discovery, JWKS, introspection, revocation, health', () => {
  test('discovery advertises only ES256 where we sign, and PS256/ES256 where partners sign', async () => {
    const meta = (await (await fetch(`${server.url}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(meta.issuer).toBe(server.url);
    const partnersSign = new Set([
      'token_endpoint_auth_signing_alg_values_supported',
      'dpop_signing_alg_values_supported',
      'request_object_signing_alg_values_supported',
    ]);
    for (const [key, value] of Object.entries(meta)) {
      if (key.endsWith('_alg_values_supported'))
        expect([key, value]).toEqual([key, partnersSign.has(key) ? ['ES256', 'PS256'] : ['ES256']]);
    }
    expect(meta.introspection_endpoint).toBe(`${server.url}/token/introspection`);
    expect(meta.revocation_endpoint).toBe(`${server.url}/token/revocation`);
    expect(meta.grant_types_supported).toContain('client_credentials');
  });

  test('the JWKS holds public EC P-256 keys only, unique kids', async () => {
    const { keys } = (await (await fetch(`${server.url}/jwks`)).json()) as { keys: Record<string, string>[] };
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) {
      expect(key).toEqual(expect.objectContaining({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' }));
      expect(key.d).toBeUndefined();
    }
    expect(new Set(keys.map((key) => key.kid)).size).toBe(keys.length);
  });

  test('introspecting or revoking a JWT says unsupported_token_type', async () => {
    const token = (await tokenRequest(form({ grant_type: 'client_credentials', scope: 'payments:read' }))).body.access_token as string;
    for (const endpoint of ['introspection', 'revocation']) {
      const res = await fetch(`${server.url}/token/${endpoint}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(partner.clientId, partner.clientSecret) },
        body: form({ token }),
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toBe('unsupported_token_type');
    }
  });

  test('introspecting an unknown opaque value is inactive', async () => {
    const res = await fetch(`${server.url}/token/introspection`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(partner.clientId, partner.clientSecret) },
      body: form({ token: 'not-a-token-at-all' }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ active: false });
  });

  test('healthz and readyz', async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { checks: Record<string, string> }).checks.database).toBe('ok');
  });

  test('unknown paths are a 404, not a 500', async () => {
    const res = await fetch(`${server.url}/no/such/thing`);
    expect(res.status).toBe(404);
  });
});

describe('start-up', () => {
  test('no oidc-provider warning; the KEK file is 0600; SQLite runs in WAL mode', async () => {
    expect(server.logs()).not.toMatch(/oidc-provider (WARNING|NOTICE)/);
    const stat = fs.statSync(path.join(env.KEYS_DIR, 'kek'));
    expect(stat.mode & 0o777).toBe(0o600);
    if (env.DATABASE_URL.startsWith('sqlite:')) {
      // the -wal file exists only in WAL mode
      expect(fs.existsSync(`${env.DATABASE_URL.slice('sqlite:'.length)}-wal`)).toBe(true);
    }
  });

  test('the client secret is stored only as a hash and never logged', async () => {
    const list = await cli(env, 'partner', 'show', partner.clientId);
    expect(JSON.stringify(list.json)).not.toContain(partner.clientSecret);
    expect(server.logs()).not.toContain(partner.clientSecret);
    if (env.DATABASE_URL.startsWith('sqlite:')) {
      const raw = fs.readFileSync(env.DATABASE_URL.slice('sqlite:'.length));
      const wal = fs.readFileSync(`${env.DATABASE_URL.slice('sqlite:'.length)}-wal`);
      expect(raw.includes(partner.clientSecret)).toBe(false);
      expect(wal.includes(partner.clientSecret)).toBe(false);
    }
  });
});
