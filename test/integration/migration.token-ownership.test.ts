import type { Knex } from 'knex';
import type { Db } from '../../src/db/knex.ts';
import { TEST_PG_URL } from '../support/harness.ts';
import { databaseBefore } from '../support/migrations.ts';

// 20261129110000_token_ownership on a database holding rows written before it: owners are
// backfilled from the JSON payloads, flat scope lists become (API, scope) rows, and down restores.

const ENGINE = TEST_PG_URL ? 'postgres' : 'sqlite';
const THIS = '20261129110000_token_ownership.ts';
let db: Db;
let config: Knex.MigratorConfig;
let drop: () => Promise<void>;

beforeAll(async () => {
  ({ db, config, drop } = await databaseBefore(THIS));
});

afterAll(async () => {
  await drop();
});

test(`up backfills owners and allow-list pairs; down restores the flat lists (${ENGINE})`, async () => {
  await db('resources').insert([
    { uri: 'https://api.test/a', scopes: 'a:read a:write', access_token_ttl: 600, is_default: true, created_at: 1 },
    { uri: 'https://api.test/b', scopes: 'b:read', access_token_ttl: 600, is_default: false, created_at: 1 },
  ]);
  const partner = (id: string, scopes: string) => ({
    client_id: id,
    name: id,
    secret_hash: null,
    scopes,
    grant_types: '[]',
    redirect_uris: '[]',
    status: 'active',
    created_at: 1,
    updated_at: 1,
  });
  await db('partners').insert([partner('p1', 'a:read b:read'), partner('p2', 'a:write gone:scope')]);
  const row = (model: string, id: string, payload: object) => ({
    model,
    id,
    payload: JSON.stringify(payload),
    grant_id: null,
    expires_at: null,
    consumed_at: null,
  });
  await db('oidc_payloads').insert([
    row('AccessToken', 'at', { clientId: 'p1', accountId: 'usr_1', kind: 'AccessToken' }),
    row('Session', 'se', { accountId: 'usr_1', uid: 'u' }),
    row('ClientCredentials', 'cc', { clientId: 'p2' }),
    row('ReplayDetection', 'rd', { iss: 'p2' }),
  ]);

  await db.migrate.up(config);

  const owners = await db('oidc_payloads').select('id', 'client_id', 'account_id').orderBy('id');
  expect(owners).toEqual([
    { id: 'at', client_id: 'p1', account_id: 'usr_1' },
    { id: 'cc', client_id: 'p2', account_id: null },
    { id: 'rd', client_id: null, account_id: null },
    { id: 'se', client_id: null, account_id: 'usr_1' },
  ]);
  expect(await db('resource_scopes').select('resource_uri', 'scope').orderBy('scope')).toEqual([
    { resource_uri: 'https://api.test/a', scope: 'a:read' },
    { resource_uri: 'https://api.test/a', scope: 'a:write' },
    { resource_uri: 'https://api.test/b', scope: 'b:read' },
  ]);
  // a listed name no API defines is dropped: it would otherwise be inherited by the next API to define it
  expect(await db('partner_scopes').select('client_id', 'resource_uri', 'scope').orderBy(['client_id', 'scope'])).toEqual([
    { client_id: 'p1', resource_uri: 'https://api.test/a', scope: 'a:read' },
    { client_id: 'p1', resource_uri: 'https://api.test/b', scope: 'b:read' },
    { client_id: 'p2', resource_uri: 'https://api.test/a', scope: 'a:write' },
  ]);
  // removing a scope from its API removes it from every allow-list (ON DELETE CASCADE)
  await db('resource_scopes').where({ scope: 'a:read' }).delete();
  expect(await db('partner_scopes').where({ scope: 'a:read' })).toEqual([]);

  await db.migrate.down(config);
  expect(await db('resources').select('uri', 'scopes').orderBy('uri')).toEqual([
    { uri: 'https://api.test/a', scopes: 'a:write' },
    { uri: 'https://api.test/b', scopes: 'b:read' },
  ]);
  expect(await db('partners').select('client_id', 'scopes').orderBy('client_id')).toEqual([
    { client_id: 'p1', scopes: 'b:read' },
    { client_id: 'p2', scopes: 'a:write' },
  ]);
  expect(Object.keys(await db('oidc_payloads').columnInfo())).not.toContain('client_id');
});
