import { createDb, type Db } from '../../src/db/knex.ts';
import { WATCHED } from '../../migrations/20261129180000_change_feed.ts';
import { cli, freshDatabaseUrl, instanceEnv, seedPartner, tempDir, TEST_PG_URL } from '../support/harness.ts';
import type { SeededPartner } from '../support/http.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import { cliProcess } from '../support/process.ts';
import { basic, form } from '../support/http.ts';
import { introspect } from '../support/scale.ts';

// Partners and APIs are kept in each instance's memory (issue 14) and dropped when any writer
// changes their rows: PostgreSQL NOTIFY, SQLite `changes` rows (src/db/change-feed.ts).
// "Suspended means now" across three instances on one database.
const ENGINE = TEST_PG_URL ? 'postgres' : 'sqlite';
const OPAQUE = 'https://api.bank.test/reports';

let env: Record<string, string>;
let instances: InProcessServer[];
let partner: SeededPartner;
let db: Db;

beforeAll(async () => {
  const dir = tempDir();
  env = instanceEnv(dir, freshDatabaseUrl(dir), { LOG_LEVEL: 'info' });
  partner = await seedPartner(env);
  instances = [];
  for (let i = 0; i < 3; i++) instances.push(await startInProcess(env));
  db = instances[0].db;
}, 60_000);
afterAll(async () => {
  await Promise.all(instances.map((instance) => instance.stop()));
});

