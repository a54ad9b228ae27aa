import http from 'node:http';
import path from 'node:path';
import { cookieAgent } from '../support/agent.ts';
import { cli, createCodePartner, freshDatabaseUrl, seedPartner, tempDir } from '../support/harness.ts';
import { openLoginForm } from '../support/http-login.ts';
import { basic } from '../support/http.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import { codeFor, createUser, secretOf } from '../support/login.ts';

/**
 * Rate limits and the password-hash queue, over real HTTP against servers in this process, on
 * SQLite or (PORTCULLIS_TEST_PG) PostgreSQL. The first server trusts X-Forwarded-For (as behind
 * a proxy) so that each test counts under addresses of its own; the others judge the socket.
 */
const PASSWORD = 'correct horse battery staple';
const WRONG = 'not the password at all';
const REDIRECT = 'http://127.0.0.1:9/callback';

type Server = InProcessServer;
type Answer = { status: number; retryAfter: string | null; contentType: string; text: string };

let dir: string;
let env: Record<string, string>;
let server: Server;
let appClientId: string;
let addressCount = 0;

/** An address no other test has used (TEST-NET-2), sent as the proxy would. */
function nextAddress(): string {
  addressCount += 1;
  return `198.51.${100 + Math.floor(addressCount / 250)}.${addressCount % 250}`;
}

const fromAddress = (address: string) => ({ 'x-forwarded-for': address });

function authorizationUrl(base: string): URL {
  return new URL(
    `${base}/auth?${new URLSearchParams({
      client_id: appClientId,
      response_type: 'code',
      redirect_uri: REDIRECT,
      scope: 'openid payments:read',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
    })}`,
  );
}

/** A browser at a fresh sign-in page; `post` sends the form with these fields (from `address`, if given). */
async function signInPage(base = server.url, address = nextAddress()) {
  const agent = cookieAgent(() => base);
  const form = await openLoginForm(agent, authorizationUrl(base), fromAddress(address));
  const post = async (fields: Record<string, string>, from?: string, action = form.action): Promise<Answer> => {
    const { res, text } = await agent.post(action, { ...form.fields, ...fields }, from ? fromAddress(from) : {});
    return { status: res.status, retryAfter: res.headers.get('retry-after'), contentType: res.headers.get('content-type') ?? '', text };
  };
  return { agent, form, post };
}

function statuses(answers: Answer[]): Record<number, number> {
  const counted: Record<number, number> = {};
  for (const { status } of answers) counted[status] = (counted[status] ?? 0) + 1;
  return counted;
}

/** A readable refusal page: HTML, one h1, a Retry-After in whole seconds, no stack trace. */
function expectRefusalPage(answer: Answer, status: number, text: RegExp) {
  expect(answer.status).toBe(status);
  expect(answer.contentType).toMatch(/^text\/html/);
  expect(answer.retryAfter).toMatch(/^[1-9]\d*$/);
  expect(Number(answer.retryAfter)).toBeLessThanOrEqual(600);
  expect(answer.text.match(/<h1>/g)).toHaveLength(1);
  expect(answer.text).toMatch(text);
  expect(answer.text).not.toMatch(/at .*\.(ts|js):\d+|Error:|stack/i);
}

