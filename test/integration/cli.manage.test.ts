import { BY_CLI } from '../../src/audit/audit.service.ts';
import { createDb, type Db } from '../../src/db/knex.ts';
import { createPartner, updatePartnerDetails } from '../../src/partners/partner.service.ts';
import { cli, cliWithInput, TEST_PG_URL } from '../support/harness.ts';
import type { InProcessServer } from '../support/in-process.ts';
import { httpLogin } from '../support/http-login.ts';
import {
  authorize,
  introspectAs,
  PASSWORD,
  personTokens,
  REDIRECT,
  startWithIntrospectedApi,
  registerApp,
  registerService,
  type App,
} from '../support/person-flow.ts';

// A CLI that manages what it creates (issue 10): partner update and delete, unique partner names,
// user enable and set-password, grant list and revoke — each seen through its effect on tokens.

const ENGINE = TEST_PG_URL ? 'postgres' : 'sqlite';
const API = 'https://api.bank.test/payments';

let server: InProcessServer;
let env: Record<string, string>;
let introspector: App;
let clientCredentials: Awaited<ReturnType<typeof startWithIntrospectedApi>>['clientCredentials'];
let refresh: Awaited<ReturnType<typeof startWithIntrospectedApi>>['refresh'];
let rowsOf: Awaited<ReturnType<typeof startWithIntrospectedApi>>['rowsOf'];

