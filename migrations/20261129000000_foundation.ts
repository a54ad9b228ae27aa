import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Everything oidc-provider stores, one row per model instance.
  await knex.schema.createTable('oidc_payloads', (t) => {
    t.string('model', 64).notNullable().comment('oidc-provider model name (AccessToken, Session, Grant, …)');
    t.string('id', 64).notNullable().comment('base64url SHA-256 of the instance id: bearer values are never stored in clear');
    t.text('payload').notNullable().comment('JSON payload as given by oidc-provider (jti removed where the id is a bearer value)');
    t.string('grant_id', 255).comment('for revokeByGrantId');
    t.string('uid', 255).comment('Session uid, for findByUid');
    t.string('user_code', 255).comment('DeviceCode user code, for findByUserCode');
    t.bigInteger('expires_at').comment('epoch milliseconds after which the row may be purged; NULL = kept');
    t.bigInteger('consumed_at').comment('epoch milliseconds when consumed (codes, refresh tokens)');
    t.primary(['model', 'id']);
    t.index(['grant_id']);
    t.index(['uid']);
    t.index(['user_code']);
    t.index(['expires_at']);
  });

  await knex.schema.createTable('resources', (t) => {
    t.string('uri', 512).primary().comment('resource indicator (RFC 8707) = access token audience');
    t.text('scopes').notNullable().comment('space-separated scopes this API defines');
    t.integer('access_token_ttl').notNullable().comment('access token lifetime, seconds');
    t.boolean('is_default').notNullable().defaultTo(false).comment('used when a token request names no resource');
    t.bigInteger('created_at').notNullable().comment('epoch milliseconds');
  });

  await knex.schema.createTable('partners', (t) => {
    t.string('client_id', 64).primary().comment('OAuth client_id');
    t.string('name', 200).notNullable().comment('institution name shown to people');
    t.string('secret_hash', 128).comment('sha256:<base64url> of the client secret; NULL for public clients');
    t.text('scopes').notNullable().comment('space-separated allow-list of resource scopes');
    t.text('grant_types').notNullable().comment('JSON array of OAuth grant types');
    t.text('redirect_uris').notNullable().comment('JSON array of redirect URIs');
    t.string('status', 16).notNullable().defaultTo('active').comment('active | suspended');
    t.bigInteger('created_at').notNullable().comment('epoch milliseconds');
    t.bigInteger('updated_at').notNullable().comment('epoch milliseconds');
  });

  await knex.schema.createTable('signing_keys', (t) => {
    t.string('kid', 64).primary().comment('RFC 7638 thumbprint of the public key');
    t.string('alg', 16).notNullable().comment('JWS algorithm (ES256)');
    t.text('public_jwk').notNullable().comment('public JWK as JSON');
    t.text('private_jwk').notNullable().comment('private JWK, AES-256-GCM sealed under the KEK');
    t.bigInteger('rotation_slot').notNullable().unique().comment('one key per rotation period: racing instances collide here');
    t.bigInteger('created_at').notNullable().comment('epoch milliseconds');
    t.bigInteger('activates_at').notNullable().comment('epoch milliseconds from which it signs');
    t.bigInteger('retires_at').comment('epoch milliseconds from which it no longer signs');
    t.bigInteger('removed_at').comment('epoch milliseconds from which it leaves the JWKS');
    t.bigInteger('revoked_at').comment('epoch milliseconds of an emergency revocation');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('signing_keys');
  await knex.schema.dropTable('partners');
  await knex.schema.dropTable('resources');
  await knex.schema.dropTable('oidc_payloads');
}
