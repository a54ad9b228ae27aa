import type { Db } from '../db/knex.ts';

/** An `authorization_details` type an API accepts; `schema` null: the schema shipped for it. */
export type DetailsType = Readonly<{ type: string; resourceUri: string; schema: string | null }>;

/** What `resource create` / `update` registers for one type (the API is the one written). */
export type DetailsTypeInput = Readonly<{ type: string; schema: string | null }>;

type Row = { type: string; resource_uri: string; schema: string | null; created_at: number | string };

const TABLE = 'authorization_details_types';

const fromRow = (row: Row): DetailsType => ({ type: row.type, resourceUri: row.resource_uri, schema: row.schema ?? null });

export async function findDetailsType(db: Db, type: string): Promise<DetailsType | undefined> {
  const row = await db<Row>(TABLE).where({ type }).first();
  return row && fromRow(row);
}

/** Every registered type, by name. */
export async function listDetailsTypes(db: Db): Promise<DetailsType[]> {
  return (await db<Row>(TABLE).select('*').orderBy('type')).map(fromRow);
}

/** type name → the URI of the API that accepts it, for the names given that some API accepts. */
export async function findDetailsTypeOwners(db: Db, types: readonly string[]): Promise<Map<string, string>> {
  if (types.length === 0) return new Map();
  const rows = await db<Row>(TABLE)
    .select('type', 'resource_uri')
    .whereIn('type', [...types]);
  return new Map(rows.map((row) => [row.type, row.resource_uri]));
}

/**
 * Makes `types` the API's whole list, inside the caller's transaction: the others it had are
 * deleted, the ones given written (a type of another API fails on the primary key).
 */
export async function replaceDetailsTypes(trx: Db, uri: string, types: readonly DetailsTypeInput[], now: number): Promise<void> {
  const names = types.map((entry) => entry.type);
  await trx(TABLE).where({ resource_uri: uri }).whereNotIn('type', names).delete();
  for (const entry of types) {
    const updated = await trx(TABLE).where({ type: entry.type, resource_uri: uri }).update({ schema: entry.schema });
    if (updated === 0) await trx(TABLE).insert({ type: entry.type, resource_uri: uri, schema: entry.schema, created_at: now });
  }
}
