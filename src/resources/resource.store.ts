import { nextVersion, type Db } from '../db/knex.ts';
import { replaceDetailsTypes, type DetailsTypeInput } from './details-type.store.ts';

/** `jwt` tokens are validated offline (JWKS); `opaque` ones are stored, introspected and revocable. */
export type TokenFormat = 'jwt' | 'opaque';

export type Resource = Readonly<{
  uri: string;
  scopes: readonly string[];
  accessTokenTtl: number;
  tokenFormat: TokenFormat;
  introspector: string | null;
  /** answers to its introspector are signed JWTs only (RFC 9701) */
  signedIntrospection: boolean;
  isDefault: boolean;
  createdAt: number;
  /** made by Portcullis itself (the admin API): `resource update` refuses to change it */
  builtIn: boolean;
  /** epoch ms of the last change (its creation, if never changed): the admin API's ETag */
  updatedAt: number;
}>;

/** What `resource update` may change; absent fields stay as they are. */
export type ResourceChange = Partial<{
  scopes: readonly string[];
  accessTokenTtl: number;
  tokenFormat: TokenFormat;
  introspector: string | null;
  signedIntrospection: boolean;
  isDefault: true;
  /** the API's whole list of `authorization_details` types (an empty list drops them) */
  detailsTypes: readonly DetailsTypeInput[];
}>;

type Row = {
  uri: string;
  access_token_ttl: number;
  token_format: string;
  introspector_client_id: string | null;
  /** SQLite gives 0/1 */
  signed_introspection: number | boolean;
  is_default: number | boolean;
  created_at: number | string;
  built_in: number | boolean;
  updated_at: number | string;
};

type ScopeRow = { resource_uri: string; scope: string };
type PermissionRow = { client_id: string; scope: string };

/** Partners' allow-lists: (partner, API, scope), referring to resource_scopes. */
const PERMISSIONS = 'partner_scopes';

const TABLE = 'resources';
/** One row per scope, unique across APIs; partner allow-lists (partner_scopes) refer to these rows. */
const SCOPES = 'resource_scopes';
/** Consent words per scope (scope-description.store.ts). */
const DESCRIPTIONS = 'scope_descriptions';

function fromRow(row: Row, scopes: readonly string[]): Resource {
  return {
    uri: row.uri,
    scopes,
    accessTokenTtl: row.access_token_ttl,
    tokenFormat: row.token_format === 'opaque' ? 'opaque' : 'jwt',
    introspector: row.introspector_client_id ?? null,
    signedIntrospection: Boolean(row.signed_introspection),
    isDefault: Boolean(row.is_default),
    createdAt: Number(row.created_at),
    builtIn: Boolean(row.built_in),
    updatedAt: Number(row.updated_at),
  };
}

async function withScopes(db: Db, rows: Row[]): Promise<Resource[]> {
  if (rows.length === 0) return [];
  const scopeRows = await db<ScopeRow>(SCOPES)
    .select('resource_uri', 'scope')
    .whereIn(
      'resource_uri',
      rows.map((row) => row.uri),
    )
    .orderBy('scope');
  return rows.map((row) =>
    fromRow(
      row,
      scopeRows.filter((scope) => scope.resource_uri === row.uri).map((scope) => scope.scope),
    ),
  );
}

export async function findResource(db: Db, uri: string): Promise<Resource | undefined> {
  return (await withScopes(db, await db<Row>(TABLE).where({ uri })))[0];
}

export async function findDefaultResource(db: Db): Promise<Resource | undefined> {
  return (await withScopes(db, await db<Row>(TABLE).where({ is_default: true }).limit(1)))[0];
}

/** How many APIs are registered (the built-in admin API included). */
export async function countResources(db: Db): Promise<number> {
  const row = await db(TABLE).count({ n: '*' }).first();
  return Number(row?.n ?? 0);
}

export async function listResources(db: Db): Promise<Resource[]> {
  return withScopes(db, await db<Row>(TABLE).select('*').orderBy('uri'));
}

/** Every scope some API defines, sorted (discovery's scopes_supported). */
export async function listScopeNames(db: Db): Promise<string[]> {
  const rows = await db<ScopeRow>(SCOPES).distinct('scope').orderBy('scope');
  return rows.map((row) => row.scope);
}

