import { isNullOr, type Db } from '../db/knex.ts';

export type SigningKeyRow = {
  kid: string;
  alg: string;
  public_jwk: string;
  private_jwk: string;
  rotation_slot: number;
  created_at: number;
  activates_at: number;
  retires_at: number | null;
  removed_at: number | null;
  revoked_at: number | null;
};

/** As the drivers return it: PostgreSQL gives bigint columns as strings. */
type StoredRow = Pick<SigningKeyRow, 'kid' | 'alg' | 'public_jwk' | 'private_jwk'> & {
  rotation_slot: number | string;
  created_at: number | string;
  activates_at: number | string;
  retires_at: number | string | null;
  removed_at: number | string | null;
  revoked_at: number | string | null;
};

const TABLE = 'signing_keys';

function normalise(row: StoredRow): SigningKeyRow {
  const num = (value: number | string | null) => (value === null ? null : Number(value));
  return {
    ...row,
    rotation_slot: Number(row.rotation_slot),
    created_at: Number(row.created_at),
    activates_at: Number(row.activates_at),
    retires_at: num(row.retires_at),
    removed_at: num(row.removed_at),
    revoked_at: num(row.revoked_at),
  };
}

export async function listKeys(db: Db): Promise<SigningKeyRow[]> {
  const rows = await db<StoredRow>(TABLE).select('*').orderBy('activates_at', 'asc').orderBy('rotation_slot', 'asc');
  return rows.map(normalise);
}

export async function countKeys(db: Db): Promise<number> {
  const row = await db(TABLE).count({ n: '*' }).first();
  return Number(row?.n ?? 0);
}

/** Inserts unless another instance already filled the rotation slot; true when this one won. */
export async function insertKey(db: Db, row: SigningKeyRow): Promise<boolean> {
  const inserted = await db(TABLE).insert(row).onConflict('rotation_slot').ignore().returning('kid');
  return Array.isArray(inserted) && inserted.length > 0 && (inserted as unknown[])[0] !== 0;
}

export async function findKey(db: Db, kid: string): Promise<SigningKeyRow | undefined> {
  const row = await db<StoredRow>(TABLE).where({ kid }).first();
  return row ? normalise(row) : undefined;
}

/** Sets when a key stops signing and leaves the JWKS. Racing instances write the same values. */
export async function setRetirement(db: Db, kid: string, times: { retires_at: number | null; removed_at: number | null }): Promise<void> {
  await db(TABLE).where({ kid }).update(times);
}

/** Revokes a key: it stops signing and leaves the JWKS at `at`. A second revocation keeps the first time. */
export async function markRevoked(db: Db, kid: string, at: number): Promise<void> {
  await db(TABLE).where({ kid }).whereNull('revoked_at').update({ revoked_at: at, removed_at: at });
  await db(TABLE)
    .where({ kid })
    .where('activates_at', '<=', at)
    .where(isNullOr('retires_at', '>', at))
    .update({ retires_at: at });
}

/** Replaces the sealed private key if it is still `expected` (another rewrap may have won). */
export async function replaceSealedKey(db: Db, kid: string, expected: string, sealed: string): Promise<boolean> {
  return (await db(TABLE).where({ kid, private_jwk: expected }).update({ private_jwk: sealed })) > 0;
}
