import { Validator } from '@seriousme/openapi-schema-validator';
import * as oauth from 'oauth4webapi';
import { cli, freshDatabaseUrl, instanceEnv, tempDir, TEST_PG_URL } from '../support/harness.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import { clientOf, createKeyPartner, dpopHandle, partnerKey, withNonceRetry } from '../support/fapi.ts';
import { codeFor, createUser, secretOf } from '../support/login.ts';
import { PASSWORD, personTokens, registerApp, signInAs, tokenCall, REDIRECT, type App } from '../support/person-flow.ts';

// The admin API (issue 12): every operation with a client-credentials token from oauth4webapi,
// refusals (no token, a token for another API, admin:read on a write, a suspended partner, a
// DPoP-bound token, a non-admin person), hostile input as problem details, If-Match (428, 412,
// one winner of concurrent PATCHes), keyset paging over 120 partners, and audit rows naming the caller.

const ENGINE = TEST_PG_URL ? 'postgres' : 'sqlite';
const PAYMENTS = 'https://api.bank.test/payments';

let server: InProcessServer;
let env: Record<string, string>;
let base: string;
let admin: string;
let as: oauth.AuthorizationServer;
let automation: App;
/** tokens: admin:read + admin:write; admin:read only */
let writer: string;
let reader: string;
/** operationIds answered 2xx: every operation of the document must be among them */
const exercised = new Set<string>();

type Answer = { status: number; body: any; headers: Headers };

async function call(
  method: string,
  path: string,
  options: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string>; op?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined || options.raw !== undefined) headers['content-type'] ??= 'application/json';
  const res = await fetch(`${admin}${path}`, {
    method,
    headers,
    body: options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body)),
  });
  const text = await res.text();
  const body = text ? JSON.parse(text) : undefined;
  if (options.op && res.status < 300) exercised.add(options.op);
  return { status: res.status, body, headers: res.headers };
}

/** A client-credentials token for the admin API through oauth4webapi (client_secret_basic). */
async function adminToken(partner: App, scope = 'admin:read admin:write', resource = `${base}/admin/api/v1`): Promise<string> {
  const client: oauth.Client = { client_id: partner.clientId };
  const response = await oauth.clientCredentialsGrantRequest(
    as,
    client,
    oauth.ClientSecretBasic(partner.clientSecret ?? ''),
    { scope, resource },
    { [oauth.allowInsecureRequests]: true },
  );
  return (await oauth.processClientCredentialsResponse(as, client, response)).access_token;
}

async function partnerVia(name: string, scope: string): Promise<App> {
  const created = await cli(env, 'partner', 'create', '--name', name, '--scope', scope);
  if (created.code !== 0) throw new Error(created.stderr);
  return { clientId: created.json.client_id, clientSecret: created.json.client_secret };
}

beforeAll(async () => {
  const dir = tempDir();
  server = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir), { LOG_LEVEL: 'warn' }));
  env = server.env;
  base = server.url;
  admin = `${base}/admin/api/v1`;
  as = { issuer: base, token_endpoint: `${base}/token` };
  expect((await cli(env, 'resource', 'create', '--uri', PAYMENTS, '--scope', 'payments:read payments:write', '--default')).code).toBe(0);
  automation = await partnerVia('Automation', 'admin:read admin:write');
  writer = await adminToken(automation);
  reader = await adminToken(await partnerVia('Auditor', 'admin:read'), 'admin:read');
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

