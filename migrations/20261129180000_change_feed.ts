import type { Knex } from 'knex';

/**
 * The change feed (src/db/change-feed.ts): every write to a partner or an API, whoever makes it
 * (the CLI, another instance, a hand-written UPDATE), tells every instance to drop what it has
 * cached of that partner or of the APIs. Triggers, not application code, so no writer can forget.
 * PostgreSQL: NOTIFY on the channel `portcullis <schema>`, delivered at commit, in commit order.
 * SQLite (no NOTIFY): a row in `changes`, which each instance reads; rows are written under
 * SQLite's single write lock, so their ids grow in commit order.
 * SQLite drops a table's triggers when knex rebuilds the table for an ALTER: a later migration
 * that alters one of these tables must create them again (test/integration/change-feed.test.ts
 * fails if any is missing).
 */

/** table → [topic, the column whose value is the key (null: '')] */
export const WATCHED: Record<string, readonly [string, string | null]> = {
  partners: ['partner', 'client_id'],
  partner_scopes: ['partner', 'client_id'],
  resources: ['resource', 'uri'],
  resource_scopes: ['resource', 'resource_uri'],
  authorization_details_types: ['resource', 'resource_uri'],
  scope_descriptions: ['resource', null],
};

const OPERATIONS = ['INSERT', 'UPDATE', 'DELETE'] as const;

export async function up(knex: Knex): Promise<void> {
  if (knex.client.config.client === 'sqlite3') {
    await knex.schema.createTable('changes', (t) => {
      t.increments('id').primary();
      t.string('topic', 32).notNullable();
      t.string('key', 512).notNullable();
      t.bigInteger('created_at').notNullable();
    });
    for (const [table, [topic, column]] of Object.entries(WATCHED)) {
      const key = (row: string) => (column === null ? "''" : `${row}.${column}`);
      for (const operation of OPERATIONS) {
        const rows = operation === 'INSERT' ? ['NEW'] : operation === 'DELETE' ? ['OLD'] : ['OLD', 'NEW'];
        const inserts = rows
          .map(
            (r) =>
              `INSERT INTO changes (topic, key, created_at) VALUES ('${topic}', ${key(r)}, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));`,
          )
          .join(' ');
        await knex.raw(
          `CREATE TRIGGER ${table}_${operation.toLowerCase()}_change AFTER ${operation} ON ${table} FOR EACH ROW BEGIN ${inserts} END`,
        );
      }
    }
    return;
  }
  await knex.raw(`
    CREATE OR REPLACE FUNCTION portcullis_change() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      topic text := TG_ARGV[0];
      key_column text := TG_ARGV[1];
      channel text := 'portcullis ' || TG_TABLE_SCHEMA;
    BEGIN
      IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify(channel, topic || ' ' || COALESCE(to_jsonb(OLD) ->> key_column, ''));
      END IF;
      IF TG_OP <> 'DELETE' THEN
        PERFORM pg_notify(channel, topic || ' ' || COALESCE(to_jsonb(NEW) ->> key_column, ''));
      END IF;
      RETURN NULL;
    END $$`);
  for (const [table, [topic, column]] of Object.entries(WATCHED)) {
    await knex.raw(
      `CREATE TRIGGER ${table}_change AFTER INSERT OR UPDATE OR DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION portcullis_change('${topic}', '${column ?? ''}')`,
    );
  }
}

export async function down(knex: Knex): Promise<void> {
  if (knex.client.config.client === 'sqlite3') {
    for (const table of Object.keys(WATCHED))
      for (const operation of OPERATIONS) await knex.raw(`DROP TRIGGER IF EXISTS ${table}_${operation.toLowerCase()}_change`);
    await knex.schema.dropTable('changes');
    return;
  }
  for (const table of Object.keys(WATCHED)) await knex.raw(`DROP TRIGGER IF EXISTS ${table}_change ON ${table}`);
  await knex.raw('DROP FUNCTION IF EXISTS portcullis_change()');
}
