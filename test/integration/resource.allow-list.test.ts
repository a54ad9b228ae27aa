import { hashId } from '../../src/oidc/payload.store.ts';
import { cli, freshDatabaseUrl, instanceEnv, TEST_PG_URL, tempDir } from '../support/harness.ts';
import { startInProcess, testClock, type InProcessServer } from '../support/in-process.ts';
import { authorize, personTokens, REDIRECT, registerApp, registerService, tokenCall, type App } from '../support/person-flow.ts';

// Issue 8, item 7 (token side): no empty-scope token for an API; `resource update` changes only
// what it is given; allow-lists are (API, scope) pairs; public clients' refresh tokens keep
// their remaining lifetime across rotation.

const ENGINE = TEST_PG_URL ? 'postgres' : 'sqlite';
const PAYMENTS = 'https://api.bank.test/payments';
const ACCOUNTS = 'https://api.bank.test/accounts';

let server: InProcessServer;
let env: Record<string, string>;
/** the server's clock: moved on past its resource cache (2 s) instead of waiting */
const clock = testClock();
const pastResourceCache = () => clock.advance(2100);

beforeAll(async () => {
  const dir = tempDir();
  server = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir), { LOG_LEVEL: 'warn' }), { clock });
  env = server.env;
  await cli(env, 'resource', 'create', '--uri', PAYMENTS, '--scope', 'payments:read payments:write', '--format', 'opaque', '--default');
  await cli(env, 'resource', 'create', '--uri', ACCOUNTS, '--scope', 'accounts:read', '--format', 'opaque');
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

const clientCredentials = (partner: App, fields: Record<string, string>) =>
  tokenCall(server.url, partner, { grant_type: 'client_credentials', ...fields });
async function storedExp(refreshToken: string): Promise<number> {
  const row = await server
    .db('oidc_payloads')
    .where({ model: 'RefreshToken', id: hashId(refreshToken) })
    .first();
  return JSON.parse(row.payload).exp as number;
}

describe(`no token for an API without a scope of it (${ENGINE})`, () => {
  test('client_credentials: a resource where the partner has no scope, or no scope asked, is invalid_scope', async () => {
    const payer = await registerService(env, 'Payments only', 'payments:read');
    const noScope = await clientCredentials(payer, { resource: ACCOUNTS });
    expect(noScope.status).toBe(400);
    expect(noScope.body.error).toBe('invalid_scope');
    expect(noScope.body.access_token).toBeUndefined();
    expect((await clientCredentials(payer, { resource: ACCOUNTS, scope: 'openid' })).body.error).toBe('invalid_scope');
    expect((await clientCredentials(payer, {})).body.error).toBe('invalid_scope');
    expect((await clientCredentials(payer, { scope: 'payments:read' })).status).toBe(200);
  });

  test('authorization request for an API where the partner has no scope: invalid_scope back to the app, no login', async () => {
    const app = await registerApp(env, { name: 'Wrong API app', scope: 'payments:read' });
    const res = await fetch(
      `${server.url}/auth?${new URLSearchParams({
        client_id: app.clientId,
        response_type: 'code',
        redirect_uri: REDIRECT,
        scope: 'openid accounts:read',
        resource: ACCOUNTS,
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
        code_challenge_method: 'S256',
      })}`,
      { redirect: 'manual' },
    );
    const location = new URL(res.headers.get('location')!, server.url);
    expect(location.href.startsWith(REDIRECT)).toBe(true);
    expect(location.searchParams.get('error')).toBe('invalid_scope');
  });

  test('refresh after the API dropped the granted scope: invalid_scope, never an empty-scope token', async () => {
    const api = 'https://api.bank.test/shrinking';
    await cli(env, 'resource', 'create', '--uri', api, '--scope', 'shrink:read shrink:write', '--format', 'opaque');
    const app = await registerApp(env, { name: 'Shrinking app', scope: 'shrink:read shrink:write' });
    const { code, verifier } = await authorize(server.url, env, app, { scope: 'openid shrink:read', resource: api });
    const tokens = await tokenCall(server.url, app, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
    });
    expect(tokens.body.scope).toBe('shrink:read');
    expect((await cli(env, 'resource', 'update', '--uri', api, '--scope', 'shrink:write')).json.scope).toBe('shrink:write');
    pastResourceCache();
    const refreshed = await tokenCall(server.url, app, { grant_type: 'refresh_token', refresh_token: tokens.body.refresh_token });
    expect(refreshed.body).toEqual(expect.objectContaining({ error: 'invalid_scope' }));
    expect(refreshed.body.access_token).toBeUndefined();
  });
});

