import type { Knex } from 'knex';

// The `authorization_details` types (RFC 9396) each API accepts, with the JSON Schema a detail
// of that type must match. A type name belongs to one API, as a scope does: a partner may use it
// only if its allow-list holds a scope of that API. Deleting an API deletes its types.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('authorization_details_types', (t) => {
    t.string('type', 200).primary().comment('the RFC 9396 `type` value, e.g. payment_initiation; unique across APIs');
    t.string('resource_uri', 512)
      .notNullable()
      .references('uri')
      .inTable('resources')
      .onDelete('CASCADE')
      .comment('the API (resources.uri) that accepts details of this type');
    t.text('schema').comment('JSON Schema (JSON text) a detail must match; NULL: the schema shipped with Portcullis for this type');
    t.bigInteger('created_at').notNullable().comment('epoch milliseconds');
    t.index(['resource_uri'], 'authorization_details_types_resource_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('authorization_details_types');
}