describe(`admin API (${ENGINE})`, () => {
  test('the built-in API: listed, refused by resource update, its scopes described', async () => {
    const list = await cli(env, 'resource', 'list');
    expect(list.json).toContainEqual(
      expect.objectContaining({ uri: `${base}/admin/api/v1`, scope: 'admin:read admin:write', built_in: true, token_format: 'opaque' }),
    );
    const update = await cli(env, 'resource', 'update', '--uri', `${base}/admin/api/v1`, '--ttl', '60');
    expect(update.code).toBe(1);
    expect(update.stderr).toMatch(/built in/);
    const words = await server.db('scope_descriptions').whereIn('scope', ['admin:read', 'admin:write']);
    expect(words).toHaveLength(2);
  });

  test('refusals: no token, another API’s token, admin:read writing, a suspended partner, a DPoP-bound token', async () => {
    const none = await call('GET', '/partners');
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer realm="/);
    expect(none.headers.get('content-type')).toMatch(/^application\/problem\+json/);

    const payments = await adminToken(await partnerVia('Payments Client', 'payments:read'), 'payments:read', PAYMENTS);
    const other = await call('GET', '/partners', { token: payments });
    expect(other.status).toBe(401);
    expect(other.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
    expect((await call('GET', '/partners', { token: 'not-a-token' })).status).toBe(401);

    expect((await call('GET', '/partners', { token: reader })).status).toBe(200);
    const write = await call('POST', '/partners', { token: reader, body: { name: 'Nope', scope: 'payments:read' } });
    expect(write.status).toBe(403);
    expect(write.headers.get('www-authenticate')).toMatch(/error="insufficient_scope".*scope="admin:write"/);
    expect(write.body).toEqual(expect.objectContaining({ status: 403, code: 'insufficient_scope' }));

    const temp = await partnerVia('Temporary Admin', 'admin:read');
    const token = await adminToken(temp, 'admin:read');
    expect((await call('GET', '/keys', { token })).status).toBe(200);
    expect((await call('POST', `/partners/${temp.clientId}/suspend`, { token: writer, op: 'suspendPartner' })).status).toBe(200);
    await server.settle();
    expect((await call('GET', '/keys', { token })).status).toBe(401);
    expect((await call('POST', `/partners/${temp.clientId}/resume`, { token: writer, op: 'resumePartner' })).body.status).toBe('active');

    // sender-constrained tokens are refused, saying why (the API does not check DPoP proofs)
    const keyPartner = await createKeyPartner(env, { scope: 'admin:read' });
    const { client, auth } = clientOf(keyPartner);
    const { handle } = await dpopHandle(client);
    const bound = await withNonceRetry(async () =>
      oauth.processClientCredentialsResponse(
        as,
        client,
        await oauth.clientCredentialsGrantRequest(
          as,
          client,
          auth,
          { scope: 'admin:read', resource: admin },
          {
            [oauth.allowInsecureRequests]: true,
            DPoP: handle,
          },
        ),
      ),
    );
    expect(bound.token_type.toLowerCase()).toBe('dpop');
    const refused = await call('GET', '/keys', { headers: { authorization: `Bearer ${bound.access_token}` } });
    expect(refused.status).toBe(401);
    expect(refused.body.detail).toMatch(/sender-constrained/);
  });

  test('a person’s token: an admin is let in (audited as the person), a non-admin is refused even by a partner allowed admin scopes', async () => {
    const app = await registerApp(env, { name: 'Admin Console App', scope: 'admin:read admin:write' });
    const params = { scope: 'openid admin:read', resource: admin };
    const someone = await personTokens(base, env, app, params);
    const refused = await call('GET', '/partners', { token: someone.access_token });
    expect(refused.status).toBe(403);
    expect(refused.body.code).toBe('not_an_admin');

    const created = await createUser(env, 'chief-admin', PASSWORD, '--with-totp', '--admin');
    expect(created.code).toBe(0);
    const { code, verifier } = await signInAs(base, app, 'chief-admin', () => codeFor(secretOf(created.json.totp_uri)), params);
    const tokens = await tokenCall(base, app, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier });
    expect(tokens.status).toBe(200);
    const listed = await call('GET', `/people?search=chief`, { token: tokens.body.access_token, op: 'listPeople' });
    expect(listed.status).toBe(200);
    expect(listed.body.items.map((p: { username: string }) => p.username)).toEqual(['chief-admin']);
    // a write needs admin:write, which this token does not carry
    expect((await call('POST', '/keys/rotate', { token: tokens.body.access_token, body: {} })).status).toBe(403);
  });

  test('partners: create (secret once), list, get with ETag, update with If-Match, rotate secret, keys, profile, grants, delete', async () => {
    const created = await call('POST', '/partners', {
      token: writer,
      body: { name: 'Acme Bank', scope: 'payments:read' },
      op: 'createPartner',
    });
    expect(created.status).toBe(201);
    const clientId = created.body.client_id as string;
    expect(created.body.client_secret).toEqual(expect.any(String));
    expect(created.headers.get('location')).toBe(`/admin/api/v1/partners/${clientId}`);
    const got = await call('GET', `/partners/${clientId}`, { token: reader, op: 'getPartner' });
    expect(got.body.client_secret).toBeUndefined();
    expect(got.body).toEqual(expect.objectContaining({ client_id: clientId, name: 'Acme Bank', status: 'active' }));
    const etag = got.headers.get('etag') ?? '';
    expect(etag).toMatch(/^"\d+"$/);

    expect(
      (await call('GET', '/partners?search=acme', { token: reader, op: 'listPartners' })).body.items.map(
        (p: { client_id: string }) => p.client_id,
      ),
    ).toContain(clientId);
    expect((await call('PATCH', `/partners/${clientId}`, { token: writer, body: { name: 'Acme' } })).status).toBe(428);
    const patched = await call('PATCH', `/partners/${clientId}`, {
      token: writer,
      body: { name: 'Acme Bank plc' },
      headers: { 'if-match': etag },
      op: 'updatePartner',
    });
    expect(patched.status).toBe(200);
    expect(patched.body.name).toBe('Acme Bank plc');
    expect(patched.headers.get('etag')).not.toBe(etag);
    const stale = await call('PATCH', `/partners/${clientId}`, { token: writer, body: { name: 'Stale' }, headers: { 'if-match': etag } });
    expect(stale.status).toBe(412);
    expect(stale.body.code).toBe('precondition_failed');

    // two admins with one ETag: exactly one change lands (the condition is in the UPDATE)
    const current = patched.headers.get('etag') ?? '';
    const racing = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        call('PATCH', `/partners/${clientId}`, { token: writer, body: { name: `Racer ${String(i)}` }, headers: { 'if-match': current } }),
      ),
    );
    expect(racing.map((r) => r.status).sort()).toEqual([200, 412, 412, 412, 412, 412, 412, 412]);
    const winner = racing.find((r) => r.status === 200)?.body.name;
    expect((await call('GET', `/partners/${clientId}`, { token: reader })).body.name).toBe(winner);

    const rotated = await call('POST', `/partners/${clientId}/rotate-secret`, { token: writer, op: 'rotatePartnerSecret' });
    expect(rotated.body).toEqual({ client_id: clientId, client_secret: expect.any(String) });
    expect(rotated.body.client_secret).not.toBe(created.body.client_secret);

    const key = await partnerKey();
    let tag = (await call('GET', `/partners/${clientId}`, { token: reader })).headers.get('etag') ?? '';
    const keys = await call('PUT', `/partners/${clientId}/keys`, {
      token: writer,
      body: { jwks: { keys: [key.publicJwk] } },
      headers: { 'if-match': tag },
      op: 'setPartnerKeys',
    });
    expect(keys.status).toBe(200);
    expect(keys.body).toEqual(expect.objectContaining({ auth_method: 'private_key_jwt', key_ids: [key.kid] }));
    tag = keys.headers.get('etag') ?? '';
    const profile = await call('PUT', `/partners/${clientId}/profile`, {
      token: writer,
      body: { profile: 'fapi2' },
      headers: { 'if-match': tag },
      op: 'setPartnerProfile',
    });
    expect(profile.body.profile).toBe('fapi2');

    expect((await call('GET', `/partners/${clientId}/grants`, { token: reader, op: 'listPartnerGrants' })).body).toEqual({
      items: [],
      next: null,
    });
    expect((await call('DELETE', `/partners/${clientId}`, { token: writer, op: 'deletePartner' })).body).toEqual({
      client_id: clientId,
      deleted: true,
    });
    expect((await call('GET', `/partners/${clientId}`, { token: reader })).status).toBe(404);
  });

  test('APIs: list (with the built-in), create with scope words, get, update with If-Match; the built-in is refused', async () => {
    const list = await call('GET', '/apis', { token: reader, op: 'listApis' });
    expect(list.body.items.map((a: { uri: string }) => a.uri)).toEqual(expect.arrayContaining([admin, PAYMENTS]));
    const uri = 'https://api.bank.test/cards';
    const created = await call('POST', '/apis', {
      token: writer,
      body: { uri, scope: 'cards:read cards:write', format: 'opaque', descriptions: { 'cards:read': 'See your cards' } },
      op: 'createApi',
    });
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe(`/admin/api/v1/apis/${encodeURIComponent(uri)}`);
    const got = await call('GET', `/apis/${encodeURIComponent(uri)}`, { token: reader, op: 'getApi' });
    expect(got.body).toEqual(expect.objectContaining({ uri, token_format: 'opaque', descriptions: { 'cards:read': 'See your cards' } }));
    const updated = await call('PATCH', `/apis/${encodeURIComponent(uri)}`, {
      token: writer,
      body: { ttl: 300, descriptions: { 'cards:write': 'Spend with your cards' } },
      headers: { 'if-match': got.headers.get('etag') ?? '' },
      op: 'updateApi',
    });
    expect(updated.status).toBe(200);
    expect(updated.body).toEqual(
      expect.objectContaining({
        access_token_ttl: 300,
        descriptions: { 'cards:read': 'See your cards', 'cards:write': 'Spend with your cards' },
      }),
    );
    const stale = await call('PATCH', `/apis/${encodeURIComponent(uri)}`, {
      token: writer,
      body: { ttl: 400 },
      headers: { 'if-match': got.headers.get('etag') ?? '' },
    });
    expect(stale.status).toBe(412);
    const builtIn = await call('GET', `/apis/${encodeURIComponent(admin)}`, { token: reader });
    const refused = await call('PATCH', `/apis/${encodeURIComponent(admin)}`, {
      token: writer,
      body: { ttl: 60 },
      headers: { 'if-match': builtIn.headers.get('etag') ?? '' },
    });
    expect(refused.status).toBe(400);
    expect(refused.body.detail).toMatch(/built in/);
  });

  test('people and grants: create (enrolment code once), get, unlock, reset second factor, disable, enable, their grants, revoke', async () => {
    const created = await call('POST', '/people', { token: writer, body: { username: 'dora', password: PASSWORD }, op: 'createPerson' });
    expect(created.status).toBe(201);
    expect(created.body).toEqual(expect.objectContaining({ username: 'dora', enrolment_code: expect.any(String) }));
    const id = created.body.id as string;
    const got = await call('GET', `/people/${id}`, { token: reader, op: 'getPerson' });
    expect(got.body).toEqual(expect.objectContaining({ id, username: 'dora', status: 'active', totp_enrolled: false }));
    expect(got.body.enrolment_code).toBeUndefined();
    expect(got.headers.get('etag')).toMatch(/^"\d+"$/);
    expect((await call('POST', `/people/${id}/unlock`, { token: writer, op: 'unlockPerson' })).body.locked_until).toBeNull();
    const reset = await call('POST', `/people/${id}/reset-second-factor`, { token: writer, op: 'resetSecondFactor' });
    expect(reset.body.enrolment_code).toEqual(expect.any(String));
    expect(reset.body.enrolment_code).not.toBe(created.body.enrolment_code);
    expect((await call('POST', `/people/${id}/disable`, { token: writer, op: 'disablePerson' })).body.status).toBe('disabled');
    expect((await call('POST', `/people/${id}/enable`, { token: writer, op: 'enablePerson' })).body.status).toBe('active');
    expect((await call('GET', `/people/nobody`, { token: reader })).status).toBe(404);

    // a person's grant to a partner: listed by person, by partner, then revoked
    const app = await registerApp(env, { name: 'Budgeting App' });
    const person = await personTokens(base, env, app);
    const mine = await call('GET', `/people/${person.accountId}/grants`, { token: reader, op: 'listPersonGrants' });
    expect(mine.body.items).toEqual([
      expect.objectContaining({ account_id: person.accountId, client_id: app.clientId, scope: expect.stringContaining('payments:read') }),
    ]);
    const byPartner = await call('GET', `/grants?partner=${app.clientId}`, { token: reader, op: 'listGrants' });
    expect(byPartner.body.items.map((g: { id: string }) => g.id)).toEqual([mine.body.items[0].id]);
    const revoked = await call('DELETE', `/grants/${mine.body.items[0].id as string}`, { token: writer, op: 'revokeGrant' });
    expect(revoked.body).toEqual(expect.objectContaining({ revoked: true }));
    expect((await call('GET', `/grants?person=${person.accountId}`, { token: reader })).body.items).toEqual([]);
    expect((await tokenCall(base, app, { grant_type: 'refresh_token', refresh_token: person.refresh_token })).body.error).toBe(
      'invalid_grant',
    );
  });

  test('signing keys: the timeline, a rotation, an emergency revocation only with its kid typed again', async () => {
    const timeline = await call('GET', '/keys', { token: reader, op: 'keyTimeline' });
    expect(timeline.body.keys).toEqual([expect.objectContaining({ state: 'active', published: true, revoked_at: null })]);
    expect(timeline.body.signing).toBe(timeline.body.keys[0].kid);
    const rotated = await call('POST', '/keys/rotate', { token: writer, body: {}, op: 'rotateKeys' });
    const next = rotated.body.keys.find((k: { state: string }) => k.state === 'next');
    expect(next).toEqual(expect.objectContaining({ published: true, activates_at: expect.any(String) }));
    const unconfirmed = await call('POST', `/keys/${next.kid as string}/revoke`, { token: writer, body: { confirm: 'something else' } });
    expect(unconfirmed.status).toBe(400);
    expect((await call('POST', `/keys/${next.kid as string}/revoke`, { token: writer })).status).toBe(400);
    const revoked = await call('POST', `/keys/${next.kid as string}/revoke`, {
      token: writer,
      body: { confirm: next.kid },
      op: 'revokeKey',
    });
    expect(revoked.body.keys.find((k: { kid: string }) => k.kid === next.kid)).toEqual(
      expect.objectContaining({ state: 'revoked', published: false, revoked_at: expect.any(String) }),
    );
  });

  test('paging walks 120 partners by name with no duplicates or gaps, while a partner is added mid-walk', async () => {
    const names = Array.from({ length: 120 }, (_, i) => `Walk ${String(i).padStart(3, '0')}`);
    for (let i = 0; i < names.length; i += 20)
      await Promise.all(
        names.slice(i, i + 20).map((name) => call('POST', '/partners', { token: writer, body: { name, scope: 'payments:read' } })),
      );
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = `search=walk&limit=7${cursor ? `&cursor=${cursor}` : ''}`;
      const page: Answer = await call('GET', `/partners?${query}`, { token: reader });
      expect(page.status).toBe(200);
      seen.push(...page.body.items.map((p: { name: string }) => p.name));
      cursor = page.body.next;
      if ((pages += 1) === 3)
        await call('POST', '/partners', {
          token: writer,
          body: { name: 'Walk 000 (late, sorts in an earlier page)', scope: 'payments:read' },
        });
    } while (cursor);
    expect(seen).toEqual(names);
    expect(pages).toBe(18);
    const all = await call('GET', '/partners?search=walk', { token: reader });
    expect(all.body.items).toHaveLength(50); // the default page size
    expect(all.body.next).toEqual(expect.any(String));
  });

  test('the audit log: the API caller is the actor, with source IP and request id; filters and pages', async () => {
    const actor = `partner:${automation.clientId}`;
    const rows = await call('GET', `/audit?actor=${encodeURIComponent(actor)}&action=partner.*&limit=5`, {
      token: reader,
      op: 'listAudit',
    });
    expect(rows.status).toBe(200);
    expect(rows.body.items).toHaveLength(5);
    for (const row of rows.body.items) {
      expect(row).toEqual(
        expect.objectContaining({
          actor,
          action: expect.stringMatching(/^partner\./),
          source_ip: expect.any(String),
          request_id: expect.any(String),
        }),
      );
    }
    const seqs = rows.body.items.map((row: { seq: number }) => row.seq);
    expect(seqs).toEqual([...seqs].sort((a: number, b: number) => b - a));
    const after = await call(
      'GET',
      `/audit?actor=${encodeURIComponent(actor)}&action=partner.*&limit=5&cursor=${rows.body.next as string}`,
      { token: reader },
    );
    expect(Math.max(...after.body.items.map((row: { seq: number }) => row.seq))).toBeLessThan(Math.min(...seqs));
    const none = await call('GET', `/audit?since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`, { token: reader });
    expect(none.body).toEqual({ items: [], next: null });
  });

  test('hostile input gets problem details (4xx), never a 500', async () => {
    const cases: Array<[string, string, { body?: unknown; raw?: string; headers?: Record<string, string> }, number]> = [
      ['POST', '/partners', { body: { name: 42, scope: 'payments:read' } }, 400],
      ['POST', '/partners', { body: { name: 'x'.repeat(10_000), scope: 'payments:read' } }, 400],
      ['POST', '/partners', { body: { name: 'Extra', scope: 'payments:read', admin: true } }, 400],
      ['POST', '/partners', { body: { name: 'No such scope', scope: 'nothing:here' } }, 400],
      ['POST', '/partners', { body: ['not', 'an', 'object'] }, 400],
      ['POST', '/partners', { body: null }, 400],
      ['POST', '/partners', { raw: '{"name": "broken' }, 400],
      ['POST', '/partners', { raw: 'name=form', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, 415],
      ['POST', '/partners', { raw: JSON.stringify({ name: 'y'.repeat(200_000), scope: 'a' }) }, 413],
      ['POST', '/partners', {}, 400],
      ['POST', '/people', { body: { username: 'weak', password: '123' } }, 400],
      ['POST', '/people', { body: { username: '\u0000', password: PASSWORD } }, 400],
      ['POST', '/apis', { body: { uri: 'not a uri', scope: 'x:y' } }, 400],
      ['POST', '/apis', { body: { uri: 'https://api.bank.test/z', scope: 'z:read', ttl: 'long' } }, 400],
      ['GET', '/partners?cursor=garbage', {}, 400],
      ['GET', '/partners?cursor=WzFd', {}, 400],
      ['GET', '/partners?limit=1000', {}, 400],
      ['GET', '/partners?limit=abc', {}, 400],
      ['GET', '/partners?limit=1&limit=2', {}, 400],
      ['GET', '/partners?unknown=1', {}, 400],
      ['GET', '/audit?since=yesterday-ish', {}, 400],
      ['GET', '/audit?cursor=WyJhIl0', {}, 400],
      ['GET', '/partners/%00%01', {}, 400],
      ['GET', '/audit?actor=%00', {}, 400],
      ['DELETE', '/grants/%00', {}, 400],
      ['POST', '/keys/%00x/revoke', { body: { confirm: '\u0000x' } }, 400],
      ['GET', `/partners/${'p'.repeat(500)}`, {}, 400],
      ['GET', '/apis/%E0%A4%A', {}, 404],
      ['GET', '/nowhere', {}, 404],
      ['PUT', '/partners', { body: {} }, 405],
      ['PATCH', '/partners/ptn_none', { body: { name: 'x' }, headers: { 'if-match': '"1"' } }, 404],
      ['PATCH', '/partners/ptn_none', { body: { name: 'x' }, headers: { 'if-match': 'W/"1"' } }, 412],
      ['POST', '/keys/rotate', { body: { immediately: 'yes' } }, 400],
      ['DELETE', '/grants/ptn$$', {}, 404],
      ['POST', '/partners/ptn_none/suspend', { body: { extra: 1 } }, 400],
    ];
    const answers = await Promise.all(cases.map(([method, path, options]) => call(method, path, { token: writer, ...options })));
    answers.forEach((answer, i) => {
      const [method, path, , status] = cases[i];
      expect({ method, path: path.slice(0, 60), status: answer.status }).toEqual({ method, path: path.slice(0, 60), status });
      expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(answer.body).toEqual(
        expect.objectContaining({
          type: 'about:blank',
          status,
          title: expect.any(String),
          detail: expect.any(String),
          code: expect.any(String),
        }),
      );
    });
    expect(answers[0].body.errors).toEqual([expect.objectContaining({ path: 'body/name' })]);
  });

  test('the OpenAPI document: public, valid OpenAPI 3.1, the OAuth 2.0 scheme, and every operation exercised above', async () => {
    const res = await fetch(`${admin}/openapi.json`);
    expect(res.status).toBe(200);
    const document = (await res.json()) as any;
    const verdict = await new Validator().validate(document);
    expect(verdict).toEqual(expect.objectContaining({ valid: true }));
    expect(document.openapi).toBe('3.1.0');
    expect(document.components.securitySchemes.portcullis).toEqual(
      expect.objectContaining({
        type: 'oauth2',
        flows: {
          clientCredentials: expect.objectContaining({
            tokenUrl: `${base}/token`,
            scopes: expect.objectContaining({ 'admin:read': expect.any(String), 'admin:write': expect.any(String) }),
          }),
          authorizationCode: expect.objectContaining({ authorizationUrl: `${base}/auth`, tokenUrl: `${base}/token` }),
        },
      }),
    );
    const operations = Object.values(
      document.paths as Record<string, Record<string, { operationId: string; security: unknown[] }>>,
    ).flatMap((item) => Object.values(item));
    expect(operations.length).toBeGreaterThanOrEqual(28);
    for (const operation of operations)
      expect(operation.security).toEqual([{ portcullis: [expect.stringMatching(/^admin:(read|write)$/)] }]);
    expect(operations.map((operation) => operation.operationId).filter((id) => !exercised.has(id))).toEqual([]);
  });
});
