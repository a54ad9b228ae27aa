import { cookieAgent } from '../support/agent.ts';
import { consoleSignIn, csrfOf } from '../support/console.ts';
import { cli, freshDatabaseUrl, instanceEnv, tempDir } from '../support/harness.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import { codeFor, createUser, secretOf } from '../support/login.ts';
import { personTokens, registerApp, tokenCall } from '../support/person-flow.ts';
import { UNLOCKED } from '../../src/accounts/lockout.policy.ts';
import { insertUser } from '../../src/accounts/user.store.ts';

// The admin console's People, Grants and Audit log pages over plain HTTP, as a browser posts its
// forms (the pages themselves are driven in Chromium by test/e2e/admin-people.test.ts).

const ENGINE = process.env.PORTCULLIS_TEST_PG ? 'postgres' : 'sqlite';
const PASSWORD = 'correct horse battery staple 42';
const API = 'https://api.bank.test/payments';
let server: InProcessServer;
let env: Record<string, string>;
let admin: ReturnType<typeof cookieAgent>;
let csrf: string;
let rootId: string;

/** Every href of a page (entities undone), in order. */
const hrefs = (html: string) => [...html.matchAll(/href="([^"]+)"/g)].map((m) => m[1].replace(/&amp;/g, '&').replace(/&#39;/g, "'"));
const nextPage = (html: string) => /<a href="([^"]+)" rel="next">/.exec(html)?.[1].replace(/&amp;/g, '&');
/** The usernames in the people table, in order. */
const listedPeople = (html: string) =>
  [...html.matchAll(/<th scope="row"><a href="\/admin\/people\/[^"]+">([^<]+)<\/a>/g)].map((m) => m[1]);
const auditRows = async (action: string) => (await server.db('audit_log').where({ action }).count({ n: '*' }))[0].n;

function expectReadable(answer: { res: Response; text: string }, status: number) {
  expect(answer.res.status).toBe(status);
  expect(answer.res.headers.get('content-type')).toMatch(/text\/html/);
  expect(answer.text).toContain('class="alert"');
  expect(answer.text).not.toMatch(/\n\s+at .+\.ts:\d+/); // no stack
}

beforeAll(async () => {
  const dir = tempDir();
  env = instanceEnv(dir, freshDatabaseUrl(dir), { LOG_LEVEL: 'warn' });
  server = await startInProcess(env);
  const created = await createUser(env, 'root', PASSWORD, '--with-totp', '--admin');
  rootId = created.json.id;
  const secret = secretOf(created.json.totp_uri);
  const signedIn = await consoleSignIn(server.url, '/admin', { username: 'root', password: PASSWORD, code: () => codeFor(secret) });
  admin = signedIn.agent;
  csrf = csrfOf(signedIn.page.text);
  await cli(env, 'resource', 'create', '--uri', API, '--scope', 'payments:read payments:write', '--format', 'opaque', '--default');
});

afterAll(async () => {
  await server?.stop();
});

test(`people page by page: 120 people, 50 a page, no duplicates, no gaps (${ENGINE})`, async () => {
  const now = Date.now();
  const names = Array.from({ length: 120 }, (_, i) => `bulk-${String(i).padStart(3, '0')}`);
  for (const [i, username] of names.entries())
    await insertUser(server.db, {
      id: `usr_bulk${String(i).padStart(3, '0')}`,
      username,
      passwordHash: 'not-a-hash',
      totpSecret: null,
      totpLastStep: null,
      isAdmin: false,
      status: 'active',
      lock: i === 7 ? { ...UNLOCKED, lockedUntil: now + 3_600_000 } : UNLOCKED,
      enrolmentCodeHash: null,
      enrolmentCodeExpiresAt: null,
      createdAt: now,
      updatedAt: now,
    });
  const seen: string[] = [];
  const sizes: number[] = [];
  let path: string | undefined = '/admin/people?search=bulk-';
  while (path) {
    const page = await admin.get(path);
    expect(page.res.status).toBe(200);
    sizes.push(listedPeople(page.text).length);
    seen.push(...listedPeople(page.text));
    path = nextPage(page.text);
  }
  expect(sizes).toEqual([50, 50, 20]);
  expect(seen).toEqual(names);
  // the locked one says so, and unlocking is one form away
  const locked = await admin.get('/admin/people/usr_bulk007');
  expect(locked.text).toContain('yes, until');
  const unlocked = await admin.post('/admin/people/usr_bulk007/unlock', { csrf });
  expect(unlocked.res.status).toBe(303);
  expect((await admin.get(unlocked.res.headers.get('location')!)).text).toContain('Unlocked: the person may sign in again.');
  expect(
    await server
      .db('audit_log')
      .where({ action: 'user.unlock', target: 'usr_bulk007', actor: `person:${rootId}` })
      .first(),
  ).toBeDefined();
});

test(`create a person: the enrolment code once; bad input gives the form again (${ENGINE})`, async () => {
  const created = await admin.post('/admin/people', { csrf, username: 'Casey', password: PASSWORD, admin: 'yes' });
  expect(created.res.status).toBe(201);
  const code = /<code id="enrolment-code">([^<]+)<\/code>/.exec(created.text)![1];
  expect(code.length).toBeGreaterThan(8);
  const personPath = hrefs(created.text).find((href) => /^\/admin\/people\/usr_/.test(href))!;
  const page = await admin.get(personPath);
  expect(page.text).toContain('<h1>casey</h1>');
  expect(page.text).toContain('not enrolled; enrolment code valid until');
  expect(page.text).not.toContain(code);

  const bad = await admin.post('/admin/people', { csrf, username: 'no spaces please', password: PASSWORD });
  expectReadable(bad, 400);
  expect(bad.text).toContain('The username takes 1 to 64');
  expect(bad.text).toContain('value="no spaces please"');
  expectReadable(await admin.post('/admin/people', { csrf, username: 'casey', password: PASSWORD }), 400);
  expectReadable(await admin.post('/admin/people', { csrf, username: 'weak', password: 'short' }), 400);
  expectReadable(await admin.post('/admin/people', { csrf, username: 'x'.repeat(10_000), password: PASSWORD }), 400);
  expect((await admin.post('/admin/people', { csrf, username: 'huge', password: 'p'.repeat(20_000) })).res.status).toBe(413);
});

test(`reset second factor and disable: a confirmation page, a new code shown once, never yourself (${ENGINE})`, async () => {
  const made = await createUser(env, 'dale', PASSWORD, '--with-totp');
  const path = `/admin/people/${made.json.id as string}`;
  const confirm = await admin.get(`${path}/reset-second-factor`);
  expect(confirm.text).toContain('action="' + path + '/reset-second-factor"');
  const reset = await admin.post(`${path}/reset-second-factor`, { csrf });
  expect(reset.res.status).toBe(200);
  expect(reset.text).toMatch(/<code id="enrolment-code">[^<]+<\/code>/);
  expect((await admin.get(path)).text).toContain('not enrolled; enrolment code valid until');

  expect((await admin.get(`${path}/disable`)).text).toContain(`Disable dale`);
  const disabled = await admin.post(`${path}/disable`, { csrf });
  expect(disabled.res.status).toBe(303);
  expect((await admin.get(disabled.res.headers.get('location')!)).text).toMatch(/<dt>Status<\/dt><dd>disabled/);
  expect((await admin.post(`${path}/enable`, { csrf })).res.status).toBe(303);
  expect((await admin.get(path)).text).toMatch(/<dt>Status<\/dt><dd>active/);

  // yourself: refused on the confirmation page and on the post, and nothing happens
  expectReadable(await admin.get(`/admin/people/${rootId}/disable`), 409);
  const self = await admin.post(`/admin/people/${rootId}/disable`, { csrf });
  expectReadable(self, 409);
  expect(self.text).toContain('You cannot disable yourself');
  expect((await admin.get('/admin/people?search=root')).res.status).toBe(200);
  expect(await server.db('audit_log').where({ action: 'user.disable', target: rootId }).first()).toBeUndefined();
});

test(`hostile input answers a readable 4xx, never a 500 (${ENGINE})`, async () => {
  const cases: Array<[string, number]> = [
    ['/admin/people/usr_nobody', 404],
    [`/admin/people/${encodeURIComponent('<script>x</script>')}`, 404],
    [`/admin/people/${'a'.repeat(3000)}`, 404],
    ['/admin/people?cursor=garbage', 400],
    [`/admin/people?search=${'x'.repeat(300)}`, 400],
    [`/admin/people?search=${'x'.repeat(5000)}`, 400],
    ['/admin/people?search=a&search=b', 400],
    ['/admin/grants?person=nobody-here', 404],
    ['/admin/grants?partner=ptn_nobody', 404],
    ['/admin/grants?cursor=%E2%80%AE', 400],
    ['/admin/audit?since=yesterday', 400],
    ['/admin/audit?until=2026-13-45T99:00:00Z', 400],
    [`/admin/audit?since=${'9'.repeat(400)}`, 400],
    ['/admin/audit?cursor=WzEsMl0', 400],
  ];
  for (const [path, status] of cases) {
    const answer = await admin.get(path);
    expect(`${path.slice(0, 60)} → ${String(answer.res.status)}`).toBe(`${path.slice(0, 60)} → ${String(status)}`);
    expectReadable(answer, status);
  }
  expect((await admin.get('/admin/audit?since=yesterday')).text).toContain('since');
  expectReadable(await admin.post('/admin/grants/nope/revoke', { csrf }), 404);
  expectReadable(await admin.post('/admin/people/usr_nobody/unlock', { csrf }), 404);
  const notForm = await admin.get('/admin/people');
  expect(notForm.res.status).toBe(200);
});

test(`every form is refused without its CSRF token (${ENGINE})`, async () => {
  const made = await createUser(env, 'erin', PASSWORD, '--with-totp');
  const id = made.json.id as string;
  const routes = [
    '/admin/people',
    `/admin/people/${id}/unlock`,
    `/admin/people/${id}/enable`,
    `/admin/people/${id}/reset-second-factor`,
    `/admin/people/${id}/disable`,
    '/admin/grants/some-grant/revoke',
    '/admin/audit/verify',
  ];
  const before = Number((await server.db('audit_log').count({ n: '*' }))[0].n);
  for (const route of routes) {
    for (const fields of [{}, { csrf: 'forged' }] as Array<Record<string, string>>) {
      const answer = await admin.post(route, { ...fields, username: 'mallory', password: PASSWORD });
      expect(`${route} ${String(answer.res.status)}`).toBe(`${route} 403`);
      expect(answer.text).toContain('Form refused');
    }
    const crossSite = await admin.post(route, { csrf }, { origin: 'https://evil.test' });
    expect(`${route} ${String(crossSite.res.status)}`).toBe(`${route} 403`);
  }
  expect(Number((await server.db('audit_log').count({ n: '*' }))[0].n)).toBe(before);
  // Chromium says `Origin: null` under Referrer-Policy: no-referrer: the token decides
  expect((await admin.post(`/admin/people/${id}/unlock`, { csrf: 'forged' }, { origin: 'null' })).res.status).toBe(403);
  expect((await admin.post(`/admin/people/${id}/unlock`, { csrf }, { origin: 'null' })).res.status).toBe(303);
  // without a session at all: a page, not the form's effect
  expect((await cookieAgent(() => server.url).post('/admin/people', { csrf })).res.status).toBe(401);
});

test(`grants: listed in words, filtered; 10 revokes at once revoke once, and the refresh token dies (${ENGINE})`, async () => {
  const app = await registerApp(env, { name: 'Granted Budgeting' });
  const person = await personTokens(server.url, env, app);
  const other = await personTokens(server.url, env, app);
  const listed = await admin.get(`/admin/grants?person=${person.username}`);
  expect(listed.res.status).toBe(200);
  expect(listed.text).toContain('Granted Budgeting');
  expect(listed.text).toContain(`>${person.username}</a>`);
  expect(listed.text).not.toContain(`>${other.username}</a>`);
  expect(listed.text).toContain('(payments:read)');
  expect(listed.text).toMatch(/<time datetime="\d{4}-[^"]+">/);
  expect(listed.text).not.toContain('not known'); // last used: the tokens it issued say when
  const byPartner = await admin.get(`/admin/grants?partner=${app.clientId}`);
  expect(byPartner.text).toContain(`>${person.username}</a>`);
  expect(byPartner.text).toContain(`>${other.username}</a>`);
  // the person's page lists it too
  expect((await admin.get(`/admin/people/${person.accountId}`)).text).toContain('Granted Budgeting');

  const action = /action="(\/admin\/grants\/[^"]+\/revoke)"/.exec(listed.text)![1];
  const answers = await Promise.all(Array.from({ length: 10 }, () => admin.post(action, { csrf, back: '/admin/grants' })));
  const statuses = answers.map((answer) => answer.res.status).sort();
  expect(statuses.filter((status) => status === 303)).toHaveLength(1);
  expect(statuses.every((status) => status === 303 || status === 404)).toBe(true);
  for (const refused of answers.filter((answer) => answer.res.status === 404)) expectReadable(refused, 404);
  expect(answers.find((answer) => answer.res.status === 303)!.res.headers.get('location')).toBe('/admin/grants?done=revoked');
  const grantId = decodeURIComponent(action.split('/')[3]);
  expect(Number(await auditRows('consent.revoke'))).toBe(1);
  expect(
    await server
      .db('audit_log')
      .where({ action: 'consent.revoke', target: grantId, actor: `person:${rootId}` })
      .first(),
  ).toBeDefined();

  const refreshed = await tokenCall(server.url, app, { grant_type: 'refresh_token', refresh_token: person.refresh_token });
  expect(refreshed.body.error).toBe('invalid_grant');
  expect((await tokenCall(server.url, app, { grant_type: 'refresh_token', refresh_token: other.refresh_token })).status).toBe(200);
  expect((await admin.get(`/admin/grants?person=${person.username}`)).text).toContain('No grants match this filter');
});

