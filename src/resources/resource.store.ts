import type { Db } from '../db/knex.ts';

export type Resource = Readonly<{ uri: string; scopes: readonly string[]; accessTokenTtl: number; isDefault: boolean; createdAt: number }>;

type Row = { uri: string; scopes: string; access_token_ttl: number; is_default: number | boolean; created_at: number | string };

const TABLE = 'resources';

function fromRow(row: Row): Resource {
  return {
    uri: row.uri,
    scopes: row.scopes.split(' ').filter(Boolean),
    accessTokenTtl: Number(row.access_token_ttl),
    isDefault: Boolean(row.is_default),
    createdAt: Number(row.created_at),
  };
}

export async function findResource(db: Db, uri: string): Promise<Resource | undefined> {
  const row = await db(TABLE).where({ uri }).first();
  return row ? fromRow(row) : undefined;
}

export async function findDefaultResource(db: Db): Promise<Resource | undefined> {
  const row = await db(TABLE).where({ is_default: true }).first();
  return row ? fromRow(row) : undefined;
}

export async function listResources(db: Db): Promise<Resource[]> {
  return (await db(TABLE).select('*').orderBy('uri')).map(fromRow);
}

/** Inserts or replaces; `isDefault` moves the default mark here, in one transaction. */
export async function saveResource(db: Db, resource: Resource): Promise<void> {
  await db.transaction(async (trx) => {
    if (resource.isDefault) await trx(TABLE).update({ is_default: false });
    await trx(TABLE)
      .insert({
        uri: resource.uri,
        scopes: resource.scopes.join(' '),
        access_token_ttl: resource.accessTokenTtl,
        is_default: resource.isDefault,
        created_at: resource.createdAt,
      })
      .onConflict('uri')
      .merge(['scopes', 'access_token_ttl', 'is_default']);
  });
}
