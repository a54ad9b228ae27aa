// Jest globalTeardown: drops the schemas this run made on PostgreSQL (see pg.setup.ts).
import knexFactory from 'knex';

export default async function teardown(): Promise<void> {
  const base = process.env.PORTCULLIS_TEST_PG;
  const run = process.env.PORTCULLIS_TEST_RUN;
  if (!base || !run) return;
  const db = knexFactory({ client: 'pg', connection: base, pool: { min: 0, max: 1 } });
  try {
    const rows = (await db.raw('select nspname from pg_namespace where nspname like ?', [`t\\_${run}\\_%`])).rows as { nspname: string }[];
    for (const { nspname } of rows) await db.raw('DROP SCHEMA IF EXISTS ?? CASCADE', [nspname]);
  } finally {
    await db.destroy();
  }
}
