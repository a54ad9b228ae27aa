import type { Db } from '../db/knex.ts';

export type SharedSecretRow = { name: string; sealed: string; created_at: number };

const TABLE = 'shared_secrets';
/** As the drivers return it: PostgreSQL gives a bigint column as text. */
type StoredRow = Omit<SharedSecretRow, 'created_at'> & { created_at: number | string };

export async function findSharedSecret(db: Db, name: string): Promise<SharedSecretRow | undefined> {
  const row = await db<StoredRow>(TABLE).where({ name }).first();
  return row ? { name: row.name, sealed: row.sealed, created_at: Number(row.created_at) } : undefined;
}

/** Inserts unless a row with this name exists: the first of several racing instances wins. */
export async function insertSharedSecretIfAbsent(db: Db, row: SharedSecretRow): Promise<void> {
  await db(TABLE).insert(row).onConflict('name').ignore();
}

export async function listSharedSecrets(db: Db): Promise<SharedSecretRow[]> {
  return (await db<StoredRow>(TABLE).select('*').orderBy('name')).map((row) => ({ name: row.name, sealed: row.sealed, created_at: Number(row.created_at) }));
}


/** Replaces the sealed value only if it is still `expected`: of racing writers, one wins (true). */
export async function swapSealedSecret(db: Db, name: string, expected: string, sealed: string): Promise<boolean> {
  return (await db(TABLE).where({ name, sealed: expected }).update({ sealed })) > 0;
}