/** scope name → the URI of the API that defines it, for the names given that some API defines. */
export async function findScopeOwners(db: Db, scopes: readonly string[]): Promise<Map<string, string>> {
  if (scopes.length === 0) return new Map();
  const rows = await db<ScopeRow>(SCOPES)
    .select('resource_uri', 'scope')
    .whereIn('scope', [...scopes]);
  return new Map(rows.map((row) => [row.scope, row.resource_uri]));
}

/**
 * Inserts a new API with its scopes, in one transaction. Fails on the database's constraints
 * when the URI exists or a scope name belongs to another API (two racing creates: one wins).
 */
export async function insertResource(db: Db, resource: Resource, detailsTypes: readonly DetailsTypeInput[] = []): Promise<void> {
  await db.transaction(async (trx) => {
    if (resource.isDefault) await trx(TABLE).update({ is_default: false });
    await trx(TABLE).insert({
      uri: resource.uri,
      access_token_ttl: resource.accessTokenTtl,
      token_format: resource.tokenFormat,
      introspector_client_id: resource.introspector,
      signed_introspection: resource.signedIntrospection,
      is_default: resource.isDefault,
      created_at: resource.createdAt,
      updated_at: resource.createdAt,
    });
    await trx(SCOPES).insert(resource.scopes.map((scope) => ({ resource_uri: resource.uri, scope })));
    if (detailsTypes.length) await replaceDetailsTypes(trx, resource.uri, detailsTypes, resource.createdAt);
  });
}

/**
 * Changes only the fields given, in one transaction. A scope left out of `scopes` is deleted,
 * and with it (ON DELETE CASCADE) every partner's permission for it, and its description.
 * Returns false when no API has this URI that is not built in (and, with `ifUpdatedAt`, whose
 * `updated_at` is still that: the If-Match of the admin API, decided in the UPDATE itself).
 */
export async function updateResource(
  db: Db,
  uri: string,
  change: ResourceChange,
  now: number = Date.now(),
  onlyIf: { updatedAt?: number } = {},
): Promise<boolean> {
  return db.transaction(async (trx) => {
    // a write first (the version): on SQLite the transaction then holds the write lock from its
    // start, so racing commands queue (busy timeout) instead of failing to upgrade a read lock
    const current = trx(TABLE).where({ uri, built_in: false });
    if (onlyIf.updatedAt !== undefined) void current.andWhere('updated_at', onlyIf.updatedAt);
    if ((await current.update({ updated_at: nextVersion(trx, now) })) === 0) return false;
    const fields: Record<string, unknown> = {};
    if (change.accessTokenTtl !== undefined) fields.access_token_ttl = change.accessTokenTtl;
    if (change.tokenFormat !== undefined) fields.token_format = change.tokenFormat;
    if (change.introspector !== undefined) fields.introspector_client_id = change.introspector;
    if (change.signedIntrospection !== undefined) fields.signed_introspection = change.signedIntrospection;
    if (change.isDefault) {
      await trx(TABLE).whereNot({ uri }).update({ is_default: false });
      fields.is_default = true;
    }
    if (Object.keys(fields).length) await trx(TABLE).where({ uri }).update(fields);
    if (change.scopes !== undefined) {
      const kept = [...change.scopes];
      const dropped = (await trx<ScopeRow>(SCOPES).where({ resource_uri: uri }).whereNotIn('scope', kept).select('scope')).map(
        (row) => row.scope,
      );
      if (dropped.length) {
        await trx(SCOPES).where({ resource_uri: uri }).whereIn('scope', dropped).delete();
        // its consent words too: an API that later defines the name describes it afresh
        await trx(DESCRIPTIONS).whereIn('scope', dropped).delete();
      }
      await trx(SCOPES)
        .insert(kept.map((scope) => ({ resource_uri: uri, scope })))
        .onConflict(['resource_uri', 'scope'])
        .ignore();
    }
    if (change.detailsTypes !== undefined) await replaceDetailsTypes(trx, uri, change.detailsTypes, now);
    return true;
  });
}

/**
 * The partner an API names as its introspector (column `introspector_client_id` refers to
 * `partners`): whether it exists and is confidential (authenticates with a secret, keys or a certificate). Read here, not through partners/,
 * because partners/ builds on resources/ (allow-lists name their scopes).
 */
