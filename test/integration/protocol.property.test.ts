import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { loadConfig } from '../../src/config/config.ts';
import { createLogger } from '../../src/log/logger.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { cli, freshDatabaseUrl, instanceEnv, tempDir } from '../support/harness.ts';
import { openLogin } from '../support/http-login.ts';
import { basic } from '../support/http.ts';
import { createUser } from '../support/login.ts';

/**
 * Property: whatever a client sends to the OAuth endpoints and the login forms, the server
 * answers (no hang), never with a 5xx, and neither a response nor a log line holds a stack
 * trace or a secret. Seeded: a failure prints its seed and path; rerun with
 * `FUZZ_SEED=<seed> npm test -- test/integration/protocol.property.test.ts`.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 20261129);
const RUNS = Number(process.env.FUZZ_RUNS ?? 250); // per endpoint group: 5 groups, 1,250 cases a run
const REDIRECT = 'http://127.0.0.1:9/callback'; // never reached
const PASSWORD = 'Fuzzing-Passphrase-Quiet-Harbour-71';
const REQUEST_TIMEOUT_MS = 10_000;

let server: RunningServer;
let env: Record<string, string>;
const logLines: string[] = [];
let confidential: { client_id: string; client_secret: string };
let codePartner: { client_id: string; client_secret: string };
let totpSecret: string;
const tokens: Record<string, string> = {};
/** Statuses seen per test: each group must reach both success and refusal, or it tested little. */
let statuses: number[] = [];

beforeAll(async () => {
  const dir = tempDir();
  env = instanceEnv(dir, freshDatabaseUrl(dir), { PORT: '0' });
  server = await startServer(
    loadConfig(env),
    createLogger('info', (line) => logLines.push(line)),
  );
  await cli(env, 'resource', 'create', '--uri', 'https://api.bank.test/payments', '--scope', 'payments:read payments:write', '--default');
  await cli(env, 'resource', 'create', '--uri', 'https://api.bank.test/opaque', '--scope', 'ledger:read', '--format', 'opaque');
  confidential = (await cli(env, 'partner', 'create', '--name', 'Fuzz Bank', '--scope', 'payments:read ledger:read')).json;
  codePartner = (
    await cli(
      env,
      'partner',
      'create',
      '--name',
      'Fuzz App',
      '--scope',
      'payments:read',
      '--grant',
      'authorization_code',
      '--redirect-uri',
      REDIRECT,
    )
  ).json;
  const user = await createUser(env, 'fuzz.person', PASSWORD, '--with-totp');
  totpSecret = new URL(user.json.totp_uri).searchParams.get('secret')!;
  for (const [name, resource] of [
    ['@jwt', 'https://api.bank.test/payments'],
    ['@opaque', 'https://api.bank.test/opaque'],
  ]) {
    const res = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: basic(confidential.client_id, confidential.client_secret),
      },
      body: formBody({ grant_type: 'client_credentials', resource }),
    });
    tokens[name] = ((await res.json()) as { access_token: string }).access_token;
  }
}, 60_000);

beforeEach(() => {
  statuses = [];
});

/** The cases reached both the paths that succeed and those that refuse (else they tested little). */
function expectReached(...wanted: number[]): void {
  for (const status of wanted) expect(statuses).toContain(status);
}

afterAll(async () => {
  await server?.close();
});

/** Everything that must never be seen outside the process. */
function secrets(): string[] {
  return [confidential.client_secret, codePartner.client_secret, PASSWORD, totpSecret, ...server.app.cookieKeys];
}