beforeAll(async () => {
  ({ server, env, introspector, clientCredentials, refresh, rowsOf } = await startWithIntrospectedApi(API));
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

/** Racers on their own connections (SQLite: more than ~3 in-process transactions at once starve libuv). */
const RACERS = ENGINE === 'postgres' ? 8 : 3;

async function withConnections<T>(count: number, use: (dbs: Db[]) => Promise<T>): Promise<T> {
  const dbs = Array.from({ length: count }, () => createDb(env.DATABASE_URL));
  try {
    return await use(dbs);
  } finally {
    await Promise.all(dbs.map((db) => db.destroy()));
  }
}

describe(`partner create and update (${ENGINE})`, () => {
  test('partner create prints the grants the partner can use: authorization_code brings refresh_token', async () => {
    const created = await cli(
      env,
      'partner',
      'create',
      '--name',
      'Grant Types Bank',
      '--scope',
      'payments:read',
      '--grant',
      'authorization_code',
      '--redirect-uri',
      'https://app.example/cb',
    );
    expect(created.json.grant_types).toEqual(['authorization_code', 'refresh_token']);
    expect((await cli(env, 'partner', 'show', created.json.client_id)).json.grant_types).toEqual(['authorization_code', 'refresh_token']);
  });

  test('partner update: the allow-list and the grants apply to the next token request; the rules of create hold', async () => {
    const service = await registerService(env, 'Updating PSP');
    expect((await clientCredentials(service, 'payments:write')).body.error).toBe('invalid_scope');

    const widened = await cli(env, 'partner', 'update', service.clientId, '--scope', 'payments:read payments:write');
    expect(widened.code).toBe(0);
    expect(widened.json.scope).toBe('payments:read payments:write');
    const write = await clientCredentials(service, 'payments:write');
    expect(write.status).toBe(200);
    expect(await introspectAs(server.url, introspector, write.body.access_token)).toEqual(
      expect.objectContaining({ active: true, scope: 'payments:write' }),
    );

    expect((await cli(env, 'partner', 'update', service.clientId, '--scope', 'payments:write')).code).toBe(0);
    expect((await clientCredentials(service, 'payments:read')).body.error).toBe('invalid_scope');

    // the same validation as create, on the partner as it would become
    const refused = await cli(env, 'partner', 'update', service.clientId, '--grant', 'authorization_code');
    expect(refused).toEqual(expect.objectContaining({ code: 1, stdout: '' }));
    expect(refused.stderr).toMatch(/needs at least one --redirect-uri/);
    expect((await cli(env, 'partner', 'update', service.clientId, '--scope', 'nosuch:scope')).stderr).toMatch(/belongs to no resource/);
    expect((await cli(env, 'partner', 'update', service.clientId, '--name', ' ')).code).toBe(2);
    expect((await cli(env, 'partner', 'update', 'ptn_nobody', '--name', 'X')).stderr).toMatch(/no partner/);

    const switched = await cli(
      env,
      'partner',
      'update',
      service.clientId,
      '--name',
      'Updated PSP',
      '--grant',
      'authorization_code',
      '--redirect-uri',
      'https://psp.example/cb',
    );
    expect(switched.json).toEqual(
      expect.objectContaining({
        name: 'Updated PSP',
        grant_types: ['authorization_code', 'refresh_token'],
        redirect_uris: ['https://psp.example/cb'],
      }),
    );
    // oidc-provider's answer for a grant the client is not registered for
    expect((await clientCredentials(service, 'payments:write')).body).toEqual({
      error: 'invalid_request',
      error_description: 'requested grant type is not allowed for this client',
    });
  });

  test('duplicate names are refused (case and spaces aside) unless --allow-duplicate-name, on create and on rename', async () => {
    await registerService(env, 'Unique Bank');
    const again = await cli(env, 'partner', 'create', '--name', 'unique  BANK', '--scope', 'payments:read');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/a partner named "unique {2}BANK" exists \(ptn_.*\).*--allow-duplicate-name/);
    const allowed = await cli(env, 'partner', 'create', '--name', 'Unique Bank', '--scope', 'payments:read', '--allow-duplicate-name');
    expect(allowed.code).toBe(0);
    // a namesake made with the flag still blocks a third without it
    const other = await registerService(env, 'Other Bank');
    expect((await cli(env, 'partner', 'update', other.clientId, '--name', 'Unique Bank')).stderr).toMatch(/exists/);
    expect((await cli(env, 'partner', 'update', other.clientId, '--name', 'Unique Bank', '--allow-duplicate-name')).code).toBe(0);
    expect((await cli(env, 'partner', 'update', other.clientId, '--name', 'Other Bank')).code).toBe(0); // its own name back
  });

  test('concurrent creates with one name: exactly one succeeds', async () => {
    const outcomes = await withConnections(RACERS, (dbs) =>
      Promise.allSettled(
        dbs.map((db) => createPartner(db, { name: 'Racing Bank', scopes: ['payments:read'], grantTypes: [], redirectUris: [] }, BY_CLI)),
      ),
    );
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1);
    for (const outcome of outcomes.filter((o) => o.status === 'rejected'))
      expect(outcome.reason).toEqual(expect.objectContaining({ message: expect.stringMatching(/exists/) }));
    expect(Number((await server.db('partners').where({ name: 'Racing Bank' }).count({ n: '*' }))[0].n)).toBe(1);
  });

  test('concurrent renames to one name: exactly one succeeds', async () => {
    const racers: App[] = [];
    for (let i = 0; i < RACERS; i += 1) racers.push(await registerService(env, `Renamed Bank ${i}`));
    const outcomes = await withConnections(RACERS, (dbs) =>
      Promise.allSettled(dbs.map((db, i) => updatePartnerDetails(db, racers[i].clientId, { name: 'Renamed Bank' }, BY_CLI))),
    );
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1);
    expect(Number((await server.db('partners').where({ name: 'Renamed Bank' }).count({ n: '*' }))[0].n)).toBe(1);
  });
});

