import { createHash, randomBytes } from 'node:crypto';
import { createDb, type Db } from '../../src/db/knex.ts';
import { migrate } from '../../src/db/migrate.ts';
import { loadCookieKeys } from '../../src/keys/cookie-key.service.ts';
import { createKeyring } from '../../src/keys/kek.ts';
import { cli, createCodePartner, freshDatabaseUrl, instanceEnv, tempDir, TEST_PG_URL } from '../support/harness.ts';
import { cookieAgent } from '../support/agent.ts';
import { basic, csrfOf, form, type Partner } from '../support/http.ts';
import { startInProcess, testClock, type InProcessServer } from '../support/in-process.ts';
import { codeFor, createUser, secretOf } from '../support/login.ts';
import { startInstance, type Instance } from '../support/process.ts';
import { introspect, issueToken, revoke } from '../support/scale.ts';
import { settleServers } from '../support/settle.ts';

// Three stateless instances on one database, as behind a load balancer: they share nothing but
// the database and the KEK. Run on PostgreSQL with PORTCULLIS_TEST_PG (what `.ci/run` does);
// without it on one SQLite file. Two run in this process (on a clock the test moves); the third
// is a process of its own, for the kill -9.
const ENGINE = TEST_PG_URL ? 'postgres' : 'sqlite';
const ISSUER = 'http://login.bank.test'; // one public name for the three, as behind a load balancer
const PASSWORD = 'correct horse battery staple';
const REDIRECT = 'http://127.0.0.1:9/callback';
const KEK = 'A'.repeat(43);

let env: Record<string, string>;
let instances: Array<InProcessServer | Instance>;
let victim: Instance;
let partner: Partner;
const clock = testClock();

beforeAll(async () => {
  const dir = tempDir();
  env = instanceEnv(dir, freshDatabaseUrl(dir), { ISSUER, LOG_LEVEL: 'warn' });
  // all three start at once on an empty database: migrations, the KEK file, the first signing
  // key and the cookie keys are raced for
  const started = await Promise.allSettled([
    startInProcess(env, { clock }),
    startInProcess(env, { clock }),
    startInstance(env, { timeoutMs: 40_000 }),
  ]);
  instances = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const failed = started.find((result) => result.status === 'rejected');
  if (failed) throw failed.reason; // afterAll stops the ones that did start
  victim = instances[2] as Instance;
  await cli(
    env,
    'resource',
    'create',
    '--uri',
    'https://api.bank.test/payments',
    '--scope',
    'payments:read payments:write',
    '--format',
    'opaque',
    '--default',
  );
  const created = await cli(env, 'partner', 'create', '--name', 'Acme Bank', '--scope', 'payments:read');
  partner = { clientId: created.json.client_id, clientSecret: created.json.client_secret };
}, 90_000);

afterAll(async () => {
  await Promise.all((instances ?? []).map((instance) => instance.stop()));
});