/** An API whose introspector is `clientId`, if any. */
export async function findResourceIntrospectedBy(db: Db, clientId: string): Promise<string | undefined> {
  const row: { uri: string } | undefined = await db(TABLE).where({ introspector_client_id: clientId }).first('uri');
  return row?.uri;
}

export async function findIntrospectorCandidate(db: Db, clientId: string): Promise<{ confidential: boolean } | undefined> {
  const row: { auth_method: string } | undefined = await db<{ client_id: string; auth_method: string }>('partners')
    .first('auth_method')
    .where({ client_id: clientId });
  return row && { confidential: row.auth_method !== 'none' };
}

/** The API that defines `scope`, with whether it is built in. */
async function scopeHolder(db: Db, scope: string): Promise<{ uri: string; builtIn: boolean } | undefined> {
  const row: { uri: string; built_in: number | boolean } | undefined = await db(`${SCOPES} as s`)
    .join(`${TABLE} as r`, 'r.uri', 's.resource_uri')
    .where('s.scope', scope)
    .first('r.uri', 'r.built_in');
  return row && { uri: row.uri, builtIn: Boolean(row.built_in) };
}

/**
 * A built-in API (the admin API) with its scopes and their consent words, made if missing: the
 * API row is one INSERT … ON CONFLICT DO NOTHING, so of any number of instances and commands
 * starting at once one makes it; its scopes and words are added the same way (words an operator
 * changed are kept). Nothing is written when it is in place. The first scope names it.
 *
 * When the built-in API is held under another URI (made with another ISSUER), `move` carries it
 * (its scopes, words and every partner's permissions) to `resource.uri` in one transaction: the
 * server's ISSUER is the one that counts; the CLI does not move it. Returns the URI that holds the
 * scopes afterwards, or undefined when an API that is not built in holds them.
 */
export async function ensureBuiltInResource(
  db: Db,
  resource: Pick<Resource, 'uri' | 'accessTokenTtl' | 'tokenFormat' | 'createdAt'>,
  descriptions: Readonly<Record<string, string>>,
  options: { move: boolean },
): Promise<string | undefined> {
  const scopes = Object.keys(descriptions);
  const before = await scopeHolder(db, scopes[0]);
  if (before?.uri === resource.uri) return resource.uri;
  if (before && (!before.builtIn || !options.move)) return before.builtIn ? before.uri : undefined;
  await db.transaction(async (trx) => {
    // a write first: on SQLite the transaction holds the write lock from here on
    await trx(TABLE)
      .insert({
        uri: resource.uri,
        access_token_ttl: resource.accessTokenTtl,
        token_format: resource.tokenFormat,
        introspector_client_id: null,
        signed_introspection: false,
        is_default: false,
        built_in: true,
        created_at: resource.createdAt,
        updated_at: resource.createdAt,
      })
      .onConflict('uri')
      .ignore();
    const holder = await scopeHolder(trx, scopes[0]);
    if (holder?.builtIn && holder.uri !== resource.uri && options.move) {
      // partner permissions refer to (API, scope): out, the scopes move, back in under the new URI
      const permissions: PermissionRow[] = await trx(PERMISSIONS).where({ resource_uri: holder.uri }).select('client_id', 'scope');
      await trx(PERMISSIONS).where({ resource_uri: holder.uri }).delete();
      await trx(SCOPES).where({ resource_uri: holder.uri }).update({ resource_uri: resource.uri });
      if (permissions.length)
        await trx(PERMISSIONS).insert(permissions.map((p) => ({ client_id: p.client_id, resource_uri: resource.uri, scope: p.scope })));
    }
    await trx(SCOPES)
      .insert(scopes.map((scope) => ({ resource_uri: resource.uri, scope })))
      .onConflict()
      .ignore();
    await trx(DESCRIPTIONS)
      .insert(Object.entries(descriptions).map(([scope, description]) => ({ scope, description })))
      .onConflict('scope')
      .ignore();
    // built-in rows left without a scope (moved away, or a racing start under another ISSUER lost)
    await trx(TABLE)
      .where({ built_in: true })
      .whereNotExists((q) => void q.select('scope').from(SCOPES).whereRaw('resource_scopes.resource_uri = resources.uri'))
      .delete();
  });
  const after = await scopeHolder(db, scopes[0]);
  return after?.builtIn ? after.uri : undefined;
}
