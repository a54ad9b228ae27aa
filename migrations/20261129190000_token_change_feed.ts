import type { Knex } from 'knex';

/**
 * The change feed (src/db/change-feed.ts) also tells when a stored bearer token dies before its
 * time: revoked (RFC 7009), its grant revoked, its partner suspended or deleted, its person
 * disabled, a refresh token consumed. Instances keep access tokens they have introspected in
 * memory and drop them on this. Inserts say nothing (a new token is not in any cache), nor does
 * the purge of expired rows (the condition on expires_at; an expired token is refused anyway).
 */
const MODELS = "('AccessToken', 'ClientCredentials', 'RefreshToken')";
const SQLITE_NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";

export async function up(knex: Knex): Promise<void> {
  if (knex.client.config.client === 'sqlite3') {
    for (const operation of ['UPDATE', 'DELETE'])
      await knex.raw(
        `CREATE TRIGGER oidc_payloads_${operation.toLowerCase()}_change AFTER ${operation} ON oidc_payloads FOR EACH ROW ` +
          `WHEN OLD.model IN ${MODELS} AND (OLD.expires_at IS NULL OR OLD.expires_at > ${SQLITE_NOW_MS}) ` +
          `BEGIN INSERT INTO changes (topic, key, created_at) VALUES ('token', OLD.id, ${SQLITE_NOW_MS}); END`,
      );
    return;
  }
  await knex.raw(
    'CREATE TRIGGER oidc_payloads_change AFTER UPDATE OR DELETE ON oidc_payloads FOR EACH ROW ' +
      `WHEN (OLD.model IN ${MODELS} AND (OLD.expires_at IS NULL OR OLD.expires_at > (extract(epoch FROM clock_timestamp()) * 1000)::bigint)) ` +
      "EXECUTE FUNCTION portcullis_change('token', 'id')",
  );
}

export async function down(knex: Knex): Promise<void> {
  if (knex.client.config.client === 'sqlite3') {
    for (const operation of ['update', 'delete']) await knex.raw(`DROP TRIGGER IF EXISTS oidc_payloads_${operation}_change`);
    return;
  }
  await knex.raw('DROP TRIGGER IF EXISTS oidc_payloads_change ON oidc_payloads');
}