describe(`three instances on one ${ENGINE} database`, () => {
  test('starting together they made one signing key and one set of cookie keys, and publish the same JWKS', async () => {
    const jwks = await Promise.all(urls().map(async (url) => (await fetch(`${url}/jwks`)).text()));
    expect(new Set(jwks).size).toBe(1);
    const db = createDb(env.DATABASE_URL);
    try {
      expect(Number((await db('signing_keys').count({ n: '*' }))[0].n)).toBe(1);
      const secrets = await db('shared_secrets').select('name', 'sealed');
      expect(secrets.map((row) => row.name)).toEqual(['cookie_keys']);
      expect(secrets[0].sealed).toMatch(/^v2\./); // sealed under the KEK, never in clear
    } finally {
      await db.destroy();
    }
  });

  test('an opaque token issued by one introspects at the others; revoked at one, it is inactive at all', async () => {
    const [a, b, c] = urls();
    const token = await issueToken(a, partner);
    expect(token.split('.')).toHaveLength(1); // opaque, not a JWT
    for (const at of [a, b, c]) {
      expect(await introspect(at, partner, token)).toEqual(
        expect.objectContaining({ active: true, client_id: partner.clientId, scope: 'payments:read' }),
      );
    }
    // the API's own credential may introspect tokens for it (at any instance); another partner may not
    const api = await cli(env, 'partner', 'create', '--name', 'Payments API', '--scope', 'payments:read');
    const apiCredential = { clientId: api.json.client_id, clientSecret: api.json.client_secret };
    const other = await cli(env, 'partner', 'create', '--name', 'Other Bank', '--scope', 'payments:read');
    const outsider = { clientId: other.json.client_id, clientSecret: other.json.client_secret };
    expect(await introspect(b, apiCredential, token)).toEqual({ active: false });
    const updated = await cli(
      env,
      'resource',
      'update',
      '--uri',
      'https://api.bank.test/payments',
      '--introspector',
      apiCredential.clientId,
    );
    expect(updated.json).toEqual(expect.objectContaining({ token_format: 'opaque', introspector: apiCredential.clientId }));
    clock.advance(2100); // harmless now: API changes reach every instance through the change feed, not after a 2 s cache
    expect(await introspect(b, apiCredential, token)).toEqual(expect.objectContaining({ active: true, client_id: partner.clientId }));
    expect(await introspect(c, outsider, token)).toEqual({ active: false });
    expect(
      (await cli(env, 'resource', 'create', '--uri', 'https://api.bank.test/x', '--scope', 'x:y', '--introspector', 'nobody')).stderr,
    ).toMatch(/no such partner/);

    expect(await revoke(c, partner, token)).toBe(200);
    // each instance had the token in memory: the revocation reaches them through the change feed
    // (in this process: settled; the process instance: asked until it has heard, bounded by attempts)
    await settleServers(env.DATABASE_URL);
    for (const at of [a, b, c]) {
      let answer = await introspect(at, partner, token);
      for (let attempt = 0; attempt < 100 && answer.active !== false; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        answer = await introspect(at, partner, token);
      }
      expect(answer).toEqual({ active: false });
    }
  });

  test('a login begun on one instance finishes on another; the code is exchanged at a third; refresh and reuse detection hold across them', async () => {
    const app = await createCodePartner(env, REDIRECT);
    const totp = secretOf((await createUser(env, 'ivan', PASSWORD, '--with-totp')).json.totp_uri);
    const browser = roundRobinAgent(urls());
    const verifier = randomBytes(32).toString('base64url');
    const auth = await browser.get(
      `/auth?${new URLSearchParams({
        client_id: app.clientId,
        response_type: 'code',
        redirect_uri: REDIRECT,
        scope: 'openid payments:read',
        code_challenge: createHash('sha256').update(verifier).digest('base64url'),
        code_challenge_method: 'S256',
      })}`,
    );
    expect(auth.status).toBe(303);
    const uid = auth.location.split('/').pop()!;
    const page = await browser.get(auth.location);
    const csrf = csrfOf(page.text);
    expect((await browser.post(`/interaction/${uid}/login`, { csrf, username: 'ivan', password: PASSWORD })).status).toBe(303);
    const afterOtp = await browser.post(`/interaction/${uid}/otp`, { csrf, code: codeFor(totp) });
    expect(afterOtp.status).toBe(303);
    const toConsent = await browser.get(afterOtp.location);
    expect(toConsent.status).toBe(303);
    const consentUid = toConsent.location.split('/').pop()!;
    const consentPage = await browser.get(toConsent.location);
    expect(consentPage.text).toContain('Acme Budgeting');
    const decided = await browser.post(`/interaction/${consentUid}/consent`, { csrf: csrfOf(consentPage.text), decision: 'allow' });
    const back = await browser.get(decided.location);
    expect(back.status).toBe(303);
    const callback = new URL(back.location);
    expect(callback.href.startsWith(REDIRECT)).toBe(true);
    expect(browser.instancesUsed()).toBe(3);

    const [a, b, c] = urls();
    const client = { clientId: app.clientId, clientSecret: app.clientSecret! };
    const exchanged = await tokenCall(c, client, {
      grant_type: 'authorization_code',
      code: callback.searchParams.get('code')!,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
    });
    expect(exchanged.status).toBe(200);
    const refreshed = await tokenCall(a, client, { grant_type: 'refresh_token', refresh_token: exchanged.body.refresh_token });
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.refresh_token).not.toBe(exchanged.body.refresh_token);
    // the used refresh token, presented at another instance, is refused and revokes the grant
    expect((await tokenCall(b, client, { grant_type: 'refresh_token', refresh_token: exchanged.body.refresh_token })).body.error).toBe(
      'invalid_grant',
    );
    expect((await tokenCall(c, client, { grant_type: 'refresh_token', refresh_token: refreshed.body.refresh_token })).body.error).toBe(
      'invalid_grant',
    );
  });

  test('failed logins counted at different instances lock the account at all of them', async () => {
    const app = await createCodePartner(env, REDIRECT, { name: 'Lock Bank' });
    await createUser(env, 'mallory', PASSWORD, '--with-totp');
    const browser = roundRobinAgent(urls());
    const auth = await browser.get(
      `/auth?${new URLSearchParams({
        client_id: app.clientId,
        response_type: 'code',
        redirect_uri: REDIRECT,
        scope: 'openid payments:read',
        code_challenge: createHash('sha256').update('v'.repeat(43)).digest('base64url'),
        code_challenge_method: 'S256',
      })}`,
    );
    const uid = auth.location.split('/').pop()!;
    const csrf = csrfOf((await browser.get(auth.location)).text);
    for (let i = 0; i < 5; i++) {
      expect((await browser.post(`/interaction/${uid}/login`, { csrf, username: 'mallory', password: `wrong ${i}` })).status).toBe(401);
    }
    expect(browser.instancesUsed()).toBe(3);
    // the right password, now, at each instance: refused everywhere
    for (let i = 0; i < 3; i++) {
      expect((await browser.post(`/interaction/${uid}/login`, { csrf, username: 'mallory', password: PASSWORD })).status).toBe(401);
    }
    const listed = (await cli(env, 'user', 'list')).json.find((u: { username: string }) => u.username === 'mallory');
    expect(listed.locked_until).toEqual(expect.any(String));
    // each instance counts what it saw: summed, the eight refusals and the one lockout
    const counted = async (pattern: RegExp) => {
      let total = 0;
      for (const url of urls()) total += Number(pattern.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? 0);
      return total;
    };
    expect(await counted(/^portcullis_login_lockouts_total (\d+)$/m)).toBe(1);
    expect(await counted(/^portcullis_logins_total\{result="failure"\} (\d+)$/m)).toBe(8);
  });

  test('kill -9 of one instance during a request loop: every token a client received stays valid at the survivors', async () => {
    const targets = urls();
    const received: string[] = [];
    let refusedByVictim = 0;
    let refusedBySurvivors = 0;
    let killed = false;
    let afterKill = 0;
    // six clients round the three instances; the victim dies once 60 tokens have come back, and
    // the clients send 120 more requests between them
    const loop = async (worker: number) => {
      for (let i = 0; i < 400; i++) {
        if (killed && afterKill >= 6 * 20) return;
        const target = targets[(worker + i) % targets.length];
        const sentAfterKill = killed;
        try {
          received.push(await issueToken(target, partner));
          if (received.length === 60) {
            victim.child.kill('SIGKILL');
            killed = true;
          }
        } catch {
          if (target === targets[2] && killed) refusedByVictim++;
          else refusedBySurvivors++;
        }
        if (sentAfterKill) afterKill++;
      }
    };
    await Promise.all(Array.from({ length: 6 }, (_, worker) => loop(worker)));
    await new Promise((resolve) =>
      victim.child.exitCode !== null || victim.child.signalCode !== null ? resolve(undefined) : victim.child.once('exit', resolve),
    );
    expect(victim.child.signalCode).toBe('SIGKILL');
    expect(received.length).toBeGreaterThan(60);
    expect(refusedBySurvivors).toBe(0);
    expect(refusedByVictim).toBeGreaterThan(0);

    // every acknowledged token is stored and active at each survivor
    const survivors = targets.slice(0, 2);
    const results = await Promise.all(received.map((token, i) => introspect(survivors[i % 2], partner, token)));
    const inactive = results.filter((result) => result.active !== true);
    expect(inactive).toEqual([]);
    expect(new Set(received).size).toBe(received.length);
  }, 60_000);
});

