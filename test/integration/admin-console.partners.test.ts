import { consoleSignIn, csrfOf } from '../support/console.ts';
import { basic, form } from '../support/http.ts';
import { cli, freshDatabaseUrl, instanceEnv, tempDir } from '../support/harness.ts';
import { startInProcess, testClock, type InProcessServer } from '../support/in-process.ts';
import { createUser, secretOf } from '../support/login.ts';
import { totpCode } from '../../src/accounts/totp.service.ts';
import { createPartner } from '../../src/partners/partner.service.ts';
import { BY_CLI } from '../../src/audit/audit.service.ts';

// The admin console's partner and API pages over HTTP: server-side pages of 50 without
// duplicates or gaps, search, the CSRF check on every form, and hostile input answered with a
// readable 4xx page (never a 500 or a stack).

const PASSWORD = 'correct horse battery staple 42';
const PARTNERS = 120;
const clock = testClock();
let server: InProcessServer;
let admin: Awaited<ReturnType<typeof consoleSignIn>>['agent'];
let csrf: string;

beforeAll(async () => {
  const dir = tempDir();
  const env = instanceEnv(dir, freshDatabaseUrl(dir));
  server = await startInProcess(env, { clock });
  const root = await createUser(env, 'root', PASSWORD, '--with-totp', '--admin');
  const secret = secretOf(root.json.totp_uri);
  expect(
    (
      await cli(
        env,
        'resource',
        'create',
        '--uri',
        'https://api.bank.test/payments',
        '--scope',
        'payments:read payments:write',
        '--default',
      )
    ).code,
  ).toBe(0);
  // 120 partners, made by the same service the console uses, in an order unlike their names'
  for (let i = 0; i < PARTNERS; i += 1) {
    const n = (i * 37) % PARTNERS;
    await createPartner(
      server.db,
      { name: `Partner ${String(n).padStart(3, '0')}`, scopes: ['payments:read'], grantTypes: [], redirectUris: [] },
      BY_CLI,
    );
  }
  await server.settle();
  const signedIn = await consoleSignIn(server.url, '/admin', {
    username: 'root',
    password: PASSWORD,
    code: () => {
      clock.advance(30_000);
      return totpCode(secret, clock.now());
    },
  });
  admin = signedIn.agent;
  csrf = csrfOf(signedIn.page.text);
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

const rowsOf = (html: string) =>
  [...html.matchAll(/<th scope="row" data-label="Name"><a href="\/admin\/partners\/([^"]+)">([^<]+)<\/a>/g)].map((m) => ({
    id: m[1],
    name: m[2],
  }));
const nextOf = (html: string) => /<a href="([^"]+)" rel="next">Next page<\/a>/.exec(html)?.[1]?.replace(/&amp;/g, '&');

test('the partner list pages on the server: 50 a page, by name, every partner once, and search narrows it', async () => {
  const seen: string[] = [];
  const sizes: number[] = [];
  let path: string | undefined = '/admin/partners';
  while (path) {
    const page = await admin.get(path);
    expect(page.res.status).toBe(200);
    const rows = rowsOf(page.text);
    sizes.push(rows.length);
    seen.push(...rows.map((row) => row.name));
    path = nextOf(page.text);
  }
  expect(sizes).toEqual([50, 50, 20]);
  expect(seen).toEqual(Array.from({ length: PARTNERS }, (_, n) => `Partner ${String(n).padStart(3, '0')}`));

  const found = await admin.get(`/admin/partners?search=${encodeURIComponent('partner 07')}`);
  expect(rowsOf(found.text).map((row) => row.name)).toEqual(Array.from({ length: 10 }, (_, n) => `Partner 07${String(n)}`));
  expect(nextOf(found.text)).toBeUndefined();
  const none = await admin.get('/admin/partners?search=%25');
  expect(none.text).toContain('No partner matches “%”.');
  // a cursor this server did not give is a readable refusal
  const forged = await admin.get('/admin/partners?after=bm90LWEtY3Vyc29y');
  expect(forged.res.status).toBe(400);
  expect(forged.text).toContain('cursor is not one this server gave');
});

test('every form needs its CSRF token and this origin', async () => {
  const before = rowsOf((await admin.get('/admin/partners?search=Forged')).text);
  const fields = { name: 'Forged Bank', type: 'secret', 'grant.client_credentials': 'on', 'scope.payments:read': 'on' };
  for (const attempt of [
    admin.post('/admin/partners', fields),
    admin.post('/admin/partners', { ...fields, csrf: 'not-the-token' }),
    admin.post('/admin/partners', { ...fields, csrf }, { origin: 'https://evil.test' }),
    admin.post('/admin/keys/rotate', { csrf: 'x' }),
  ]) {
    const refused = await attempt;
    expect(refused.res.status).toBe(403);
    expect(refused.text).toContain('Form refused');
  }
  expect(rowsOf((await admin.get('/admin/partners?search=Forged')).text)).toEqual(before);
});

