import { cli, freshDatabaseUrl, instanceEnv, tempDir } from '../support/harness.ts';
import { startInProcess, testClock, type InProcessServer } from '../support/in-process.ts';

// Discovery advertises what is supported, tested and documented (docs/partner-guide.md), and no more.

let env: Record<string, string>;
const clock = testClock();
let one: InProcessServer;
let two: InProcessServer;

beforeAll(async () => {
  const dir = tempDir();
  env = instanceEnv(dir, freshDatabaseUrl(dir), { LOG_LEVEL: 'silent' });
  one = await startInProcess(env, { clock });
  two = await startInProcess(env, { clock });
});

afterAll(async () => {
  await one?.stop();
  await two?.stop();
});

async function discovery(server: InProcessServer): Promise<Record<string, unknown>> {
  const res = await fetch(`${server.url}/.well-known/openid-configuration`);
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

test('the metadata lists exactly what is supported', async () => {
  const metadata = await discovery(one);
  const url = one.url;
  expect(metadata).toEqual({
    issuer: url,
    authorization_endpoint: `${url}/auth`,
    token_endpoint: `${url}/token`,
    userinfo_endpoint: `${url}/userinfo`,
    jwks_uri: `${url}/jwks`,
    end_session_endpoint: `${url}/session/end`,
    introspection_endpoint: `${url}/token/introspection`,
    revocation_endpoint: `${url}/token/revocation`,
    acr_values_supported: ['urn:portcullis:acr:mfa'],
    authorization_response_iss_parameter_supported: true,
    claim_types_supported: ['normal'],
    claims_parameter_supported: false,
    claims_supported: ['sub', 'acr', 'amr', 'auth_time', 'sid', 'iss'],
    code_challenge_methods_supported: ['S256'],
    grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials'],
    id_token_signing_alg_values_supported: ['ES256'],
    request_uri_parameter_supported: false,
    // JARM (required of message-signing partners, optional for the others); `jwt` is query.jwt for codes
    response_modes_supported: ['form_post', 'fragment', 'query', 'jwt', 'query.jwt', 'fragment.jwt', 'form_post.jwt'],
    authorization_signing_alg_values_supported: ['ES256'],
    // signed request objects (JAR): required per partner (`--message-signing`), so no require_signed_request_object
    request_parameter_supported: true,
    request_object_signing_alg_values_supported: ['ES256', 'PS256'],
    // signed introspection answers (RFC 9701)
    introspection_signing_alg_values_supported: ['ES256'],
    response_types_supported: ['code'],
    scopes_supported: ['openid', 'offline_access', 'admin:read', 'admin:write'], // the admin API's, built in
    subject_types_supported: ['public'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none', 'private_key_jwt'],
    // partners sign with PS256 or ES256 (client assertions, DPoP proofs); our own signatures are ES256
    token_endpoint_auth_signing_alg_values_supported: ['ES256', 'PS256'],
    dpop_signing_alg_values_supported: ['ES256', 'PS256'],
    pushed_authorization_request_endpoint: `${url}/request`,
  });
});

test('the PAR endpoint is served (FAPI 2.0 partners must use it), refusing an unknown client as OAuth JSON', async () => {
  const par = await fetch(`${one.url}/request`, { method: 'POST', body: new URLSearchParams({ client_id: 'x' }) });
  expect(par.status).toBe(401);
  expect(((await par.json()) as { error: string }).error).toBe('invalid_client');
});

test('scopes_supported follows resource create and update, on every instance, without a restart', async () => {
  await cli(env, 'resource', 'create', '--uri', 'https://api.bank.test/payments', '--scope', 'payments:read payments:write');
  clock.advance(3000); // past the resource directory's 2-second cache
  for (const server of [one, two])
    expect((await discovery(server)).scopes_supported).toEqual([
      'openid',
      'offline_access',
      'admin:read',
      'admin:write',
      'payments:read',
      'payments:write',
    ]);

  await cli(env, 'resource', 'create', '--uri', 'https://api.bank.test/accounts', '--scope', 'accounts:read');
  await cli(env, 'resource', 'update', '--uri', 'https://api.bank.test/payments', '--scope', 'payments:read payments:refund');
  clock.advance(3000);
  for (const server of [one, two])
    expect((await discovery(server)).scopes_supported).toEqual([
      'openid',
      'offline_access',
      'accounts:read',
      'admin:read',
      'admin:write',
      'payments:read',
      'payments:refund',
    ]);
});

test('userinfo answers at /userinfo and, for partners that wrote it down, at /me', async () => {
  for (const path of ['/userinfo', '/me']) {
    const res = await fetch(`${one.url}${path}`, { headers: { authorization: 'Bearer not-a-token' } });
    expect([path, res.status]).toEqual([path, 401]);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_token');
  }
});
