import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { freePort, freshDatabaseUrl, instanceEnv, seedPartner, tempDir } from '../support/harness.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import { httpLogin } from '../support/http-login.ts';
import { authorizationRequest, codeFor, createUser, registerPartnerApp, secretOf, type PartnerApp } from '../support/login.ts';

/**
 * Two instances on one database, one issuer, as behind a load balancer: every request of a
 * login may land on either. Runs on SQLite (one file) and, with PORTCULLIS_TEST_PG, on PostgreSQL.
 */
const PASSWORD = 'correct horse battery staple';
const API = 'https://api.bank.test/payments';
const REDIRECT = 'http://127.0.0.1:9/callback';

let a: InProcessServer;
let b: InProcessServer;
let app: PartnerApp;
let clientSecret: string;

beforeAll(async () => {
  const dir = tempDir();
  const issuer = `http://localhost:${await freePort()}`;
  const env = instanceEnv(dir, freshDatabaseUrl(dir), { ISSUER: issuer });
  a = await startInProcess({ ...env, PORT: new URL(issuer).port });
  b = await startInProcess(env);
  await seedPartner(a.env, { uri: API });
  app = await registerPartnerApp(a.env, issuer, REDIRECT);
  clientSecret = (app.config.clientMetadata() as { client_secret: string }).client_secret;
}, 60_000);

afterAll(async () => {
  await a?.stop();
  await b?.stop();
});

const hosts = () => [`http://127.0.0.1:${new URL(a.env.ISSUER).port}`, `http://127.0.0.1:${b.env.PORT}`];

async function tokenAt(host: string, body: Record<string, string>) {
  const res = await fetch(`${host}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${app.clientId}:${clientSecret}`).toString('base64')}`,
    },
    body: new URLSearchParams(body).toString(),
  });
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

test('a login started on one instance finishes on the other; its refresh token rotates at either', async () => {
  const secret = secretOf((await createUser(a.env, 'roamer', PASSWORD, '--with-totp')).json.totp_uri);
  const request = await authorizationRequest(app);
  const { callback, pages } = await httpLogin({
    authorizationUrl: request.url,
    redirectUri: REDIRECT,
    username: 'roamer',
    password: PASSWORD,
    code: () => codeFor(secret),
    hosts: hosts(),
  });
  expect(pages).toEqual(['Sign in', 'Two-step verification', 'Allow Acme Budgeting?']);
  const tokens = await request.exchange(callback);
  expect(decodeJwt(tokens.id_token!).amr).toEqual(['pwd', 'otp']);
  await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(`${hosts()[1]}/jwks`)), { audience: API });

  const [first, second] = hosts();
  const rotated = await tokenAt(second, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! });
  expect(rotated.status).toBe(200);
  expect(rotated.json.refresh_token).not.toBe(tokens.refresh_token);
  // the used one, replayed at the other instance: the grant is revoked everywhere
  expect((await tokenAt(first, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! })).json.error).toBe('invalid_grant');
  expect((await tokenAt(second, { grant_type: 'refresh_token', refresh_token: rotated.json.refresh_token })).json.error).toBe(
    'invalid_grant',
  );
});

test('a lockout counted across both instances holds on both', async () => {
  const secret = secretOf((await createUser(a.env, 'target', PASSWORD, '--with-totp')).json.totp_uri);
  const attempt = async (host: string, password: string) => {
    const request = await authorizationRequest(app);
    return httpLogin({
      authorizationUrl: request.url,
      redirectUri: REDIRECT,
      username: 'target',
      password,
      code: () => codeFor(secret),
      hosts: [host],
    });
  };
  // five wrong passwords, alternating instances: the counter lives in the database
  for (let n = 0; n < 5; n += 1) {
    await expect(attempt(hosts()[n % 2], `wrong-${n}`)).rejects.toThrow(/refused at "Sign in".*: Invalid username or password/);
  }
  // now the right password is refused too, with the same generic message, on both
  for (const host of hosts()) {
    await expect(attempt(host, PASSWORD)).rejects.toThrow(/refused at "Sign in".*: Invalid username or password/);
  }
});