describe(`partner delete (${ENGINE})`, () => {
  test('deletes the partner with its grants and tokens: every token is refused at once', async () => {
    const app = await registerApp(env, { name: 'Deleted Budgeting' });
    const service = await registerService(env, 'Deleted PSP');
    const person = await personTokens(server.url, env, app);
    const machine = (await clientCredentials(service)).body.access_token as string;
    expect(await introspectAs(server.url, introspector, person.access_token)).toEqual(expect.objectContaining({ active: true }));

    for (const partner of [app, service]) {
      const deleted = await cli(env, 'partner', 'delete', partner.clientId);
      expect(deleted).toEqual(expect.objectContaining({ code: 0, json: { client_id: partner.clientId, deleted: true } }));
      expect(await rowsOf('client_id', partner.clientId)).toBe(0);
      expect((await cli(env, 'partner', 'show', partner.clientId)).stderr).toMatch(/no partner/);
    }
    expect(await introspectAs(server.url, introspector, person.access_token)).toEqual({ active: false });
    expect(await introspectAs(server.url, introspector, machine)).toEqual({ active: false });
    expect((await refresh(app, person.refresh_token)).status).toBe(401); // invalid_client: it no longer exists
    expect((await clientCredentials(service)).body.error).toBe('invalid_client');
    expect((await cli(env, 'grant', 'list', '--user', person.username)).json).toEqual([]);
    expect((await cli(env, 'partner', 'delete', service.clientId)).code).toBe(1);
  });

  test("an API's introspector is not deleted behind the API's back", async () => {
    const refused = await cli(env, 'partner', 'delete', introspector.clientId);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/introspects tokens for https:\/\/api\.bank\.test\/payments.*--no-introspector/);
  });

  test('delete racing token requests: no 500, and no token issued around it is honoured afterwards', async () => {
    const service = await registerService(env, 'Raced PSP');
    const requests = Array.from({ length: 12 }, () => clientCredentials(service));
    const deleted = cli(env, 'partner', 'delete', service.clientId);
    const answers = await Promise.all(requests);
    expect(await deleted).toEqual(expect.objectContaining({ code: 0, stderr: '' }));
    for (const answer of answers) expect([200, 401]).toContain(answer.status);
    for (const answer of answers.filter((a) => a.status === 200))
      expect(await introspectAs(server.url, introspector, answer.body.access_token as string)).toEqual({ active: false });
    expect((await clientCredentials(service)).body.error).toBe('invalid_client');
  });
});

describe(`people (${ENGINE})`, () => {
  test('user enable reverses user disable', async () => {
    const app = await registerApp(env, { name: 'Enable Budgeting' });
    const { username } = await authorize(server.url, env, app);
    expect((await cli(env, 'user', 'disable', username)).json.status).toBe('disabled');
    expect((await cli(env, 'user', 'enable', username)).json.status).toBe('active');
    expect((await cli(env, 'user', 'enable', 'nobody-here')).stderr).toMatch(/no user/);
  });

  test('user set-password: the rules of create; the person is signed out everywhere; the new password works, the old does not', async () => {
    const app = await registerApp(env, { name: 'Password Budgeting' });
    const person = await personTokens(server.url, env, app);
    const setPassword = (password: string, name = person.username) =>
      cliWithInput(env, password, 'user', 'set-password', name, '--password-stdin');

    expect((await setPassword('short')).stderr).toMatch(/at least/);
    expect((await setPassword(PASSWORD)).stderr).toMatch(/current one/);
    expect((await cli(env, 'user', 'set-password', person.username)).code).toBe(2); // --password-stdin is required
    expect(await introspectAs(server.url, introspector, person.access_token)).toEqual(expect.objectContaining({ active: true }));

    const changed = await setPassword('a different horse, battery and staple');
    expect(changed.code).toBe(0);
    expect(changed.json).toEqual(expect.objectContaining({ username: person.username, signed_out: true }));
    expect(await rowsOf('account_id', person.accountId)).toBe(0); // sessions, grants, tokens
    expect(await introspectAs(server.url, introspector, person.access_token)).toEqual({ active: false });
    expect((await refresh(app, person.refresh_token)).body.error).toBe('invalid_grant');
    expect(await passwordStep(app, person.username, PASSWORD)).toMatch(/refused at "Sign in"/);
    expect(await passwordStep(app, person.username, 'a different horse, battery and staple')).toMatch(/refused at "Two-step verification"/);
  });
});