const STACK = /\n\s+at .+[(:]\d+:\d+\)?|\bat (?:async )?[\w.<>]+ \((?:file|node):/;

type Sent = { method: string; path: string; headers: Record<string, string>; body?: string };

async function send(request: Sent): Promise<{ status: number; text: string }> {
  const res = await fetch(`${server.url}${request.path}`, {
    method: request.method,
    headers: request.headers,
    body: request.body,
    redirect: 'manual',
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  return { status: res.status, text: await res.text() };
}

/** The property itself: an answer below 500, free of stack traces and secrets, and clean logs. */
async function check(request: Sent): Promise<void> {
  const from = logLines.length;
  const { status, text } = await send(request);
  statuses.push(status);
  const logs = logLines.slice(from).join('\n');
  const where = `${request.method} ${request.path}`;
  if (status >= 500) throw new Error(`${where} answered ${status}: ${text.slice(0, 300)}`);
  if (STACK.test(text)) throw new Error(`${where}: stack trace in the response`);
  if (STACK.test(logs)) throw new Error(`${where}: stack trace in the log: ${logs.slice(0, 500)}`);
  for (const secret of secrets()) {
    if (text.includes(secret)) throw new Error(`${where}: a secret in the response`);
    if (logs.includes(secret)) throw new Error(`${where}: a secret in the log`);
  }
}

// ---- arbitraries: mostly plausible values, some hostile, some garbage ----

const hostile = fc.constantFrom(
  '',
  ' ',
  '%',
  '%00',
  '\u0000',
  '<script>alert(1)</script>',
  '"\'\\',
  '../../etc/passwd',
  'a'.repeat(5000),
  '{{csrf}}',
  '${jndi:x}',
  '\ud800',
  'é',
  'openid',
  'payments:read',
  'https://api.bank.test/payments',
  'null',
  '[]',
  '{}',
);
const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 60 }), hostile);
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });

/** encodeURIComponent refuses lone surrogates; a client library would send U+FFFD. */
const encode = (value: string) => encodeURIComponent(value.toWellFormed());

const authorization = fc.oneof(
  fc.constant(undefined),
  fc.constant('confidential'),
  fc.constant('code partner'),
  fc.record({ id: text, secret: text }).map(({ id, secret }) => basic(id, secret)),
  text.map((t) => `Basic ${t}`),
  text.map((t) => `Bearer ${t}`),
  text,
);

function authHeader(choice: string | undefined): Record<string, string> {
  if (choice === undefined) return {};
  if (choice === 'confidential') return { authorization: basic(confidential.client_id, confidential.client_secret) };
  if (choice === 'wrong secret') return { authorization: basic(confidential.client_id, `${confidential.client_secret.slice(1)}x`) };
  if (choice === 'code partner') return { authorization: basic(codePartner.client_id, codePartner.client_secret) };
  // a header value fetch refuses to send (control characters) is not a request a server meets
  return /^[\t\x20-\x7e]*$/.test(choice) ? { authorization: choice } : {};
}

const contentType = fc.constantFrom(
  'application/x-www-form-urlencoded',
  'application/json',
  'text/plain',
  'multipart/form-data; boundary=x',
  '',
);

/** `@confidential` and `@code` stand for the partners' client ids (made after the arbitraries). */
function formBody(fields: Record<string, string | undefined>): string {
  const params = new URLSearchParams();
  const ids: Record<string, string> = { '@confidential': confidential.client_id, '@code': codePartner.client_id, ...tokens };
  for (const [name, value] of Object.entries(fields)) if (value !== undefined) params.append(name, ids[value] ?? value);
  return params.toString();
}

const body = (fields: fc.Arbitrary<Record<string, string | undefined>>) =>
  fc.oneof(
    { weight: 4, arbitrary: fields.map(formBody) },
    { weight: 1, arbitrary: text },
    { weight: 1, arbitrary: fc.constant('x=1&'.repeat(10_000)) },
  );

const post = (
  path: string,
  fields: fc.Arbitrary<Record<string, string | undefined>>,
  plausible: fc.Arbitrary<Record<string, string | undefined>>,
) =>
  fc
    .oneof(
      fc.record({ auth: authorization, type: contentType, body: body(fields) }),
      // a well-formed request from the partner, with one field that may be off
      fc.record({
        auth: fc.oneof({ weight: 4, arbitrary: fc.constant('confidential') }, { weight: 1, arbitrary: fc.constant('wrong secret') }),
        type: fc.constant('application/x-www-form-urlencoded'),
        body: plausible.map(formBody),
      }),
    )
    .map(({ auth, type, body: sent }): Sent => ({
      method: 'POST',
      path,
      headers: { ...(type ? { 'content-type': type } : {}), ...authHeader(auth) },
      body: sent,
    }));