const tokenStatus = async (instance: InProcessServer, scope = 'payments:read') => {
  const res = await fetch(`${instance.local}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(partner.clientId, partner.clientSecret) },
    body: form({ grant_type: 'client_credentials', scope, resource: scope.startsWith('reports') ? OPAQUE : partner.uri }),
  });
  const body = (await res.json()) as { access_token?: string; error?: string };
  return { status: res.status, error: body.error, token: body.access_token };
};

test(`every watched table has its change triggers (${ENGINE})`, async () => {
  const names: string[] =
    ENGINE === 'sqlite'
      ? (await db('sqlite_master').where({ type: 'trigger' }).select('name')).map((row: { name: string }) => row.name)
      : (
          await db.raw<{ rows: Array<{ tgname: string }> }>(
            'SELECT tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND NOT t.tgisinternal',
          )
        ).rows.map((row) => row.tgname);
  const expected = Object.keys(WATCHED).flatMap((table) =>
    ENGINE === 'sqlite' ? ['insert', 'update', 'delete'].map((op) => `${table}_${op}_change`) : [`${table}_change`],
  );
  // stored bearer tokens: their deaths only (migrations/20261129190000_token_change_feed.ts)
  expected.push(...(ENGINE === 'sqlite' ? ['oidc_payloads_update_change', 'oidc_payloads_delete_change'] : ['oidc_payloads_change']));
  expect(names).toEqual(expect.arrayContaining(expected));
});

test(`partners come from memory: repeated token requests read no partner row (${ENGINE})`, async () => {
  const [instance] = instances;
  expect((await tokenStatus(instance)).status).toBe(200); // loads it
  const queries: string[] = [];
  const seen = (query: { sql: string }) => queries.push(query.sql);
  instance.db.on('query', seen);
  for (let i = 0; i < 10; i++) expect((await tokenStatus(instance)).status).toBe(200);
  instance.db.off('query', seen);
  expect(queries.filter((sql) => sql.includes('partners'))).toEqual([]);
});

test(`a suspension by the CLI applies on all three instances, with 30 token requests in flight; resume brings nothing back (${ENGINE})`, async () => {
  await cli(env, 'resource', 'create', '--uri', OPAQUE, '--scope', 'reports:read', '--format', 'opaque');
  await cli(env, 'partner', 'update', partner.clientId, '--scope', 'payments:read reports:read');
  for (const instance of instances) expect((await tokenStatus(instance)).status).toBe(200); // cached everywhere
  const inFlight = Array.from({ length: 30 }, (_, i) => tokenStatus(instances[i % 3], i % 2 ? 'reports:read' : 'payments:read'));
  const suspended = cli(env, 'partner', 'suspend', partner.clientId); // settles the three when it returns
  const answers = await Promise.all(inFlight);
  expect((await suspended).code).toBe(0);
  expect(new Set(answers.filter((a) => a.status !== 200).map((a) => a.error))).toEqual(
    new Set(answers.some((a) => a.status !== 200) ? ['invalid_client'] : []),
  );
  for (const instance of instances)
    expect(await tokenStatus(instance)).toEqual(expect.objectContaining({ status: 401, error: 'invalid_client' }));
  // opaque tokens issued in the race are dead whoever asks, now and after resume
  const opaque = answers.filter((a) => a.status === 200 && !a.token?.includes('.')).map((a) => a.token!);
  const introspector = await seedPartner(env, { allowed: 'reports:read', name: 'Reports Desk' });
  await cli(env, 'resource', 'update', '--uri', OPAQUE, '--introspector', introspector.clientId);
  for (const token of opaque) expect(await introspect(instances[1].local, introspector, token)).toEqual({ active: false });
  await cli(env, 'partner', 'resume', partner.clientId);
  for (const token of opaque) expect(await introspect(instances[2].local, introspector, token)).toEqual({ active: false });
  for (const instance of instances) expect((await tokenStatus(instance)).status).toBe(200);
});

test(`a change made by another process reaches every instance without being asked (${ENGINE})`, async () => {
  for (const instance of instances) expect((await tokenStatus(instance)).status).toBe(200);
  expect((await cliProcess(env, 'partner', 'suspend', partner.clientId)).code).toBe(0); // no settle: a process of its own
  // each instance learns of it by itself (fs.watch / NOTIFY); bounded by attempts, not by a clock
  for (const instance of instances) {
    let refused = false;
    for (let attempt = 0; attempt < 200 && !refused; attempt++) {
      refused = (await tokenStatus(instance)).status === 401;
      if (!refused) await new Promise((resolve) => setTimeout(resolve, 25));
    }
    expect(refused).toBe(true);
  }
  await cli(env, 'partner', 'resume', partner.clientId);
});

test(`an API change applies at once: a scope removed from an API is refused on every instance (${ENGINE})`, async () => {
  for (const instance of instances) expect((await tokenStatus(instance, 'reports:read')).status).toBe(200);
  await cli(env, 'resource', 'update', '--uri', OPAQUE, '--scope', 'reports:list');
  for (const instance of instances) expect((await tokenStatus(instance, 'reports:read')).error).toBe('invalid_scope');
});

(ENGINE === 'postgres' ? test : test.skip)(
  'PostgreSQL: while the listening connection is down, lookups read the database; back, caches are used again',
  async () => {
    const [instance] = instances;
    expect((await tokenStatus(instance)).status).toBe(200);
    const admin = createDb(TEST_PG_URL!);
    try {
      const schema = (await db.raw<{ rows: Array<{ s: string }> }>('SELECT current_schema() AS s')).rows[0].s;
      const since = instance.logs().length;
      await admin.raw('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ? ', [
        `portcullis change feed ${schema}`.slice(0, 63),
      ]);
      await instance.log.next(/change feed: lost its database connection/, { since });
      // a change the feed cannot tell: the database is read instead of the cache
      await db('partners').where({ client_id: partner.clientId }).update({ status: 'suspended' });
      expect((await tokenStatus(instance)).error).toBe('invalid_client');
      await db('partners').where({ client_id: partner.clientId }).update({ status: 'active' });
      expect((await tokenStatus(instance)).status).toBe(200);
      await instance.log.next(/change feed: listening again/, { since });
      await db('partners').where({ client_id: partner.clientId }).update({ status: 'suspended' });
      await instance.settle();
      expect((await tokenStatus(instance)).error).toBe('invalid_client');
    } finally {
      await db('partners').where({ client_id: partner.clientId }).update({ status: 'active' });
      await admin.destroy();
    }
  },
);

describe(`introspected access tokens are kept, and dropped when they die (${ENGINE})`, () => {
  let introspector: SeededPartner;
  const opaqueTokens = async (count: number) =>
    Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const answer = await tokenStatus(instances[i % 3], 'reports:read');
        expect(answer.status).toBe(200);
        return answer.token!;
      }),
    );
  const activeEverywhere = async (tokens: string[]) =>
    Promise.all(
      instances.flatMap((instance) => tokens.map(async (token) => (await introspect(instance.local, introspector, token)).active)),
    );

  beforeAll(async () => {
    await cli(env, 'resource', 'update', '--uri', OPAQUE, '--scope', 'reports:read');
    await cli(env, 'partner', 'update', partner.clientId, '--scope', 'payments:read reports:read');
    introspector = await seedPartner(env, { allowed: 'reports:read', name: 'Token Desk' });
    await cli(env, 'resource', 'update', '--uri', OPAQUE, '--introspector', introspector.clientId);
  });

  test('introspecting a token again reads no token row', async () => {
    const [token] = await opaqueTokens(1);
    const [instance] = instances;
    expect((await introspect(instance.local, introspector, token)).active).toBe(true);
    const queries: string[] = [];
    const seen = (query: { sql: string }) => queries.push(query.sql);
    instance.db.on('query', seen);
    for (let i = 0; i < 5; i++) expect((await introspect(instance.local, introspector, token)).active).toBe(true);
    instance.db.off('query', seen);
    expect(queries.filter((sql) => sql.includes('oidc_payloads'))).toEqual([]);
  });

  test('20 tokens known to all three instances, revoked at once across them: inactive everywhere', async () => {
    const tokens = await opaqueTokens(20);
    expect(new Set(await activeEverywhere(tokens))).toEqual(new Set([true])); // now in every cache
    const revocations = await Promise.all(
      tokens.map((token, i) =>
        fetch(`${instances[i % 3].local}/token/revocation`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(partner.clientId, partner.clientSecret) },
          body: form({ token }),
        }).then((res) => res.status),
      ),
    );
    expect(new Set(revocations)).toEqual(new Set([200]));
    await Promise.all(instances.map((instance) => instance.settle()));
    expect(new Set(await activeEverywhere(tokens))).toEqual(new Set([false]));
  });

  test('tokens known to all three instances die with their partner’s suspension, and stay dead after resume', async () => {
    const tokens = await opaqueTokens(6);
    expect(new Set(await activeEverywhere(tokens))).toEqual(new Set([true]));
    await cli(env, 'partner', 'suspend', partner.clientId); // settles the three
    expect(new Set(await activeEverywhere(tokens))).toEqual(new Set([false]));
    await cli(env, 'partner', 'resume', partner.clientId);
    expect(new Set(await activeEverywhere(tokens))).toEqual(new Set([false]));
  });
});