async function oauthPost(
  pathname: string,
  credentials: { clientId: string; clientSecret: string },
  body: Record<string, string>,
  address: string,
): Promise<Answer & { json: any }> {
  const res = await fetch(`${server.url}${pathname}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: basic(credentials.clientId, credentials.clientSecret),
      ...fromAddress(address),
    },
    body: new URLSearchParams(body).toString(),
  });
  const text = await res.text();
  return {
    status: res.status,
    retryAfter: res.headers.get('retry-after'),
    contentType: res.headers.get('content-type') ?? '',
    text,
    json: JSON.parse(text),
  };
}

const token = (credentials: { clientId: string; clientSecret: string }, address: string) =>
  oauthPost('/token', credentials, { grant_type: 'client_credentials', scope: 'payments:read' }, address);

function expectOAuthRefusal(answer: Answer & { json: any }, description: RegExp) {
  expect(answer.status).toBe(429);
  expect(answer.contentType).toMatch(/^application\/json/);
  expect(answer.retryAfter).toMatch(/^[1-9]\d*$/);
  expect(answer.json).toEqual({ error: 'slow_down', error_description: expect.stringMatching(description) });
}

async function partner(name: string) {
  const created = await cli(env, 'partner', 'create', '--name', name, '--scope', 'payments:read');
  if (created.code !== 0) throw new Error(created.stderr);
  return { clientId: created.json.client_id as string, clientSecret: created.json.client_secret as string };
}

/**
 * Partners made one after another: in-process CLI commands each open a SQLite connection, and
 * node-sqlite3 waits out a lock on libuv's four threads; more than three transactions at once
 * in one process leave none to commit on (separate `portcullis` processes do not share threads).
 */
async function partners(...names: string[]) {
  const made = [];
  for (const name of names) made.push(await partner(name));
  return made;
}

async function userWithTotp(username: string): Promise<string> {
  return secretOf((await createUser(env, username, PASSWORD, '--with-totp')).json.totp_uri);
}

/** A code the authenticator does not show now (nor one step either side). */
function wrongCode(secret: string): string {
  const valid = new Set([-1, 0, 1].map((steps) => codeFor(secret, steps)));
  for (let n = 0; ; n += 1) {
    const code = String(n).padStart(6, '0');
    if (!valid.has(code)) return code;
  }
}

/** An API and the partner app whose sign-in pages the tests open. */
async function registerApp(on: Record<string, string>) {
  const seeded = await seedPartner(on);
  const app = await createCodePartner(on, REDIRECT);
  appClientId = app.clientId;
  return seeded;
}

beforeAll(async () => {
  dir = tempDir();
  env = { DATABASE_URL: freshDatabaseUrl(dir), KEYS_DIR: path.join(dir, 'keys') };
  server = await startInProcess({
    ...env,
    TRUST_PROXY: '1',
    RATE_LIMIT_AUTH_PER_IP: '3/10m',
    RATE_LIMIT_LOGIN_PER_IP: '5/10m',
    RATE_LIMIT_LOGIN_PER_USERNAME: '5/10m',
    RATE_LIMIT_SECOND_FACTOR_PER_ACCOUNT: '5/10m',
    RATE_LIMIT_TOKEN_PER_CLIENT: '8/10m',
    RATE_LIMIT_TOKEN_PER_IP: '5/10m',
    RATE_LIMIT_INTROSPECTION_PER_CLIENT: '3/10m',
    RATE_LIMIT_INTROSPECTION_PER_IP: '4/10m',
  });
  await registerApp(env);
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

describe('sign-in limits', () => {
  test('per address: of 30 parallel password posts with a limit of 5, exactly 5 reach the password check; the rest get a 429 page; another address is unaffected; a forged first X-Forwarded-For entry changes nothing', async () => {
    const address = nextAddress();
    const page = await signInPage(server.url, address);
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => page.post({ username: `ghost${i}`, password: WRONG }, address)));
    expect(statuses(answers)).toEqual({ 401: 5, 429: 25 });
    for (const answer of answers.filter((a) => a.status === 429))
      expectRefusalPage(answer, 429, /Too many sign-in attempts have come from your network/);

    expect((await page.post({ username: 'ghost', password: WRONG }, nextAddress())).status).toBe(401);
    // the proxy appends what it saw: the client's own entry comes first and is not the one counted
    expect((await page.post({ username: 'ghost', password: WRONG }, `203.0.113.9, ${address}`)).status).toBe(429);
  });

  test('per username: 30 parallel posts for one username from 30 addresses, limit 5: exactly 5 reach the check; another username is unaffected', async () => {
    await createUser(env, 'ivan', PASSWORD);
    const page = await signInPage();
    const answers = await Promise.all(Array.from({ length: 30 }, () => page.post({ username: 'Ivan ', password: WRONG }, nextAddress())));
    expect(statuses(answers)[429]).toBe(25);
    expect(answers.filter((a) => a.status !== 429)).toHaveLength(5);
    expectRefusalPage(
      answers.find((a) => a.status === 429)!,
      429,
      /for this username/,
    );
    expect((await page.post({ username: 'olga', password: WRONG }, nextAddress())).status).toBe(401);
  });

  test('per username: a right password gives its count back, so a person signing in often is never held up', async () => {
    await userWithTotp('rita');
    for (let i = 0; i < 6; i += 1) {
      expect((await (await signInPage()).post({ username: 'rita', password: PASSWORD }, nextAddress())).status).toBe(303);
    }
    const page = await signInPage();
    const wrong = [];
    for (let i = 0; i < 6; i += 1) wrong.push((await page.post({ username: 'rita', password: WRONG }, nextAddress())).status);
    expect(wrong.slice(0, 5).every((status) => status !== 429)).toBe(true);
    expect(wrong[5]).toBe(429);
  });

  test('per account: of 30 parallel wrong codes with a limit of 5, exactly 5 reach the second-factor check; another account is unaffected', async () => {
    const secret = await userWithTotp('tom');
    const page = await signInPage();
    expect((await page.post({ username: 'tom', password: PASSWORD }, nextAddress())).status).toBe(303);
    const otp = page.form.action.replace(/\/login$/, '/otp');
    const answers = await Promise.all(Array.from({ length: 30 }, () => page.post({ code: wrongCode(secret) }, nextAddress(), otp)));
    expect(statuses(answers)[429]).toBe(25);
    expect(answers.filter((a) => a.status !== 429)).toHaveLength(5);
    expectRefusalPage(
      answers.find((a) => a.status === 429)!,
      429,
      /Too many codes have been tried for this account/,
    );

    const other = await userWithTotp('una');
    const second = await signInPage();
    expect((await second.post({ username: 'una', password: PASSWORD }, nextAddress())).status).toBe(303);
    expect((await second.post({ code: wrongCode(other) }, nextAddress(), second.form.action.replace(/\/login$/, '/otp'))).status).toBe(401);
  });

  test('/auth per address: past the limit a readable 429 page, before any work', async () => {
    const address = nextAddress();
    const url = authorizationUrl(server.url);
    const get = () => fetch(url, { redirect: 'manual', headers: fromAddress(address) });
    for (let i = 0; i < 3; i += 1) expect((await get()).status).toBe(303);
    const res = await get();
    expectRefusalPage(
      {
        status: res.status,
        retryAfter: res.headers.get('retry-after'),
        contentType: res.headers.get('content-type') ?? '',
        text: await res.text(),
      },
      429,
      /Too many sign-in requests/,
    );
    expect((await fetch(url, { redirect: 'manual', headers: fromAddress(nextAddress()) })).status).toBe(303);
  });
});

describe('token endpoint limits', () => {
  test('per partner: of 30 parallel requests from 30 addresses with a limit of 8, exactly 8 get a token, the rest 429 slow_down JSON; another partner is unaffected', async () => {
    const busy = await partner('Busy Bank');
    const answers = await Promise.all(Array.from({ length: 30 }, () => token(busy, nextAddress())));
    expect(statuses(answers)).toEqual({ 200: 8, 429: 22 });
    for (const answer of answers.filter((a) => a.status === 429)) expectOAuthRefusal(answer, /too many requests for this client/);
    expect((await token(await partner('Quiet Bank'), nextAddress())).status).toBe(200);
  });

  test('per partner: requests naming a partner without its secret do not use up its allowance', async () => {
    const victim = await partner('Victim Bank');
    // each holds a count while it is in flight and gives it back with its 401
    const forged = await Promise.all(Array.from({ length: 12 }, () => token({ ...victim, clientSecret: 'guessed' }, nextAddress())));
    expect(forged.every((answer) => answer.status === 401 || answer.status === 429)).toBe(true);
    expect(statuses(forged)[401]).toBeGreaterThanOrEqual(8);
    const own = await Promise.all(Array.from({ length: 8 }, () => token(victim, nextAddress())));
    expect(statuses(own)).toEqual({ 200: 8 });
    expect((await token(victim, nextAddress())).status).toBe(429);
  });

  test('per partner: a partner sending its secret in the body (client_secret_post) meets the same limit', async () => {
    const poster = await partner('Posting Bank');
    const post = (address: string) =>
      fetch(`${server.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...fromAddress(address) },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          scope: 'payments:read',
          client_id: poster.clientId,
          client_secret: poster.clientSecret,
        }).toString(),
      });
    const answers = await Promise.all(Array.from({ length: 30 }, () => post(nextAddress())));
    expect(statuses(answers.map((res) => ({ status: res.status }) as Answer))).toEqual({ 200: 8, 429: 22 });
    const refused = answers.find((res) => res.status === 429)!;
    expect(refused.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
    expect(await refused.json()).toEqual({ error: 'slow_down', error_description: expect.stringMatching(/for this client/) });
    expect((await token(poster, nextAddress())).status).toBe(429); // and by HTTP Basic too: one count per partner
  });

  test('per address: of 30 parallel requests from one address with a limit of 5, exactly 5 are served; another address is unaffected', async () => {
    const address = nextAddress();
    const made = await partners(...['A', 'B', 'C', 'D', 'E', 'F'].map((letter) => `Bank ${letter}`));
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => token(made[i % made.length], address)));
    expect(statuses(answers)).toEqual({ 200: 5, 429: 25 });
    expectOAuthRefusal(
      answers.find((a) => a.status === 429)!,
      /too many requests from this address/,
    );
    expect((await token(made[0], nextAddress())).status).toBe(200);
  });

  test('refusals show in /metrics by limit, and under the route they were for', async () => {
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/portcullis_throttled_total\{limit="token_client"\} [1-9]/);
    expect(metrics).toMatch(/portcullis_throttled_total\{limit="login_ip"\} [1-9]/);
    expect(metrics).toMatch(/portcullis_http_requests_total\{route="token",method="POST",status="429"\} [1-9]/);
    expect(metrics).toMatch(/portcullis_queue_tasks\{queue="password",state="waiting"\} 0/);
  });

  test('introspection, per partner (3) and per address (4)', async () => {
    const resourceServer = await partner('Introspecting API');
    const ask = (credentials: { clientId: string; clientSecret: string }, address: string) =>
      oauthPost('/token/introspection', credentials, { token: 'no-such-token' }, address);
    const byPartner = await Promise.all(Array.from({ length: 10 }, () => ask(resourceServer, nextAddress())));
    expect(statuses(byPartner)).toEqual({ 200: 3, 429: 7 });
    expectOAuthRefusal(
      byPartner.find((a) => a.status === 429)!,
      /for this client/,
    );

    const address = nextAddress();
    const others = await partners(...['G', 'H', 'I', 'J'].map((letter) => `Bank ${letter}`));
    const byAddress = await Promise.all(Array.from({ length: 10 }, (_, i) => ask(others[i % others.length], address)));
    expect(statuses(byAddress)).toEqual({ 200: 4, 429: 6 });
    expectOAuthRefusal(
      byAddress.find((a) => a.status === 429)!,
      /from this address/,
    );
  });
});

