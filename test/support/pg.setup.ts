// Jest globalSetup: one tag per test run for the PostgreSQL schemas it makes (t_<tag>_<random>,
// see freshDatabaseUrl); pg.teardown.ts drops them when the run ends.
import { randomBytes } from 'node:crypto';

export default async function setup(): Promise<void> {
  if (!process.env.PORTCULLIS_TEST_PG) {
    process.stdout.write('\nPostgreSQL suite skipped: set PORTCULLIS_TEST_PG=postgres://… (or run .ci/run) to run it.\n');
    return;
  }
  process.env.PORTCULLIS_TEST_RUN ??= randomBytes(4).toString('hex');
}
