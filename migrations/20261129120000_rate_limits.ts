import type { Knex } from 'knex';

// Counters of rate-limiter-flexible (RateLimiterPostgres / RateLimiterSQLite with storeType
// 'knex', tableCreated: true): the columns are the ones those classes read and write. Every
// instance on one database shares them, so a limit holds across instances.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('rate_limits', (t) => {
    t.string('key', 255).primary().comment('limit name and what it counts, e.g. login_ip:203.0.113.7 (usernames only as an HMAC)');
    t.integer('points').notNullable().defaultTo(0).comment('attempts counted in the current window');
    t.bigInteger('expire').comment('epoch milliseconds when the window ends and the count starts again; NULL = never');
    t.index(['expire'], 'rate_limits_expire_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('rate_limits');
}
