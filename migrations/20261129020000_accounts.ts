import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // People who log in (partner apps act for them; admins are people with a flag).
  await knex.schema.createTable('users', (t) => {
    t.string('id', 64).primary().comment('stable subject identifier (the ID token `sub`)');
    t.string('username', 64).notNullable().unique().comment('login name, lower-cased');
    t.text('password_hash').notNullable().comment('scrypt$N,r,p$salt$hash: the parameters travel with the hash');
    t.text('totp_secret').comment('base32 TOTP secret sealed under the KEK; NULL = enrolment due at next login');
    t.bigInteger('totp_last_step').comment('last accepted RFC 6238 time step: that step and older are refused');
    t.boolean('is_admin').notNullable().defaultTo(false).comment('may use the admin console');
    t.string('status', 16).notNullable().defaultTo('active').comment('active | disabled');
    t.integer('failed_passwords').notNullable().defaultTo(0).comment('consecutive wrong passwords since the last success or lock');
    t.integer('failed_second_factors').notNullable().defaultTo(0).comment('consecutive wrong TOTP / recovery codes');
    t.integer('lock_count').notNullable().defaultTo(0).comment('locks so far without a successful login: the lock period grows with it');
    t.bigInteger('locked_until').comment('epoch milliseconds until which every login attempt is refused');
    t.bigInteger('created_at').notNullable().comment('epoch milliseconds');
    t.bigInteger('updated_at').notNullable().comment('epoch milliseconds');
  });

  await knex.schema.createTable('recovery_codes', (t) => {
    t.string('user_id', 64).notNullable().references('id').inTable('users').onDelete('CASCADE').comment('owner');
    t.string('code_hash', 64).notNullable().comment('base64url SHA-256 of the normalised code (codes carry 80 random bits)');
    t.bigInteger('used_at').comment('epoch milliseconds of its one use; NULL = unused');
    t.primary(['user_id', 'code_hash']);
  });

  // "Password verified, second factor due": bound to one interaction and one browser.
  await knex.schema.createTable('login_states', (t) => {
    t.string('interaction_uid', 64).primary().comment('oidc-provider interaction uid');
    t.string('browser_hash', 64).notNullable().comment('SHA-256 of the random value in the browser-binding cookie');
    t.string('user_id', 64).notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.string('stage', 16).notNullable().comment('second_factor | enrol | enrolled');
    t.text('pending_secret').comment('sealed TOTP secret offered during enrolment, not yet confirmed');
    t.bigInteger('expires_at').notNullable().comment('epoch milliseconds: the interaction expiry');
    t.index(['expires_at']);
  });

  // Consent given by a person to a partner, remembered across sessions until the grant goes.
  await knex.schema.createTable('consents', (t) => {
    t.string('account_id', 64).notNullable();
    t.string('client_id', 64).notNullable();
    t.string('grant_id', 255).notNullable().comment('oidc-provider Grant id; when that grant is revoked, consent is asked again');
    t.bigInteger('updated_at').notNullable().comment('epoch milliseconds');
    t.primary(['account_id', 'client_id']);
  });

  // Words shown on the consent page for each resource scope.
  await knex.schema.createTable('scope_descriptions', (t) => {
    t.string('scope', 100).primary().comment('resource scope name');
    t.string('description', 300).notNullable().comment('what the scope lets a partner do, in words for people');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('scope_descriptions');
  await knex.schema.dropTable('consents');
  await knex.schema.dropTable('login_states');
  await knex.schema.dropTable('recovery_codes');
  await knex.schema.dropTable('users');
}
