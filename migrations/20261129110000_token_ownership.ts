import type { Knex } from 'knex';

// Who a stored token belongs to, and which API each scope (and each partner's allow-list entry)
// belongs to. Bulk revocation (partner suspended, person disabled) deletes by owner in one
// statement; allow-lists are (resource, scope) pairs, so a scope name that moves to another API
// is never inherited.

type PayloadOwner = { client_id: string | null; account_id: string | null };

function isPostgres(knex: Knex): boolean {
  return knex.client.config.client === 'pg';
}

function words(text: string | null | undefined): string[] {
  return [...new Set((text ?? '').split(' ').filter(Boolean))];
}

async function insertInBatches(knex: Knex, table: string, rows: readonly object[]): Promise<void> {
  for (let at = 0; at < rows.length; at += 200) await knex(table).insert(rows.slice(at, at + 200));
}

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('oidc_payloads', (t) => {
    t.string('client_id', 255).comment('client the row belongs to (tokens, codes, grants): deleted together when the partner is suspended');
    t.string('account_id', 255).comment(
      'person the row belongs to (tokens, codes, grants, sessions): deleted together when the person is disabled',
    );
    t.index(['client_id']);
    t.index(['account_id']);
  });
  // rows written before this migration: the owner is in their JSON payload
  const owner: Record<keyof PayloadOwner, Knex.Raw> = isPostgres(knex)
    ? { client_id: knex.raw("payload::jsonb ->> 'clientId'"), account_id: knex.raw("payload::jsonb ->> 'accountId'") }
    : { client_id: knex.raw("json_extract(payload, '$.clientId')"), account_id: knex.raw("json_extract(payload, '$.accountId')") };
  await knex('oidc_payloads').update(owner);

  // Read the flat lists before their columns go (SQLite rebuilds a table to drop a column: that
  // must happen before any table references it).
  const resources: Array<{ uri: string; scopes: string }> = await knex('resources').select('uri', 'scopes').orderBy('uri');
  const partners: Array<{ client_id: string; scopes: string }> = await knex('partners').select('client_id', 'scopes');
  const owners = new Map<string, string>();
  for (const resource of resources) {
    for (const scope of words(resource.scopes)) {
      const other = owners.get(scope);
      if (other)
        throw new Error(
          `scope "${scope}" belongs to both ${other} and ${resource.uri}: remove it from one (resources.scopes) and migrate again`,
        );
      owners.set(scope, resource.uri);
    }
  }
  await knex.schema.alterTable('resources', (t) => t.dropColumn('scopes'));
  await knex.schema.alterTable('partners', (t) => t.dropColumn('scopes'));

  await knex.schema.createTable('resource_scopes', (t) => {
    t.string('resource_uri', 512)
      .notNullable()
      .references('uri')
      .inTable('resources')
      .onDelete('CASCADE')
      .comment('the API (resources.uri) that defines the scope');
    t.string('scope', 100)
      .notNullable()
      .unique()
      .comment('scope name; unique across APIs, so consent words and audit lines name one thing');
    t.primary(['resource_uri', 'scope']);
  });
  await knex.schema.createTable('partner_scopes', (t) => {
    t.string('client_id', 64).notNullable().references('client_id').inTable('partners').onDelete('CASCADE').comment('the partner allowed');
    t.string('resource_uri', 512).notNullable().comment('the API the permission is for');
    t.string('scope', 100).notNullable().comment('the scope of that API the partner may be given');
    t.primary(['client_id', 'resource_uri', 'scope']);
    // a scope removed from its API leaves every allow-list with it
    t.foreign(['resource_uri', 'scope']).references(['resource_uri', 'scope']).inTable('resource_scopes').onDelete('CASCADE');
    t.index(['resource_uri', 'scope']);
  });

  await insertInBatches(
    knex,
    'resource_scopes',
    [...owners].map(([scope, uri]) => ({ resource_uri: uri, scope })),
  );
  // a listed scope that no API defines grants nothing today; kept, it would be inherited by the
  // next API to define that name: dropped
  const pairs = partners.flatMap((partner) =>
    words(partner.scopes).flatMap((scope) =>
      owners.has(scope) ? [{ client_id: partner.client_id, resource_uri: owners.get(scope)!, scope }] : [],
    ),
  );
  await insertInBatches(knex, 'partner_scopes', pairs);
}

export async function down(knex: Knex): Promise<void> {
  const resourceScopes: Array<{ resource_uri: string; scope: string }> = await knex('resource_scopes')
    .select('resource_uri', 'scope')
    .orderBy('scope');
  const partnerScopes: Array<{ client_id: string; scope: string }> = await knex('partner_scopes')
    .select('client_id', 'scope')
    .orderBy('scope');
  await knex.schema.dropTable('partner_scopes');
  await knex.schema.dropTable('resource_scopes');

  await knex.schema.alterTable('resources', (t) =>
    t.text('scopes').notNullable().defaultTo('').comment('space-separated scopes this API defines'),
  );
  await knex.schema.alterTable('partners', (t) =>
    t.text('scopes').notNullable().defaultTo('').comment('space-separated allow-list of resource scopes'),
  );
  const group = <K extends string>(rows: Array<Record<K, string> & { scope: string }>, key: K) => {
    const map = new Map<string, string[]>();
    for (const row of rows) map.set(row[key], [...(map.get(row[key]) ?? []), row.scope]);
    return map;
  };
  for (const [uri, scopes] of group(resourceScopes, 'resource_uri'))
    await knex('resources')
      .where({ uri })
      .update({ scopes: scopes.join(' ') });
  for (const [clientId, scopes] of group(partnerScopes, 'client_id'))
    await knex('partners')
      .where({ client_id: clientId })
      .update({ scopes: scopes.join(' ') });

  await knex.schema.alterTable('oidc_payloads', (t) => {
    t.dropIndex(['account_id']);
    t.dropIndex(['client_id']);
    t.dropColumn('account_id');
    t.dropColumn('client_id');
  });
}