const tokenFields = fc.record({
  grant_type: maybe(
    fc.oneof(
      fc.constantFrom(
        'client_credentials',
        'authorization_code',
        'refresh_token',
        'password',
        'urn:ietf:params:oauth:grant-type:device_code',
      ),
      text,
    ),
  ),
  scope: maybe(fc.oneof(fc.constantFrom('payments:read', 'payments:write', 'ledger:read', 'openid', 'payments:read ledger:read'), text)),
  resource: maybe(fc.oneof(fc.constantFrom('https://api.bank.test/payments', 'https://api.bank.test/opaque', 'urn:x'), text)),
  code: maybe(text),
  refresh_token: maybe(fc.oneof(fc.constantFrom('@jwt', '@opaque'), text)),
  code_verifier: maybe(text),
  redirect_uri: maybe(fc.oneof(fc.constant(REDIRECT), text)),
  client_id: maybe(fc.oneof(fc.constantFrom('@confidential', '@code'), text)),
  client_secret: maybe(text),
  client_assertion_type: maybe(text),
  client_assertion: maybe(text),
});

const plausibleToken = fc.record({
  grant_type: fc.constant('client_credentials'),
  scope: fc.oneof(fc.constantFrom('payments:read', 'ledger:read', 'payments:write'), text),
  resource: maybe(fc.constantFrom('https://api.bank.test/payments', 'https://api.bank.test/opaque')),
});

const plausibleIntrospection = fc.record({
  token: fc.oneof(fc.constantFrom('@jwt', '@opaque'), text),
  token_type_hint: maybe(fc.constantFrom('access_token', 'refresh_token')),
});

const tokenIntrospectionFields = fc.record({
  token: maybe(fc.oneof(fc.constantFrom('@jwt', '@opaque'), text)),
  token_type_hint: maybe(fc.oneof(fc.constantFrom('access_token', 'refresh_token'), text)),
  client_id: maybe(text),
});

const authQuery = fc.record({
  client_id: maybe(fc.oneof(fc.constant('@code'), text)),
  response_type: maybe(fc.oneof(fc.constantFrom('code', 'token', 'id_token', 'code id_token'), text)),
  redirect_uri: maybe(fc.oneof(fc.constant(REDIRECT), text)),
  scope: maybe(fc.oneof(fc.constantFrom('openid', 'openid payments:read', 'payments:read'), text)),
  state: maybe(text),
  nonce: maybe(text),
  code_challenge: maybe(fc.oneof(fc.constant(createHash('sha256').update('v'.repeat(43)).digest('base64url')), text)),
  code_challenge_method: maybe(fc.oneof(fc.constantFrom('S256', 'plain'), text)),
  prompt: maybe(fc.oneof(fc.constantFrom('login', 'consent', 'none'), text)),
  max_age: maybe(fc.oneof(fc.constantFrom('0', '-1', '99999999999999999999'), text)),
  resource: maybe(text),
  request: maybe(text),
  request_uri: maybe(text),
});

function authRequest(query: Record<string, string | undefined>, method: 'GET' | 'POST'): Sent {
  const encoded = formBody(query);
  return method === 'GET'
    ? { method, path: `/auth?${encoded}`, headers: {} }
    : { method, path: '/auth', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: encoded };
}

const options = (offset: number): fc.Parameters<unknown> => ({ seed: SEED + offset, numRuns: RUNS, endOnFailure: true });

