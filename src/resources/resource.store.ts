import type { Db } from '../db/knex.ts';

/** `jwt` tokens are validated offline (JWKS); `opaque` ones are stored, introspected and revocable. */
export type TokenFormat = 'jwt' | 'opaque';

export type Resource = Readonly<{ uri: string; scopes: readonly string[]; accessTokenTtl: number; tokenFormat: TokenFormat; introspector: string | null; isDefault: boolean; createdAt: number }>;

type Row = { uri: string; scopes: string; access_token_ttl: number; token_format: string; introspector_client_id: string | null; is_default: number | boolean; created_at: number | string };

const TABLE = 'resources';

function fromRow(row: Row): Resource {
  return {
    uri: row.uri,
    scopes: row.scopes.split(' ').filter(Boolean),
    accessTokenTtl: Number(row.access_token_ttl),
    tokenFormat: row.token_format === 'opaque' ? 'opaque' : 'jwt',
    introspector: row.introspector_client_id ?? null,
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
        token_format: resource.tokenFormat,
        introspector_client_id: resource.introspector,
        is_default: resource.isDefault,
        created_at: resource.createdAt,
      })
      .onConflict('uri')
      .merge(['scopes', 'access_token_ttl', 'token_format', 'introspector_client_id', 'is_default']);
  });
}
