import type { Knex } from 'knex';

// Out-of-band enrolment codes (no authenticator is bound on a password alone) and the cap on
// second-factor codes per login. Password hashes move to argon2id in place (same column).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('users', (t) => {
    t.string('enrolment_code_hash', 64).comment(
      'base64url SHA-256 of the one-time enrolment code (about 80 random bits); NULL = none outstanding',
    );
    t.bigInteger('enrolment_code_expires_at').comment('epoch milliseconds after which the enrolment code is refused');
  });
  await knex.schema.alterTable('login_states', (t) => {
    t.integer('attempts')
      .notNullable()
      .defaultTo(0)
      .comment('codes checked in this step of this login; at the cap the row goes and the password is asked again');
    t.string('enrolment_code_hash', 64).comment(
      'hash of the enrolment code this browser gave (stage enrol_confirm), checked again when the authenticator is bound',
    );
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('login_states', (t) => {
    t.dropColumn('enrolment_code_hash');
    t.dropColumn('attempts');
  });
  await knex.schema.alterTable('users', (t) => {
    t.dropColumn('enrolment_code_expires_at');
    t.dropColumn('enrolment_code_hash');
  });
}