test(`audit log: filters by action, actor, target and time, newest first, paged; the chain checked on demand (${ENGINE})`, async () => {
  const rows = (html: string) =>
    [...html.matchAll(/<th scope="row">(\d+)<\/th>[\s\S]*?<td><code>([^<]+)<\/code><\/td>/g)].map((m) => ({
      seq: Number(m[1]),
      action: m[2],
    }));
  const creates = await admin.get('/admin/audit?action=user.create');
  const listed = rows(creates.text);
  expect(listed.length).toBeGreaterThanOrEqual(4);
  expect(listed.every((row) => row.action === 'user.create')).toBe(true);
  expect(listed.map((row) => row.seq)).toEqual([...listed.map((row) => row.seq)].sort((a, b) => b - a));

  const family = rows((await admin.get('/admin/audit?action=user.*')).text);
  expect(new Set(family.map((row) => row.action))).toEqual(
    new Set(['user.create', 'user.unlock', 'user.reset_totp', 'user.disable', 'user.enable']),
  );
  const byRoot = await admin.get(`/admin/audit?actor=person:${rootId}&action=user.create`);
  expect(rows(byRoot.text)).toHaveLength(1); // casey, created in the console
  expect(byRoot.text).toContain(`href="/admin/people/${rootId}"`);
  expect(byRoot.text).toContain('username: casey');
  expect(byRoot.text).toMatch(/<td>(127\.0\.0\.1|::1|::ffff:127\.0\.0\.1)<\/td>/);
  expect(rows((await admin.get('/admin/audit?target=usr_bulk007')).text).map((row) => row.action)).toEqual(['user.unlock']);
  expect(rows((await admin.get('/admin/audit?since=1h&action=user.create')).text)).toHaveLength(listed.length);
  expect((await admin.get('/admin/audit?until=2000-01-01T00:00:00Z')).text).toContain('No audit rows match this filter');

  // paging: every row once, newest first
  const all: number[] = [];
  let path: string | undefined = '/admin/audit';
  while (path) {
    const page = await admin.get(path);
    all.push(...rows(page.text).map((row) => row.seq));
    path = nextPage(page.text);
  }
  const total = Number((await server.db('audit_log').count({ n: '*' }))[0].n);
  expect(all).toEqual(Array.from({ length: total }, (_, i) => total - i));

  const verdict = await admin.post('/admin/audit/verify', { csrf });
  expect(verdict.res.status).toBe(200);
  expect(verdict.text).toContain('The chain holds');
  await server.db('audit_log').where({ seq: 2 }).update({ target: 'tampered' });
  expect((await admin.post('/admin/audit/verify', { csrf })).text).toContain('The chain is broken at seq 2 (changed content)');
});
