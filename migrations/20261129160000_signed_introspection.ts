import type { Knex } from 'knex';

// Signed introspection (RFC 9701, issue 11): an API may ask that every introspection answer about
// its tokens given to its introspector be a JWT signed by the server (ES256), never plain JSON.
// APIs registered before keep plain answers.

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('resources', (t) => {
    t.boolean('signed_introspection')
      .notNullable()
      .defaultTo(false)
      .comment('answers to its introspector are application/token-introspection+jwt only (RFC 9701); plain JSON is refused');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('resources', (t) => {
    t.dropColumn('signed_introspection');
  });
}