describe(`resource create and update (${ENGINE})`, () => {
  const uri = 'https://api.bank.test/cards';

  test('create refuses an existing URI with one line pointing to `resource update`, changing nothing', async () => {
    const introspector = await registerService(env, 'Cards API', 'payments:read');
    const created = await cli(
      env,
      'resource',
      'create',
      '--uri',
      uri,
      '--scope',
      'cards:read cards:write',
      '--ttl',
      '120',
      '--format',
      'opaque',
      '--introspector',
      introspector.clientId,
    );
    expect(created.code).toBe(0);
    const again = await cli(env, 'resource', 'create', '--uri', uri, '--scope', 'cards:read');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists.*portcullis resource update --uri https:\/\/api\.bank\.test\/cards/);
    expect(again.stderr.trim().split('\n')).toHaveLength(1);
    const listed = (await cli(env, 'resource', 'list')).json.find((r: { uri: string }) => r.uri === uri);
    expect(listed).toEqual(
      expect.objectContaining({
        scope: 'cards:read cards:write',
        access_token_ttl: 120,
        token_format: 'opaque',
        introspector: introspector.clientId,
      }),
    );
  });

  test('update changes only the flags given', async () => {
    // updated_at moves with each change (the admin API's ETag): everything else stays
    const stable = ({ updated_at: updatedAt, ...rest }: Record<string, unknown>) => (typeof updatedAt === 'string' ? rest : undefined);
    const before = stable((await cli(env, 'resource', 'list')).json.find((r: { uri: string }) => r.uri === uri));
    const ttl = await cli(env, 'resource', 'update', '--uri', uri, '--ttl', '300');
    expect(stable(ttl.json)).toEqual({ ...before, access_token_ttl: 300 });
    const format = await cli(env, 'resource', 'update', '--uri', uri, '--format', 'jwt', '--describe', 'cards:read=See your cards');
    expect(stable(format.json)).toEqual({
      ...before,
      access_token_ttl: 300,
      token_format: 'jwt',
      descriptions: { 'cards:read': 'See your cards' },
    });
    const noIntrospector = await cli(env, 'resource', 'update', '--uri', uri, '--no-introspector');
    expect(stable(noIntrospector.json)).toEqual({ ...before, access_token_ttl: 300, token_format: 'jwt', introspector: null });
    await cli(env, 'resource', 'update', '--uri', uri, '--describe', 'cards:write=Spend with your cards');
    const scopes = await cli(env, 'resource', 'update', '--uri', uri, '--scope', 'cards:read cards:freeze');
    expect(stable(scopes.json)).toEqual({
      ...before,
      access_token_ttl: 300,
      token_format: 'jwt',
      introspector: null,
      scope: 'cards:freeze cards:read',
    });
    // a dropped scope takes its consent words with it; the others keep theirs
    expect(
      (await server.db('scope_descriptions').whereIn('scope', ['cards:read', 'cards:write']).orderBy('scope')).map(
        (row: { scope: string }) => row.scope,
      ),
    ).toEqual(['cards:read']);
    const defaults = await cli(env, 'resource', 'update', '--uri', uri, '--default');
    expect(defaults.json.default).toBe(true);
    const all = (await cli(env, 'resource', 'list')).json as Array<{ uri: string; default: boolean }>;
    expect(all.filter((r) => r.default).map((r) => r.uri)).toEqual([uri]);
    await cli(env, 'resource', 'update', '--uri', PAYMENTS, '--default');
  });

  test.each([
    [['resource', 'update', '--uri', 'https://api.bank.test/nowhere', '--ttl', '60'], 1, /no resource https:\/\/api\.bank\.test\/nowhere/],
    [['resource', 'update', '--uri', uri], 1, /nothing to change/],
    [['resource', 'update', '--uri', uri, '--scope', 'payments:read'], 1, /already belongs to https:\/\/api\.bank\.test\/payments/],
    [['resource', 'update', '--uri', uri, '--ttl', '5'], 1, /--ttl/],
    [['resource', 'update', '--uri', uri, '--format', 'xml'], 1, /--format/],
    [['resource', 'update', '--uri', uri, '--introspector', 'ptn_nobody'], 1, /no such partner/],
    [['resource', 'update', '--uri', uri, '--introspector', 'x', '--no-introspector'], 2, /exclude each other/],
    [['resource', 'update', '--uri', uri, '--describe', 'cards:write=Spend'], 1, /not in --scope/],
    [['resource', 'update', '--scope', 'a'], 2, /--uri is required/],
  ])('%j → exit %i with one line', async (argv, code, message) => {
    const result = await cli(env, ...argv);
    expect(result.code).toBe(code);
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe(`allow-lists are (API, scope) pairs (${ENGINE})`, () => {
  test('`partner create --scope` still takes scope names; the partner shows which API each belongs to', async () => {
    const partner = await cli(env, 'partner', 'create', '--name', 'Two APIs', '--scope', 'payments:read accounts:read');
    expect(partner.json).toEqual(
      expect.objectContaining({
        scope: 'accounts:read payments:read',
        allowed: { [ACCOUNTS]: 'accounts:read', [PAYMENTS]: 'payments:read' },
      }),
    );
    const credentials = { clientId: partner.json.client_id, clientSecret: partner.json.client_secret };
    expect((await clientCredentials(credentials, { scope: 'accounts:read', resource: ACCOUNTS })).body.scope).toBe('accounts:read');
    expect((await clientCredentials(credentials, { scope: 'payments:read', resource: ACCOUNTS })).body.error).toBe('invalid_scope');
  });

  test('a scope name that moves to another API is not inherited, and one dropped and added back is given to no one', async () => {
    const first = 'https://api.bank.test/first';
    const second = 'https://api.bank.test/second';
    await cli(env, 'resource', 'create', '--uri', first, '--scope', 'moving:read first:read', '--format', 'opaque');
    const partner = await registerService(env, 'Mover', 'moving:read first:read');
    expect((await clientCredentials(partner, { scope: 'moving:read', resource: first })).body.scope).toBe('moving:read');

    // API "first" drops moving:read; API "second" then defines a scope of that name
    expect((await cli(env, 'resource', 'update', '--uri', first, '--scope', 'first:read')).code).toBe(0);
    expect((await cli(env, 'resource', 'create', '--uri', second, '--scope', 'moving:read', '--format', 'opaque')).code).toBe(0);
    expect((await cli(env, 'partner', 'show', partner.clientId)).json.allowed).toEqual({ [first]: 'first:read' });
    const onSecond = await clientCredentials(partner, { scope: 'moving:read', resource: second });
    expect(onSecond.body.error).toBe('invalid_scope');
    expect((await clientCredentials(partner, { resource: second })).body.error).toBe('invalid_scope');
    pastResourceCache();
    const onFirst = await clientCredentials(partner, { scope: 'moving:read', resource: first });
    expect(onFirst.body.error).toBe('invalid_scope');

    // back on "first" (after "second" lets the name go): the old permission does not come back
    await cli(env, 'resource', 'update', '--uri', second, '--scope', 'second:read');
    expect((await cli(env, 'resource', 'update', '--uri', first, '--scope', 'first:read moving:read')).code).toBe(0);
    pastResourceCache(); // a stale answer would pass
    expect((await clientCredentials(partner, { scope: 'moving:read', resource: first })).body.error).toBe('invalid_scope');
    expect((await clientCredentials(partner, { scope: 'first:read', resource: first })).body.scope).toBe('first:read');
  });
});

describe(`refresh token lifetime across rotation (${ENGINE})`, () => {
  test("a public client's rotated refresh token keeps the original's expiry; a confidential client's starts again", async () => {
    const pub = await registerApp(env, { name: 'Phone app', public: true });
    const confidential = await registerApp(env, { name: 'Server app' });
    const soon = Math.floor(Date.now() / 1000) + 3600;
    const rotated: Record<string, number> = {};
    for (const [name, app] of [
      ['public', pub],
      ['confidential', confidential],
    ] as const) {
      const tokens = await personTokens(server.url, env, app);
      // as if issued 14 days minus an hour ago: one hour left
      const row = await server
        .db('oidc_payloads')
        .where({ model: 'RefreshToken', id: hashId(tokens.refresh_token) })
        .first();
      await server
        .db('oidc_payloads')
        .where({ model: 'RefreshToken', id: hashId(tokens.refresh_token) })
        .update({ payload: JSON.stringify({ ...JSON.parse(row.payload), exp: soon }), expires_at: soon * 1000 });
      const next = await tokenCall(server.url, app, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
      expect(next.status).toBe(200);
      rotated[name] = await storedExp(next.body.refresh_token);
    }
    expect(rotated.public).toBe(soon);
    expect(rotated.confidential).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000) + 14 * 24 * 3600 - 60);
  });
});
