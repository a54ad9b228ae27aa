import { createHash } from 'node:crypto';
import type { Knex } from 'knex';

// Partner names are unique unless an operator says otherwise (`--allow-duplicate-name`), decided
// by a unique index so that two racing `partner create` cannot both take one name; and a stored
// grant keeps its own id in clear (`grant list` shows it, `grant revoke` takes it).

/** The name as compared: Unicode-compatible form, spaces collapsed, case folded ("ACME  bank" = "Acme Bank"). */
function nameKey(name: string): string {
  return name.normalize('NFKC').trim().replace(/\s+/gu, ' ').toLowerCase();
}

/** The adapter keys oidc_payloads by the SHA-256 (base64url) of a model's id. */
function hashId(id: string): string {
  return createHash('sha256').update(id).digest('base64url');
}

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('partners', (t) => {
    t.string('name_key', 800)
      .notNullable()
      .defaultTo('')
      .comment('the name as compared for duplicates: NFKC, spaces collapsed, lower case');
    t.string('name_claim', 800).comment(
      'name_key when the partner holds its name alone (unique); NULL when it was made or renamed with --allow-duplicate-name',
    );
    t.index(['name_key'], 'partners_name_key_idx');
    t.unique(['name_claim'], { indexName: 'partners_name_claim_unique' });
  });
  // partners made before the rule: the oldest of each name holds it, later namesakes are duplicates allowed
  const partners: Array<{ client_id: string; name: string }> = await knex('partners')
    .select('client_id', 'name')
    .orderBy(['created_at', 'client_id']);
  const claimed = new Set<string>();
  for (const partner of partners) {
    const key = nameKey(partner.name);
    await knex('partners')
      .where({ client_id: partner.client_id })
      .update({ name_key: key, name_claim: claimed.has(key) ? null : key });
    claimed.add(key);
  }

  // Grant rows written before this migration lack their id in clear: find it among the ids that
  // consents and tokens carry (a grant nothing points to any more keeps NULL and is listed by hash)
  const known: Array<{ grant_id: string }> = await knex
    .select('grant_id')
    .from('consents')
    .union((q) => void q.select('grant_id').from('oidc_payloads').whereNotNull('grant_id'));
  for (const { grant_id: grantId } of known) {
    await knex('oidc_payloads')
      .where({ model: 'Grant', id: hashId(grantId) })
      .whereNull('grant_id')
      .update({ grant_id: grantId });
  }
}

export async function down(knex: Knex): Promise<void> {
  await knex('oidc_payloads').where({ model: 'Grant' }).update({ grant_id: null });
  await knex.schema.alterTable('partners', (t) => {
    t.dropUnique(['name_claim'], 'partners_name_claim_unique');
    t.dropIndex(['name_key'], 'partners_name_key_idx');
  });
  // a plain DROP COLUMN (SQLite 3.35+ and PostgreSQL): knex's SQLite table rebuild would cascade
  // the delete of the old table to partner_scopes
  for (const column of ['name_claim', 'name_key']) await knex.raw('ALTER TABLE ?? DROP COLUMN ??', ['partners', column]);
}
