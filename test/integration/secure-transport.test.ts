import { freshDatabaseUrl, instanceEnv, seedPartner, tempDir } from '../support/harness.ts';
import { basic, form } from '../support/http.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import { codeRequest, registerApp } from '../support/person-flow.ts';

// ISSUER=https behind a TLS-terminating proxy: the server itself speaks plain HTTP.

const ISSUER = 'https://login.bank.test';
let untrusting: InProcessServer;
let trusting: InProcessServer;
let authorizationQuery: string;
let service: { clientId: string; clientSecret: string };

beforeAll(async () => {
  const dir = tempDir();
  const env = instanceEnv(dir, freshDatabaseUrl(dir), { ISSUER });
  untrusting = await startInProcess(env);
  trusting = await startInProcess({ ...env, TRUST_PROXY: '1' });
  service = await seedPartner(env);
  const app = await registerApp(env);
  authorizationQuery = codeRequest(ISSUER, app).url.search.slice(1);
});

afterAll(async () => {
  await untrusting?.stop();
  await trusting?.stop();
});

const PROXIED = { 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.7' };

test('start-up warns, in one JSON line naming TRUST_PROXY', () => {
  const warnings = untrusting
    .logs()
    .split('\n')
    .filter((line) => line.includes('TRUST_PROXY'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  expect(warnings).toEqual([expect.objectContaining({ level: 'warn', setting: 'TRUST_PROXY', issuer: ISSUER })]);
  expect(trusting.logs()).not.toContain('TRUST_PROXY');
});

test('/auth through a proxy that is not trusted: a readable 503 page naming TRUST_PROXY, not a 500', async () => {
  const res = await fetch(`${untrusting.local}/auth?${authorizationQuery}`, { headers: PROXIED, redirect: 'manual' });
  expect(res.status).toBe(503);
  expect(res.headers.get('content-type')).toMatch(/^text\/html/);
  expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
  const page = await res.text();
  expect(page).toContain('TRUST_PROXY=1');
  expect(page).toContain('trust_proxy_not_set');
  expect(untrusting.logs()).not.toMatch(/"level":"error"/);
});

test('/auth opened at the plain-HTTP address: 400, open the https one', async () => {
  const res = await fetch(`${untrusting.local}/auth?${authorizationQuery}`, { redirect: 'manual' });
  expect(res.status).toBe(400);
  const page = await res.text();
  expect(page).toContain(`open ${ISSUER} instead`);
  expect(page).toContain('TRUST_PROXY=1');
});

test('/token through a proxy that is not trusted: an OAuth error naming TRUST_PROXY', async () => {
  const res = await fetch(`${untrusting.local}/token`, {
    method: 'POST',
    headers: {
      ...PROXIED,
      authorization: basic(service.clientId, service.clientSecret),
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: form({ grant_type: 'client_credentials', scope: 'payments:read' }),
  });
  expect(res.status).toBe(503);
  const body = (await res.json()) as { error: string; error_description: string };
  expect(body.error).toBe('temporarily_unavailable');
  expect(body.error_description).toContain('TRUST_PROXY=1');
});

test('without forwarding headers the JSON endpoints answer as usual (health checks, internal JWKS fetches)', async () => {
  expect((await fetch(`${untrusting.local}/jwks`)).status).toBe(200);
  expect((await fetch(`${untrusting.local}/healthz`)).status).toBe(200);
});

test('with TRUST_PROXY=1 the same proxied /auth starts the sign-in', async () => {
  const res = await fetch(`${trusting.local}/auth?${authorizationQuery}`, { headers: PROXIED, redirect: 'manual' });
  expect(res.status).toBe(303);
  expect(res.headers.get('location')).toMatch(/\/interaction\//);
  expect(res.headers.getSetCookie().join('\n')).toMatch(/secure/i);
});
