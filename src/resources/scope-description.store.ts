import type { Db } from '../db/knex.ts';

const TABLE = 'scope_descriptions';

export async function saveScopeDescriptions(db: Db, descriptions: Readonly<Record<string, string>>): Promise<void> {
  const rows = Object.entries(descriptions).map(([scope, description]) => ({ scope, description }));
  if (rows.length) await db(TABLE).insert(rows).onConflict('scope').merge(['description']);
}

export async function findScopeDescriptions(db: Db, scopes: readonly string[]): Promise<Map<string, string>> {
  if (scopes.length === 0) return new Map();
  const rows = await db<{ scope: string; description: string }>(TABLE).whereIn('scope', [...scopes]);
  return new Map(rows.map((row) => [row.scope, row.description]));
}
