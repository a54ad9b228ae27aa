import type { Knex } from 'knex';

// The audit log (issue 12): security events, append-only, each row chained to the one before by
// SHA-256 (src/audit/audit.service.ts). `seq` is the primary key and is assigned by the append
// under a table-wide write lock, so all instances write one order and a lost race cannot leave two
// rows with one seq. Nothing here is a secret: no token, code, password, TOTP seed or key.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('audit_log', (t) => {
    t.bigInteger('seq').primary().comment('1, 2, 3… with no gap: a missing number is a deleted row');
    t.bigInteger('at').notNullable().comment('epoch milliseconds of the event');
    t.string('actor', 200).notNullable().comment('who: cli, person:<account id>, partner:<client_id> or anonymous');
    t.string('action', 64).notNullable().comment('what, e.g. partner.create, signin.failure, token.reuse');
    t.string('target', 300).comment('what it was done to (a client_id, an API URI, an account id, a key id); NULL = none');
    t.string('source_ip', 64).comment('the client address (HTTP events; NULL from the CLI)');
    t.string('request_id', 128).comment('the X-Request-Id of the request (HTTP events; NULL from the CLI)');
    t.text('details').notNullable().comment('JSON object: more about the event, never a secret');
    t.string('prev_hash', 64).notNullable().comment('hash of the row before (64 zeros for seq 1)');
    t.string('hash', 64)
      .notNullable()
      .comment('SHA-256 hex of prev_hash followed by the canonical JSON (RFC 8785) of this row without hash');
    t.index(['at'], 'audit_log_at_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('audit_log');
}
