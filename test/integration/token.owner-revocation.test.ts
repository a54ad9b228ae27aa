import { cli, TEST_PG_URL } from '../support/harness.ts';
import type { InProcessServer } from '../support/in-process.ts';
import {
  introspectAs,
  personTokens,
  registerApp,
  registerService,
  startWithIntrospectedApi,
  tokenCall,
  type App,
} from '../support/person-flow.ts';

// Suspended and disabled mean now (issue 8, item 4): a suspended partner's and a disabled
// person's tokens introspect inactive at once, whoever asks, and their grants, refresh tokens,
// opaque access tokens (and the person's sessions) are deleted.

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

describe(`a suspended partner's tokens die at once (${ENGINE})`, () => {
  test('partner suspend: its person-bound and client-credentials tokens introspect inactive (no 500), its refresh token is refused, and resume brings none back', async () => {
    const app = await registerApp(env, { name: 'Suspended Budgeting' });
    const service = await registerService(env, 'Suspended PSP');
    const person = await personTokens(server.url, env, app);
    const machine = (await clientCredentials(service)).body.access_token as string;
    expect(await introspectAs(server.url, introspector, person.access_token)).toEqual(
      expect.objectContaining({ active: true, client_id: app.clientId, sub: person.accountId }),
    );
    expect(await introspectAs(server.url, introspector, machine)).toEqual(
      expect.objectContaining({ active: true, client_id: service.clientId }),
    );

    for (const partner of [app, service]) expect((await cli(env, 'partner', 'suspend', partner.clientId)).json.status).toBe('suspended');
    expect(await introspectAs(server.url, introspector, person.access_token)).toEqual({ active: false });
    expect(await introspectAs(server.url, introspector, machine)).toEqual({ active: false });
    expect(await rowsOf('client_id', app.clientId)).toBe(0); // grant, refresh token, access token
    expect(await rowsOf('client_id', service.clientId)).toBe(0);

    for (const partner of [app, service]) expect((await cli(env, 'partner', 'resume', partner.clientId)).json.status).toBe('active');
    expect(await introspectAs(server.url, introspector, person.access_token)).toEqual({ active: false });
    expect(await introspectAs(server.url, introspector, machine)).toEqual({ active: false });
    expect((await refresh(app, person.refresh_token)).body.error).toBe('invalid_grant');
    const fresh = (await clientCredentials(service)).body.access_token as string;
    expect(await introspectAs(server.url, introspector, fresh)).toEqual(expect.objectContaining({ active: true }));
  });

  test('introspection checks the partner every time: a token that outlived the revocation (written by a request in flight) is inactive while the partner is suspended, and resume revokes it', async () => {
    const app = await registerApp(env, { name: 'Racing Budgeting' });
    const service = await registerService(env, 'Racing PSP');
    const person = await personTokens(server.url, env, app);
    const machine = (await clientCredentials(service)).body.access_token as string;
    // the status alone, as if these rows were written just after the suspension deleted the others
    await server.db('partners').whereIn('client_id', [app.clientId, service.clientId]).update({ status: 'suspended' });
    await server.settle(); // the change feed has told the server's partner cache (a hand-written UPDATE too)
    expect(await introspectAs(server.url, introspector, person.access_token)).toEqual({ active: false });
    expect(await introspectAs(server.url, introspector, machine)).toEqual({ active: false });
    await server.db('partners').whereIn('client_id', [app.clientId, service.clientId]).update({ status: 'active' });
    await server.settle();
    expect(await introspectAs(server.url, introspector, person.access_token)).toEqual(expect.objectContaining({ active: true })); // the cache was told
    // `partner resume` revokes such leftovers: nothing from before the suspension comes back
    await server.db('partners').whereIn('client_id', [app.clientId, service.clientId]).update({ status: 'suspended' });
    await server.settle();
    for (const partner of [app, service]) expect((await cli(env, 'partner', 'resume', partner.clientId)).json.status).toBe('active');
    expect(await introspectAs(server.url, introspector, person.access_token)).toEqual({ active: false });
    expect(await introspectAs(server.url, introspector, machine)).toEqual({ active: false });
    expect((await refresh(app, person.refresh_token)).body.error).toBe('invalid_grant');
    // resuming an active partner changes nothing
    const kept = (await clientCredentials(service)).body.access_token as string;
    expect((await cli(env, 'partner', 'resume', service.clientId)).code).toBe(0);
    expect(await introspectAs(server.url, introspector, kept)).toEqual(expect.objectContaining({ active: true }));
  });

  test('suspension while 20 token requests are in flight: every token issued is inactive afterwards, and after resume', async () => {
    const service = await registerService(env, 'Busy PSP');
    const requests = Array.from({ length: 20 }, () => clientCredentials(service));
    const suspended = cli(env, 'partner', 'suspend', service.clientId);
    const answers = await Promise.all(requests);
    expect((await suspended).code).toBe(0);
    const issued = answers.filter((answer) => answer.status === 200).map((answer) => answer.body.access_token as string);
    const refused = answers.filter((answer) => answer.status !== 200).map((answer) => answer.body.error);
    expect(issued.length + refused.length).toBe(20);
    expect(new Set(refused)).toEqual(new Set(refused.length ? ['invalid_client'] : []));
    const states = async () => Promise.all(issued.map(async (token) => (await introspectAs(server.url, introspector, token)).active));
    expect(await states()).toEqual(issued.map(() => false));
    await cli(env, 'partner', 'resume', service.clientId);
    expect(await states()).toEqual(issued.map(() => false));
  });
});

