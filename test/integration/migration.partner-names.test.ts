import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import type { Db } from '../../src/db/knex.ts';
import { TEST_PG_URL } from '../support/harness.ts';
import { databaseBefore } from '../support/migrations.ts';

// 20261129130000_partner_names_grant_ids on rows written before it: the oldest partner of a name
// holds it and later namesakes become allowed duplicates; Grant rows get their id in clear from
// consents and tokens; down removes both.

const ENGINE = TEST_PG_URL ? 'postgres' : 'sqlite';
const THIS = '20261129130000_partner_names_grant_ids.ts';

let db: Db;
let config: Knex.MigratorConfig;
let drop: () => Promise<void>;

beforeAll(async () => {
  ({ db, config, drop } = await databaseBefore(THIS));
});

afterAll(async () => {
  await drop();
});

const hash = (id: string) => createHash('sha256').update(id).digest('base64url');

test(`up backfills name keys and grant ids; down removes them (${ENGINE})`, async () => {
  const partner = (id: string, name: string, at: number) => ({
    client_id: id,
    name,
    secret_hash: null,
    grant_types: '[]',
    redirect_uris: '[]',
    status: 'active',
    created_at: at,
    updated_at: at,
  });
  await db('partners').insert([partner('p1', 'Acme Bank', 1), partner('p2', 'ACME  bank', 2), partner('p3', 'Other', 3)]);
  const payload = (model: string, id: string, grantId: string | null) => ({
    model,
    id,
    payload: '{}',
    grant_id: grantId,
    client_id: 'p1',
    account_id: 'usr_1',
  });
  await db('oidc_payloads').insert([
    payload('Grant', hash('g-consented'), null),
    payload('Grant', hash('g-tokens'), null),
    payload('Grant', hash('g-orphan'), null),
    payload('RefreshToken', hash('rt'), 'g-tokens'),
  ]);
  await db('resources').insert({ uri: 'https://api.test/a', access_token_ttl: 600, is_default: true, created_at: 1 });
  await db('resource_scopes').insert({ resource_uri: 'https://api.test/a', scope: 'a:read' });
  await db('partner_scopes').insert({ client_id: 'p1', resource_uri: 'https://api.test/a', scope: 'a:read' });
  await db('consents').insert({ account_id: 'usr_1', client_id: 'p1', grant_id: 'g-consented', updated_at: 1 });

  await db.migrate.up(config);
  expect(await db('partners').select('client_id', 'name_key', 'name_claim').orderBy('client_id')).toEqual([
    { client_id: 'p1', name_key: 'acme bank', name_claim: 'acme bank' },
    { client_id: 'p2', name_key: 'acme bank', name_claim: null },
    { client_id: 'p3', name_key: 'other', name_claim: 'other' },
  ]);
  const grants = await db('oidc_payloads').where({ model: 'Grant' }).select('id', 'grant_id');
  expect(Object.fromEntries(grants.map((row: { id: string; grant_id: string | null }) => [row.id, row.grant_id]))).toEqual({
    [hash('g-consented')]: 'g-consented',
    [hash('g-tokens')]: 'g-tokens',
    [hash('g-orphan')]: null,
  });
  await expect(db('partners').insert({ ...partner('p4', 'x', 4), name_key: 'other', name_claim: 'other' })).rejects.toThrow();

  await db.migrate.down(config);
  expect(Object.keys((await db('partners').first()) as object)).not.toContain('name_claim');
  // the allow-lists survive the column drops (a SQLite table rebuild would have cascaded to them)
  expect(await db('partner_scopes').select('client_id', 'scope')).toEqual([{ client_id: 'p1', scope: 'a:read' }]);
  expect((await db('oidc_payloads').where({ model: 'Grant' }).whereNotNull('grant_id')).length).toBe(0);
});