// Several handles in one process. On SQLite each waiting handle holds one of libuv's four
// threads for up to its busy timeout, so more than three starve the holder of the lock on a
// loaded machine: eight racing *processes* are migrate.race.test.ts's subject.
const HANDLES = ENGINE === 'sqlite' ? 3 : 8;

test(`${HANDLES} handles migrating one empty ${ENGINE} database at once: one history, every table, no error`, async () => {
  const url = freshDatabaseUrl(tempDir());
  const handles: Db[] = Array.from({ length: HANDLES }, () => createDb(url, { poolMax: ENGINE === 'sqlite' ? 1 : 2 }));
  try {
    await Promise.all(handles.map((db) => migrate(db)));
    const names = (await handles[0]('knex_migrations').select('name')).map((row) => row.name);
    expect(names).toEqual([...new Set(names)]);
    expect(names).toContain('20261129030000_scale.ts');
    // and the cookie keys, raced for by all: one row, the same keys everywhere
    const keyring = createKeyring([KEK]);
    const keys = await Promise.all(handles.map((db) => loadCookieKeys(db, keyring)));
    expect(new Set(keys.map((set) => JSON.stringify(set))).size).toBe(1);
  } finally {
    await Promise.all(handles.map((db) => db.destroy()));
  }
});

function urls(): string[] {
  return instances.map((instance) => instance.local);
}

async function tokenCall(base: string, client: Partner, fields: Record<string, string>) {
  const res = await fetch(`${base}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(client.clientId, client.clientSecret) },
    body: form(fields),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

/**
 * A browser behind a round-robin load balancer: each request goes to the next instance. A
 * location on the issuer is sent on to the next instance by its path.
 */
function roundRobinAgent(bases: string[]) {
  const used = new Set<string>();
  let next = 0;
  const agent = cookieAgent(() => {
    const base = bases[next++ % bases.length];
    used.add(base);
    return base;
  });
  const onward = (target: string) => {
    const url = new URL(target, ISSUER);
    return `${url.pathname}${url.search}`;
  };
  const answer = ({ res, text }: { res: Response; text: string }) => ({
    status: res.status,
    location: res.headers.get('location') ?? '',
    text,
  });
  return {
    instancesUsed: () => used.size,
    get: async (path: string) => answer(await agent.get(onward(path))),
    post: async (path: string, fields: Record<string, string>) => answer(await agent.post(onward(path), fields)),
  };
}