describe(`grants (${ENGINE})`, () => {
  test('grant list shows who gave which partner what, never a token; grant revoke takes the grant and its tokens', async () => {
    const app = await registerApp(env, { name: 'Granted Budgeting' });
    const person = await personTokens(server.url, env, app);
    const listed = await cli(env, 'grant', 'list', '--user', person.username);
    expect(listed.json).toEqual([
      expect.objectContaining({
        user: person.username,
        account_id: person.accountId,
        client_id: app.clientId,
        partner: 'Granted Budgeting',
        scope: 'openid payments:read',
        resources: { [API]: 'payments:read' },
        granted_at: expect.stringMatching(/^\d{4}-/),
        live_tokens: 2, // the refresh token and the opaque access token
      }),
    ]);
    for (const secret of [person.access_token, person.refresh_token]) expect(listed.stdout).not.toContain(secret);
    expect((await cli(env, 'grant', 'list', '--partner', app.clientId)).json.map((g: { id: string }) => g.id)).toEqual([listed.json[0].id]);
    expect((await cli(env, 'grant', 'list', '--user', 'nobody-here')).stderr).toMatch(/no user/);
    expect((await cli(env, 'grant', 'list', '--partner', 'ptn_nobody')).stderr).toMatch(/no partner/);

    const revoked = await cli(env, 'grant', 'revoke', listed.json[0].id);
    expect(revoked.code).toBe(0);
    expect(await introspectAs(server.url, introspector, person.access_token)).toEqual({ active: false });
    expect((await refresh(app, person.refresh_token)).body.error).toBe('invalid_grant');
    expect((await cli(env, 'grant', 'list', '--user', person.username)).json).toEqual([]);
    expect((await cli(env, 'grant', 'revoke', listed.json[0].id)).stderr).toMatch(/no grant/);
    expect((await cli(env, 'grant', 'revoke', 'x\u0000y')).code).toBe(1);
  });

  test('grant revoke racing a refresh of the same grant: whatever the refresh issued is dead afterwards', async () => {
    const app = await registerApp(env, { name: 'Raced Budgeting' });
    // one grant per racer, each refreshed while it is being revoked (sequential sign-ins: each hashes a password)
    const people = [];
    for (let i = 0; i < RACERS; i += 1) people.push(await personTokens(server.url, env, app));
    const grantIds = await Promise.all(
      people.map(async (person) => ((await cli(env, 'grant', 'list', '--user', person.username)).json as Array<{ id: string }>)[0].id),
    );
    const [refreshes, revokes] = await Promise.all([
      Promise.all(people.map((person) => refresh(app, person.refresh_token))),
      Promise.all(grantIds.map((id) => cli(env, 'grant', 'revoke', id))),
    ]);
    for (const revoked of revokes) expect(revoked).toEqual(expect.objectContaining({ code: 0, stderr: '' }));
    for (const answer of refreshes) expect([200, 400]).toContain(answer.status);
    for (const [i, answer] of refreshes.entries()) {
      expect(await introspectAs(server.url, introspector, people[i].access_token)).toEqual({ active: false });
      if (answer.status !== 200) continue;
      expect(await introspectAs(server.url, introspector, answer.body.access_token as string)).toEqual({ active: false });
      expect((await refresh(app, answer.body.refresh_token as string)).body.error).toBe('invalid_grant');
    }
  }, 60_000);
});

/** How far a sign-in with this password gets (a wrong TOTP code stops it at the second factor at best). */
async function passwordStep(app: App, username: string, password: string): Promise<string> {
  const url = new URL(`${server.url}/auth`);
  url.search = new URLSearchParams({
    client_id: app.clientId,
    response_type: 'code',
    redirect_uri: REDIRECT,
    scope: 'openid payments:read',
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    code_challenge_method: 'S256',
  }).toString();
  try {
    await httpLogin({ authorizationUrl: url, redirectUri: REDIRECT, username, password, code: () => '000000' });
    return 'signed in';
  } catch (error) {
    return (error as Error).message;
  }
}