test('a partner made in the console shows its secret once, and the secret gets a token', async () => {
  const created = await admin.post('/admin/partners', {
    csrf,
    name: 'Console Bank',
    type: 'secret',
    'grant.client_credentials': 'on',
    'scope.payments:read': 'on',
  });
  expect(created.res.status).toBe(303);
  const location = created.res.headers.get('location')!;
  expect(location).toMatch(/^\/admin\/partners\/ptn_[\w-]+\/secret$/);
  const shown = await admin.get(location);
  const secret = /<code class="secret" id="client-secret">([^<]+)<\/code>/.exec(shown.text)?.[1];
  expect(secret).toBeDefined();
  const again = await admin.get(location);
  expect(again.res.status).toBe(200);
  expect(again.text).not.toContain(secret!);
  expect(again.text).toContain('was shown once');
  const clientId = location.split('/')[3];
  const token = await fetch(`${server.url}/token`, {
    method: 'POST',
    headers: { authorization: basic(clientId, secret!), 'content-type': 'application/x-www-form-urlencoded' },
    body: form({ grant_type: 'client_credentials', scope: 'payments:read' }),
  });
  expect(token.status).toBe(200);
  // the overview counts it with the others
  const overview = await admin.get('/admin');
  expect(overview.text).toMatch(/<span class="figure">121<\/span> partners/);
  expect(overview.text).toMatch(/<span class="figure">1<\/span> people/);
  expect(overview.text).toMatch(/<span class="figure">[1-9]\d*<\/span> tokens issued/);
});

test('hostile input gets the form back with a readable 4xx, never a 500', async () => {
  const post = (path: string, fields: Record<string, string>) => admin.post(path, { csrf, ...fields });
  const cases: Array<[string, Record<string, string>, number, string]> = [
    ['/admin/partners', { name: 'x'.repeat(300), 'scope.payments:read': 'on' }, 400, 'Name” is longer than 200 characters'],
    ['/admin/partners', { name: 'No scope' }, 400, 'Scopes” is required'],
    ['/admin/partners', { name: 'Bogus', 'scope.bogus:scope': 'on' }, 400, 'scope "bogus:scope" belongs to no resource'],
    [
      '/admin/partners',
      { name: 'Bad URL', 'grant.authorization_code': 'on', 'scope.payments:read': 'on', redirect_uris: 'javascript:alert(1)' },
      400,
      'must be an https URL',
    ],
    [
      '/admin/partners',
      { name: 'Keys', type: 'keys', jwks: '{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', 'scope.payments:read': 'on' },
      400,
      'private key material',
    ],
    ['/admin/partners', { name: 'Huge', jwks: 'x'.repeat(20_000) }, 413, 'too large'],
    ['/admin/apis', { uri: 'ftp://api.example/x', scopes: 'a:b' }, 400, 'must be https'],
    ['/admin/apis', { uri: 'https://api.example/x', scopes: 'a:b', ttl: 'soon' }, 400, 'Access-token lifetime” must be whole seconds'],
    ['/admin/apis', { uri: 'https://api.example/x', scopes: 'payments:read' }, 400, 'already belongs to https://api.bank.test/payments'],
    ['/admin/apis/edit', { uri: `${server.url}/admin/api/v1`, scopes: 'admin:read' }, 400, 'is built in'],
    ['/admin/keys/not-a-kid/revoke', { confirm: 'not-a-kid' }, 404, 'no signing key'],
  ];
  for (const [path, fields, status, text] of cases) {
    const answer = await post(path, fields);
    expect([path, answer.res.status]).toEqual([path, status]);
    expect(answer.text).toContain(text.replace(/"/g, '&quot;'));
    expect(answer.text).not.toMatch(/at \w+ \(|node_modules|stack/i);
  }
  // an unknown partner, API or key is a 404 page
  for (const path of [
    '/admin/partners/ptn_nobody',
    '/admin/partners/%00',
    '/admin/apis/edit?uri=https%3A%2F%2Fnowhere.test',
    '/admin/keys/nope/revoke',
  ]) {
    const answer = await admin.get(path);
    expect([path, answer.res.status]).toEqual([path, 404]);
    expect(answer.text).toContain('Not found');
  }
});
