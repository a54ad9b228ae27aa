import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';
import { cli, freshDatabaseUrl, instanceEnv, seedPartner, tempDir } from '../support/harness.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import { httpLogin } from '../support/http-login.ts';
import { authorizationRequest, codeFor, createUser, registerPartnerApp, secretOf, type PartnerApp } from '../support/login.ts';
import { fetchJwks, kidOf } from '../support/keys.support.ts';

/** ID tokens are signed by the active key too, and follow an emergency rotation. */
const PASSWORD = 'correct horse battery staple';
const REDIRECT = 'http://127.0.0.1:9/callback';

let server: InProcessServer;
let app: PartnerApp;

beforeAll(async () => {
  const dir = tempDir();
  server = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir), { KEY_POLL_INTERVAL: '1s' }));
  await seedPartner(server.env);
  app = await registerPartnerApp(server.env, server.url, REDIRECT);
}, 60_000);

afterAll(() => server?.stop());

async function login(username: string, secret: string) {
  const request = await authorizationRequest(app);
  const { callback } = await httpLogin({
    authorizationUrl: request.url,
    redirectUri: REDIRECT,
    username,
    password: PASSWORD,
    code: () => codeFor(secret),
  });
  return request.exchange(callback);
}

const activeKid = async () =>
  ((await cli(server.env, 'keys', 'list')).json as { kid: string; state: string }[]).find((key) => key.state === 'active')!.kid;

test('ID and access tokens carry the active kid, before and after `keys rotate --now`', async () => {
  const secret = secretOf((await createUser(server.env, 'ida', PASSWORD, '--with-totp')).json.totp_uri);
  const before = await login('ida', secret);
  const firstKid = await activeKid();
  expect(kidOf(before.id_token!)).toBe(firstKid);
  expect(kidOf(before.access_token)).toBe(firstKid);

  const since = server.logs().length;
  expect((await cli(server.env, 'keys', 'rotate', '--now')).code).toBe(0);
  const secondKid = await activeKid();
  expect(secondKid).not.toBe(firstKid);
  await server.log.next(/"msg":"signing keys changed"/, { since }); // the server's next poll
  expect((await fetchJwks(server.url)).kids[0]).toBe(secondKid);

  // another person: a TOTP time step is single use, and the first one may still be current
  const otherSecret = secretOf((await createUser(server.env, 'ben', PASSWORD, '--with-totp')).json.totp_uri);
  const after = await login('ben', otherSecret);
  expect(kidOf(after.id_token!)).toBe(secondKid);
  expect(kidOf(after.access_token)).toBe(secondKid);
  const { jwks } = await fetchJwks(server.url);
  const { payload } = await jwtVerify(after.id_token!, createLocalJWKSet(jwks), { issuer: server.url, audience: app.clientId });
  expect(payload.amr).toEqual(['pwd', 'otp']);
  expect(decodeJwt(before.id_token!).sub).not.toBe(payload.sub);
});