describe(`a disabled person's tokens die at once (${ENGINE})`, () => {
  test('user disable: tokens inactive, refresh refused, sessions and grants deleted', async () => {
    const app = await registerApp(env, { name: 'Person Budgeting' });
    const person = await personTokens(server.url, env, app);
    expect(await rowsOf('account_id', person.accountId)).toBeGreaterThanOrEqual(3); // session, grant, tokens
    expect(await introspectAs(server.url, app, person.access_token)).toEqual(
      expect.objectContaining({ active: true, sub: person.accountId }),
    );
    expect((await cli(env, 'user', 'disable', person.username)).json.status).toBe('disabled');
    expect(await introspectAs(server.url, app, person.access_token)).toEqual({ active: false });
    expect(await introspectAs(server.url, introspector, person.access_token)).toEqual({ active: false });
    expect((await refresh(app, person.refresh_token)).body.error).toBe('invalid_grant');
    expect(await rowsOf('account_id', person.accountId)).toBe(0);
  });

  test('introspection checks the person every time: a disabled account without the revocation is inactive too', async () => {
    const app = await registerApp(env, { name: 'Checked Budgeting' });
    const person = await personTokens(server.url, env, app);
    await server.db('users').where({ id: person.accountId }).update({ status: 'disabled' });
    expect(await introspectAs(server.url, app, person.access_token)).toEqual({ active: false });
    expect(await introspectAs(server.url, introspector, person.access_token)).toEqual({ active: false });
  });
});

describe(`who may introspect (${ENGINE})`, () => {
  test('an --introspector must be a confidential partner: a public one is refused with one line', async () => {
    const pub = await registerApp(env, { name: 'Pocket', public: true });
    for (const argv of [
      ['resource', 'create', '--uri', 'https://api.bank.test/cards', '--scope', 'cards:read', '--introspector', pub.clientId],
      ['resource', 'update', '--uri', API, '--introspector', pub.clientId],
    ]) {
      const result = await cli(env, ...argv);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/public partner .*confidential/);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect((await cli(env, 'resource', 'list')).json.find((r: { uri: string }) => r.uri === API).introspector).toBe(introspector.clientId);
  });

  test('a public client cannot introspect: not its own tokens, nor as the introspector of an API (a row from before the check)', async () => {
    const pub = await registerApp(env, { name: 'Pocket Wallet', public: true });
    const own = await personTokens(server.url, env, pub);
    expect(await introspectAs(server.url, pub, own.access_token)).toEqual({ active: false });
    expect(await introspectAs(server.url, pub, own.refresh_token)).toEqual({ active: false });
    // an API whose introspector row names the public client (as written before the check existed)
    const observed = 'https://api.bank.test/observed';
    await cli(env, 'resource', 'create', '--uri', observed, '--scope', 'observed:read', '--format', 'opaque');
    await server.db('resources').where({ uri: observed }).update({ introspector_client_id: pub.clientId });
    const service = await registerService(env, 'Observed PSP', 'observed:read');
    const machine = (await tokenCall(server.url, service, { grant_type: 'client_credentials', scope: 'observed:read', resource: observed }))
      .body.access_token as string;
    expect(await introspectAs(server.url, pub, machine)).toEqual({ active: false });
    expect(await introspectAs(server.url, service, machine)).toEqual(expect.objectContaining({ active: true, aud: observed }));
  });
});