describe('protocol endpoints hold under arbitrary input (fast-check)', () => {
  test('/token', async () => {
    await fc.assert(fc.asyncProperty(post('/token', tokenFields, plausibleToken), check), options(1));
    expectReached(200, 400, 401);
  }, 120_000);

  test('/token/introspection and /token/revocation', async () => {
    const path = fc.constantFrom('/token/introspection', '/token/revocation');
    await fc.assert(
      fc.asyncProperty(
        path.chain((p) => post(p, tokenIntrospectionFields, plausibleIntrospection)),
        check,
      ),
      options(2),
    );
    expectReached(200, 400, 401);
  }, 120_000);

  test('/auth by GET and POST', async () => {
    await fc.assert(
      fc.asyncProperty(authQuery, fc.constantFrom('GET' as const, 'POST' as const), (query, method) => check(authRequest(query, method))),
      options(3),
    );
    expectReached(303, 400);
  }, 120_000);

  test('the login forms of a real interaction, with and without its cookies and CSRF token', async () => {
    // real interactions to aim at: each case picks one, and a step's form
    const interactions = await Promise.all(
      [1, 2, 3].map(async () => {
        const login = await openLogin(server.url, codePartner.client_id, REDIRECT);
        const path = `/interaction/${login.uid}`;
        const { csrf } = login;
        const cookie = [...login.browser.jar].map(([k, v]) => `${k}=${v}`).join('; ');
        return { path, csrf, cookie };
      }),
    );
    const step = fc.constantFrom('login', 'otp', 'recovery', 'enrol', 'continue', 'consent', '', '..', '%2e%2e');
    const fields = fc.record({
      csrf: maybe(fc.oneof(fc.constant('real'), text)),
      username: maybe(fc.oneof(fc.constant('fuzz.person'), text)),
      password: maybe(fc.oneof(fc.constant(PASSWORD), text)),
      code: maybe(fc.oneof(fc.stringMatching(/^\d{6}$/), text)),
      recovery_code: maybe(text),
      enrolment_code: maybe(text),
      decision: maybe(fc.oneof(fc.constantFrom('allow', 'deny'), text)),
    });
    const which = fc.nat({ max: interactions.length - 1 });
    const anything = fc.tuple(which, fc.boolean(), step, fields, contentType, fc.oneof(fc.constant(undefined), text));
    // the form as the page sends it, with the person's values arbitrary
    const plausible = fc.tuple(
      which,
      fc.constant(true),
      fc.constantFrom('login', 'otp', 'consent'),
      fc.record({
        csrf: fc.oneof({ weight: 3, arbitrary: fc.constant('real') }, { weight: 1, arbitrary: text }),
        username: fc.oneof(fc.constant('fuzz.person'), text),
        password: fc.oneof(text, fc.constant(PASSWORD)),
        code: maybe(text),
        decision: maybe(text),
      }),
      fc.constant('application/x-www-form-urlencoded'),
      fc.constant(undefined),
    );
    await fc.assert(
      fc.asyncProperty(fc.oneof(anything, plausible), async ([which, withCookie, name, sent, type, uid]) => {
        const interaction = interactions[which];
        const form = { ...sent, csrf: sent.csrf === 'real' ? interaction.csrf : sent.csrf };
        const path = uid === undefined ? `${interaction.path}/${name}` : `/interaction/${encode(uid)}/${name}`;
        await check({
          method: 'POST',
          path,
          headers: { ...(type ? { 'content-type': type } : {}), ...(withCookie ? { cookie: interaction.cookie } : {}) },
          body: formBody(form),
        });
      }),
      options(4),
    );
    // refused by the CSRF check, and past it: a wrong password or code, a step not yet due
    expectReached(403, 401, 409);
  }, 180_000);

  test('pages and other routes by GET', async () => {
    const path = fc.oneof(
      fc.constantFrom(
        '/',
        '/.well-known/openid-configuration',
        '/jwks',
        '/me',
        '/session/end',
        '/interaction/x',
        '/assets/portcullis.css',
        '/healthz',
        '/readyz',
      ),
      text.map((t) => `/${encode(t)}`),
      text.map((t) => `/interaction/${encode(t)}`),
      text.map((t) => `/interaction/${encode(t)}/recovery`),
    );
    await fc.assert(
      fc.asyncProperty(path, authorization, (p, auth) => check({ method: 'GET', path: p, headers: authHeader(auth) })),
      options(5),
    );
    expectReached(200, 400, 404);
  }, 120_000);
});
