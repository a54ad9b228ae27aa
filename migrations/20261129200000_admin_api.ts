import type { Knex } from 'knex';

// The admin API (issue 12): the built-in API it is (a `resources` row made at start, which
// `resource update` refuses to change), a version stamp on APIs for If-Match, and indexes for the
// paged lists (partners by name, the audit log filtered by actor, action or target, newest first).
// ADD COLUMN on SQLite is done in place (no table rebuild), so the change-feed triggers on
// `resources` stay.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('resources', (t) => {
    t.boolean('built_in')
      .notNullable()
      .defaultTo(false)
      .comment('made by Portcullis itself (the admin API): not changed by `resource update`');
    t.bigInteger('updated_at')
      .notNullable()
      .defaultTo(0)
      .comment('epoch milliseconds of the last change (0: never changed): the ETag, compared in the UPDATE of If-Match');
  });
  await knex('resources').update({ updated_at: knex.ref('created_at') });
  await knex.schema.alterTable('partners', (t) => {
    t.index(['name', 'client_id'], 'partners_name_page_idx');
  });
  await knex.schema.alterTable('audit_log', (t) => {
    t.index(['actor', 'seq'], 'audit_log_actor_idx');
    t.index(['action', 'seq'], 'audit_log_action_idx');
    t.index(['target', 'seq'], 'audit_log_target_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('audit_log', (t) => {
    t.dropIndex(['actor', 'seq'], 'audit_log_actor_idx');
    t.dropIndex(['action', 'seq'], 'audit_log_action_idx');
    t.dropIndex(['target', 'seq'], 'audit_log_target_idx');
  });
  await knex.schema.alterTable('partners', (t) => {
    t.dropIndex(['name', 'client_id'], 'partners_name_page_idx');
  });
  await knex.schema.alterTable('resources', (t) => {
    t.dropColumn('updated_at');
    t.dropColumn('built_in');
  });
  // SQLite rebuilt `resources` to drop the columns, and its change-feed triggers went with it
  if (knex.client.config.client === 'sqlite3') {
    const now = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";
    const rows = { INSERT: ['NEW'], UPDATE: ['OLD', 'NEW'], DELETE: ['OLD'] } as const;
    for (const [operation, names] of Object.entries(rows)) {
      const inserts = names.map((r) => `INSERT INTO changes (topic, key, created_at) VALUES ('resource', ${r}.uri, ${now});`).join(' ');
      await knex.raw(`DROP TRIGGER IF EXISTS resources_${operation.toLowerCase()}_change`);
      await knex.raw(
        `CREATE TRIGGER resources_${operation.toLowerCase()}_change AFTER ${operation} ON resources FOR EACH ROW BEGIN ${inserts} END`,
      );
    }
  }
}
