import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('resources', (t) => {
    t.string('token_format', 8)
      .notNullable()
      .defaultTo('jwt')
      .comment('access token format: jwt (validated offline) or opaque (introspected; revocable)');
    t.string('introspector_client_id', 64).comment(
      "client_id of the resource server's own credential, allowed to introspect tokens for this API; NULL = only the token's client",
    );
  });

  // Secrets every instance must share (cookie-signing keys), made once by whichever instance
  // starts first: instances agree through the database and the KEK alone.
  await knex.schema.createTable('shared_secrets', (t) => {
    t.string('name', 64).primary().comment('what the secret is for, e.g. cookie_keys');
    t.text('sealed').notNullable().comment('the secret, AES-256-GCM sealed under the KEK');
    t.bigInteger('created_at').notNullable().comment('epoch milliseconds');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('shared_secrets');
  await knex.schema.alterTable('resources', (t) => {
    t.dropColumn('introspector_client_id');
    t.dropColumn('token_format');
  });
}
