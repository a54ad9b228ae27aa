import { BY_CLI } from '../../src/audit/audit.service.ts';
import { createDb, type Db } from '../../src/db/knex.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createClientDirectory, createPartner, setPartnerStatus } from '../../src/partners/partner.service.ts';
import { createResource } from '../../src/resources/resource.service.ts';
import { freshDatabaseUrl, tempDir } from '../support/harness.ts';

let db: Db;
let clientId: string;

beforeAll(async () => {
  db = createDb(freshDatabaseUrl(tempDir()));
  await migrate(db);
  await createResource(db, { uri: 'https://api.bank.test/p', scopes: ['p:read'], isDefault: true }, BY_CLI);
  clientId = (await createPartner(db, { name: 'Coalesced', scopes: ['p:read'], grantTypes: [], redirectUris: [] }, BY_CLI)).client_id;
});
afterAll(() => db.destroy());

test('concurrent lookups of one client share one query; the next lookup sees a change', async () => {
  const find = createClientDirectory(db).metadata;
  let queries = 0;
  const count = () => {
    queries += 1;
  };
  db.on('query', count);
  const answers = await Promise.all(Array.from({ length: 20 }, () => find(clientId)));
  expect(queries).toBe(1);
  expect(new Set(answers).size).toBe(1);
  expect(answers[0]?.client_id).toBe(clientId);

  await setPartnerStatus(db, clientId, 'suspended', BY_CLI);
  queries = 0;
  expect(await find(clientId)).toBeUndefined(); // no cache: suspension applies at once
  expect(queries).toBe(1);
  db.off('query', count);
});

test('a failed lookup is not remembered', async () => {
  const broken = createDb(freshDatabaseUrl(tempDir()));
  const find = createClientDirectory(broken).metadata; // not migrated: the table is missing
  await expect(find('x')).rejects.toThrow();
  await migrate(broken);
  expect(await find('x')).toBeUndefined();
  await broken.destroy();
});
