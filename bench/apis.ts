import { createDb } from '../src/db/knex.ts';

/** The two APIs every side-by-side benchmark registers: JWT access tokens, and opaque ones (introspected). */
export const JWT_API = { uri: 'https://api.bench.test/payments', scope: 'payments:read' };
export const OPAQUE_API = { uri: 'https://api.bench.test/reports', scope: 'reports:read' };

type Partner = { client_id: string; client_secret: string };

/**
 * Registers both APIs and one partner allowed both, with `run` (a `portcullis` command: this
 * checkout's CLI in process, or another checkout's as a process); the partner's credentials.
 */
export async function seedApis(run: (argv: string[]) => unknown): Promise<Partner> {
  await run(['resource', 'create', '--uri', JWT_API.uri, '--scope', JWT_API.scope, '--default']);
  await run(['resource', 'create', '--uri', OPAQUE_API.uri, '--scope', OPAQUE_API.scope, '--format', 'opaque']);
  return (await run(['partner', 'create', '--name', 'Bench Bank', '--scope', `${JWT_API.scope} ${OPAQUE_API.scope}`])) as Partner;
}

/** Drops a benchmark's PostgreSQL schema. */
export async function dropSchema(pgUrl: string, schema: string): Promise<void> {
  const db = createDb(pgUrl);
  try {
    await db.raw('DROP SCHEMA IF EXISTS ?? CASCADE', [schema]);
  } finally {
    await db.destroy();
  }
}