/** A POST from a chosen loopback address (the socket's, not a header): 127.0.0.2 is another client. */
function postFrom(localAddress: string, url: string, fields: Record<string, string>, cookie: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const body = new URLSearchParams(fields).toString();
    const request = http.request(
      url,
      {
        method: 'POST',
        localAddress,
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body), cookie },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            retryAfter: res.headers['retry-after'] ?? null,
            contentType: res.headers['content-type'] ?? '',
            text,
          }),
        );
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

describe('across instances, by socket address', () => {
  let pair: Server[] = [];
  let sharedEnv: Record<string, string>;
  let seeded: { clientId: string; clientSecret: string };

  afterAll(async () => {
    await Promise.all(pair.map((instance) => instance.stop()));
  });

  test('two instances on one database share the count: 30 posts spread over both, limit 5 → exactly 5 checked; 127.0.0.2 is another address', async () => {
    const shared = tempDir();
    sharedEnv = {
      DATABASE_URL: freshDatabaseUrl(shared),
      KEYS_DIR: path.join(shared, 'keys'),
      RATE_LIMIT_LOGIN_PER_IP: '5/10m',
      RATE_LIMIT_ENDPOINT_STORE: 'database',
      RATE_LIMIT_TOKEN_PER_CLIENT: '5/10m',
    };
    pair = [await startInProcess(sharedEnv), await startInProcess(sharedEnv)];
    seeded = await registerApp(sharedEnv);
    const page = await signInPage(pair[0].url);
    const cookie = [...page.agent.jar].map(([name, value]) => `${name}=${value}`).join('; ');
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        postFrom(
          '127.0.0.1',
          `${pair[i % 2].url}${page.form.action}`,
          { ...page.form.fields, username: `ghost${i}`, password: WRONG },
          cookie,
        ),
      ),
    );
    expect(statuses(answers)).toEqual({ 401: 5, 429: 25 });
    const elsewhere = await postFrom(
      '127.0.0.2',
      `${pair[1].url}${page.form.action}`,
      { ...page.form.fields, username: 'ghost', password: WRONG },
      cookie,
    );
    expect(elsewhere.status).toBe(401);
  });

  test('RATE_LIMIT_ENDPOINT_STORE=database: the partner limit holds across both instances, and forged requests give their count back', async () => {
    const tokenAt = (base: string, credentials: { clientId: string; clientSecret: string }) =>
      fetch(`${base}/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: basic(credentials.clientId, credentials.clientSecret),
        },
        body: 'grant_type=client_credentials&scope=payments%3Aread',
      });
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => tokenAt(pair[i % 2].url, seeded)));
    expect(statuses(answers.map((res) => ({ status: res.status }) as Answer))).toEqual({ 200: 5, 429: 25 });

    const created = await cli(sharedEnv, 'partner', 'create', '--name', 'Victim Bank', '--scope', 'payments:read');
    const victim = { clientId: created.json.client_id as string, clientSecret: created.json.client_secret as string };
    const forged = await Promise.all(
      Array.from({ length: 12 }, (_, i) => tokenAt(pair[i % 2].url, { ...victim, clientSecret: 'guessed' })),
    );
    expect(forged.every((res) => res.status === 401 || res.status === 429)).toBe(true);
    const own = await Promise.all(Array.from({ length: 5 }, (_, i) => tokenAt(pair[i % 2].url, victim)));
    expect(own.map((res) => res.status)).toEqual([200, 200, 200, 200, 200]);
  });
});

describe('password-hash queue', () => {
  let busy: Server | undefined;

  afterAll(async () => {
    await busy?.stop();
  });

  test('with one hash at a time and no room to wait, parallel posts past it get a 503 page with Retry-After; every post gets an answer', async () => {
    const own = tempDir();
    const ownEnv = { DATABASE_URL: freshDatabaseUrl(own), KEYS_DIR: path.join(own, 'keys') };
    busy = await startInProcess({
      ...ownEnv,
      HASH_CONCURRENCY: '1',
      HASH_QUEUE_MAX: '0',
      RATE_LIMIT_LOGIN_PER_IP: 'off',
      RATE_LIMIT_LOGIN_PER_USERNAME: 'off',
    });
    await registerApp(ownEnv);
    const page = await signInPage(busy.url);
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => page.post({ username: `ghost${i}`, password: WRONG })));
    const counted = statuses(answers);
    expect(counted[401]).toBeGreaterThanOrEqual(1);
    expect(counted[503]).toBeGreaterThanOrEqual(1);
    expect(counted[401] + counted[503]).toBe(30);
    expectRefusalPage(
      answers.find((a) => a.status === 503)!,
      503,
      /Too many people are signing in at this moment/,
    );
  });
});
