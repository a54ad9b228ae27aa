import { nextVersion, type Db } from '../db/knex.ts';
import { containsPattern } from '../shared/page-cursor.ts';
import { violatedConstraint } from '../db/constraint.ts';
import { findResourceIntrospectedBy } from '../resources/resource.store.ts';
import { deletePartnerConsents, deletePartnerGrants } from '../grants/grant.store.ts';

export type PartnerStatus = 'active' | 'suspended';

/** `baseline`: what every partner had before issue 11; `fapi2`: the FAPI 2.0 Security Profile. */
export type PartnerProfileName = 'baseline' | 'fapi2';

/** How the partner authenticates at the token, PAR, introspection and revocation endpoints. */
export type AuthMethod = 'client_secret_basic' | 'none' | 'private_key_jwt' | 'tls_client_auth' | 'self_signed_tls_client_auth';

/** What every access token of the partner is bound to; null: bearer tokens (a baseline partner may still use DPoP). */
export type TokenBinding = 'dpop' | 'mtls' | null;

/** A JSON Web Key Set of public keys, as registered. */
export type PublicJwks = Readonly<{ keys: ReadonlyArray<Readonly<Record<string, unknown>>> }>;

/** How a partner proves itself and what its tokens are bound to. */
export type PartnerSecurity = Readonly<{
  profile: PartnerProfileName;
  authMethod: AuthMethod;
  jwks: PublicJwks | null;
  jwksUri: string | null;
  tlsSubjectDn: string | null;
  tokenBinding: TokenBinding;
  messageSigning: boolean;
}>;

/** One entry of a partner's allow-list: a scope of one API. */
export type Permission = Readonly<{ resource: string; scope: string }>;

export type Partner = PartnerSecurity &
  Readonly<{
    clientId: string;
    name: string;
    secretHash: string | null;
    /** (API, scope) pairs: a scope name is never a permission on an API other than its own */
    allowed: readonly Permission[];
    grantTypes: readonly string[];
    redirectUris: readonly string[];
    status: PartnerStatus;
    createdAt: number;
    updatedAt: number;
  }>;

type Row = {
  client_id: string;
  name: string;
  secret_hash: string | null;
  grant_types: string;
  redirect_uris: string;
  status: PartnerStatus;
  created_at: number | string;
  updated_at: number | string;
  profile: PartnerProfileName;
  auth_method: AuthMethod;
  jwks: string | null;
  jwks_uri: string | null;
  tls_subject_dn: string | null;
  token_binding: TokenBinding;
  /** SQLite gives 0/1 */
  message_signing: boolean | number;
};

const TABLE = 'partners';
/** The allow-lists; rows go with their partner, and with their scope when an API drops it (ON DELETE CASCADE). */
const ALLOWED = 'partner_scopes';

type PermissionRow = { client_id: string; resource_uri: string; scope: string };

function fromRow(row: Row, allowed: readonly Permission[]): Partner {
  return {
    clientId: row.client_id,
    name: row.name,
    secretHash: row.secret_hash,
    allowed,
    grantTypes: JSON.parse(row.grant_types) as string[],
    redirectUris: JSON.parse(row.redirect_uris) as string[],
    status: row.status,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    profile: row.profile,
    authMethod: row.auth_method,
    jwks: row.jwks === null ? null : (JSON.parse(row.jwks) as PublicJwks),
    jwksUri: row.jwks_uri,
    tlsSubjectDn: row.tls_subject_dn,
    tokenBinding: row.token_binding,
    messageSigning: Boolean(row.message_signing),
  };
}

/** The columns of PartnerSecurity. */
function securityColumns(security: Partial<PartnerSecurity>): Partial<Row> {
  const columns: Partial<Row> = {};
  if (security.profile !== undefined) columns.profile = security.profile;
  if (security.authMethod !== undefined) columns.auth_method = security.authMethod;
  if (security.jwks !== undefined) columns.jwks = security.jwks === null ? null : JSON.stringify(security.jwks);
  if (security.jwksUri !== undefined) columns.jwks_uri = security.jwksUri;
  if (security.tlsSubjectDn !== undefined) columns.tls_subject_dn = security.tlsSubjectDn;
  if (security.tokenBinding !== undefined) columns.token_binding = security.tokenBinding;
  if (security.messageSigning !== undefined) columns.message_signing = security.messageSigning;
  return columns;
}

async function withPermissions(db: Db, rows: Row[]): Promise<Partner[]> {
  if (rows.length === 0) return [];
  const permissions = await db<PermissionRow>(ALLOWED)
    .select('client_id', 'resource_uri', 'scope')
    .whereIn(
      'client_id',
      rows.map((row) => row.client_id),
    )
    .orderBy(['resource_uri', 'scope']);
  const permissionsOf = (clientId: string) =>
    permissions.filter((p) => p.client_id === clientId).map((p) => ({ resource: p.resource_uri, scope: p.scope }));
  return rows.map((row) => fromRow(row, permissionsOf(row.client_id)));
}

/** One query (the token hot path looks partners up): the partner row once per permission. */
export async function findPartner(db: Db, clientId: string): Promise<Partner | undefined> {
  const rows = await db(TABLE)
    .leftJoin(ALLOWED, `${ALLOWED}.client_id`, `${TABLE}.client_id`)
    .where(`${TABLE}.client_id`, clientId)
    .select<Array<Row & { resource_uri: string | null; scope: string | null }>>(`${TABLE}.*`, `${ALLOWED}.resource_uri`, `${ALLOWED}.scope`)
    .orderBy([`${ALLOWED}.resource_uri`, `${ALLOWED}.scope`]);
  if (rows.length === 0) return undefined;
  const allowed = rows.flatMap((row) =>
    row.resource_uri !== null && row.scope !== null ? [{ resource: row.resource_uri, scope: row.scope }] : [],
  );
  return fromRow(rows[0], allowed);
}

/** How many partners there are, by status. */
export async function countPartners(db: Db): Promise<Record<PartnerStatus, number>> {
  const rows = await db(TABLE).select('status').count({ n: '*' }).groupBy('status');
  const counts: Record<PartnerStatus, number> = { active: 0, suspended: 0 };
  for (const row of rows as Array<{ status: PartnerStatus; n: number | string }>) counts[row.status] = Number(row.n);
  return counts;
}

export async function listPartners(db: Db): Promise<Partner[]> {
  return withPermissions(db, await db<Row>(TABLE).select('*').orderBy('created_at'));
}

/**
 * One page of partners in (name, client_id) order after `after`, at most `limit`; `search`
 * matches a part of the name (as compared for duplicates: case and spacing ignored) or of the
 * client_id. Keyset paging: the same comparison as the ORDER BY, so each engine's collation
 * orders and compares alike.
 */
export async function listPartnersPage(
  db: Db,
  options: { search?: string; after?: readonly [name: string, clientId: string]; limit: number },
): Promise<Partner[]> {
  const query = db<Row>(TABLE)
    .select('*')
    .orderBy([{ column: 'name' }, { column: 'client_id' }])
    .limit(options.limit);
  if (options.search) {
    const search = options.search;
    void query.where((q) => {
      void q
        .whereRaw("name_key LIKE ? ESCAPE '\\'", [containsPattern(partnerNameKey(search))])
        .orWhereRaw("client_id LIKE ? ESCAPE '\\'", [containsPattern(search)]);
    });
  }
  if (options.after) {
    const [name, clientId] = options.after;
    void query.where(
      (q) => void q.where('name', '>', name).orWhere((same) => void same.where('name', name).andWhere('client_id', '>', clientId)),
    );
  }
  return withPermissions(db, await query);
}

/** How a partner's name is compared for duplicates ("ACME  bank" is "Acme Bank"). */
function partnerNameKey(name: string): string {
  return name.normalize('NFKC').trim().replace(/\s+/gu, ' ').toLowerCase();
}

/** Another partner has the name: refused unless duplicates are allowed. */
export class DuplicateNameError extends Error {}

/** A partner other than `clientId` named `name` (as compared), if any. */
export async function findNamesake(db: Db, name: string, clientId: string): Promise<string | undefined> {
  const row: Pick<Row, 'client_id'> | undefined = await db(TABLE)
    .where({ name_key: partnerNameKey(name) })
    .whereNot({ client_id: clientId })
    .orderBy('created_at')
    .first('client_id');
  return row?.client_id;
}

/**
 * The columns that decide name uniqueness: `name_claim` is unique (an index), so of two racing
 * writers claiming one name only one commits; a writer allowed a duplicate claims nothing.
 */
function nameColumns(name: string, allowDuplicate: boolean) {
  const key = partnerNameKey(name);
  return { name, name_key: key, name_claim: allowDuplicate ? null : key };
}

/**
 * After a write claiming a name, in its transaction: a namesake made with --allow-duplicate-name
 * holds no claim, so it is looked for by name; a racing claimant is stopped by the unique index.
 */
async function refuseNamesake(trx: Db, clientId: string, name: string, allowDuplicate: boolean): Promise<void> {
  if (!allowDuplicate && (await findNamesake(trx, name, clientId)) !== undefined) throw new DuplicateNameError();
}

function claimFailed(error: unknown): never {
  throw violatedConstraint(error) === 'unique' ? new DuplicateNameError() : error;
}

/**
 * The partner and its allow-list, together; fails (foreign key) if a scope left its API meanwhile,
 * and with DuplicateNameError if another partner has the name (unless `allowDuplicateName`).
 */
export async function insertPartner(db: Db, partner: Partner, options: { allowDuplicateName: boolean }): Promise<void> {
  await db.transaction(async (trx) => {
    await trx(TABLE)
      .insert({
        client_id: partner.clientId,
        ...nameColumns(partner.name, options.allowDuplicateName),
        secret_hash: partner.secretHash,
        grant_types: JSON.stringify(partner.grantTypes),
        redirect_uris: JSON.stringify(partner.redirectUris),
        status: partner.status,
        created_at: partner.createdAt,
        updated_at: partner.updatedAt,
        ...securityColumns(partner),
      })
      .catch(claimFailed);
    await refuseNamesake(trx, partner.clientId, partner.name, options.allowDuplicateName);
    await trx(ALLOWED).insert(permissionRows(partner.clientId, partner.allowed));
  });
}

const permissionRows = (clientId: string, allowed: readonly Permission[]) =>
  allowed.map((p) => ({ client_id: clientId, resource_uri: p.resource, scope: p.scope }));

export type PartnerProfile = Pick<Partner, 'name' | 'allowed' | 'grantTypes' | 'redirectUris' | 'messageSigning'>;

/**
 * Replaces what `partner update` changes, in one transaction: name (with the same uniqueness as
 * insertPartner), grants, redirect URIs, the allow-list and message signing. Returns false when no such partner exists
 * (or, with `ifUpdatedAt`, its `updated_at` is no longer that: the admin API's If-Match, decided in the UPDATE).
 */
export async function updatePartnerProfile(
  db: Db,
  clientId: string,
  change: Partial<PartnerProfile>,
  options: { allowDuplicateName: boolean; ifUpdatedAt?: number },
  at: number,
): Promise<boolean> {
  return db.transaction(async (trx) => {
    const fields: Record<string, unknown> = { updated_at: nextVersion(trx, at) };
    if (change.name !== undefined) Object.assign(fields, nameColumns(change.name, options.allowDuplicateName));
    if (change.grantTypes !== undefined) fields.grant_types = JSON.stringify(change.grantTypes);
    if (change.redirectUris !== undefined) fields.redirect_uris = JSON.stringify(change.redirectUris);
    if (change.messageSigning !== undefined) fields.message_signing = change.messageSigning;
    const row = trx(TABLE).where({ client_id: clientId });
    if (options.ifUpdatedAt !== undefined) void row.andWhere('updated_at', options.ifUpdatedAt);
    const updated = await row.update(fields).catch(claimFailed);
    if (updated === 0) return false;
    if (change.name !== undefined) await refuseNamesake(trx, clientId, change.name, options.allowDuplicateName);
    if (change.allowed !== undefined) {
      await trx(ALLOWED).where({ client_id: clientId }).delete();
      await trx(ALLOWED).insert(permissionRows(clientId, change.allowed));
    }
    return true;
  });
}

/**
 * Deletes the partner with everything issued to it (grants, tokens, codes), its allow-list
 * (ON DELETE CASCADE) and remembered consents, in one transaction: its tokens are refused at
 * once. Refused while an API names it as introspector (decided in the DELETE itself).
 */
export async function deletePartner(db: Db, clientId: string): Promise<'deleted' | 'missing' | { introspects: string }> {
  return db.transaction(async (trx) => {
    // a write first (SQLite: a transaction that read first cannot write once another connection has)
    const deleted = await trx(TABLE)
      .where({ client_id: clientId })
      .whereNotExists((q) => void q.select('uri').from('resources').where('introspector_client_id', clientId))
      .delete();
    if (deleted === 0) {
      const introspected = await findResourceIntrospectedBy(trx, clientId);
      return introspected === undefined ? 'missing' : { introspects: introspected };
    }
    await deletePartnerGrants(trx, clientId);
    await deletePartnerConsents(trx, clientId);
    return 'deleted';
  });
}

/**
 * Changes the secret and/or how the partner authenticates, in one statement (`secretHash: null`
 * drops the secret). The conditions are part of the UPDATE, so a change checked against what the
 * partner is (its auth method, its profile) never lands on a partner another command changed
 * meanwhile. Returns false when no such partner exists or the condition does not hold.
 */
export async function updatePartner(
  db: Db,
  clientId: string,
  change: Partial<PartnerSecurity> & { secretHash?: string | null },
  at: number,
  onlyIf: { authMethods?: readonly AuthMethod[]; updatedAt?: number } = {},
): Promise<boolean> {
  const fields: Record<string, unknown> = { updated_at: nextVersion(db, at), ...securityColumns(change) };
  if (change.secretHash !== undefined) fields.secret_hash = change.secretHash;
  const query = db(TABLE).where({ client_id: clientId });
  if (onlyIf.authMethods) void query.whereIn('auth_method', onlyIf.authMethods);
  if (onlyIf.updatedAt !== undefined) void query.andWhere('updated_at', onlyIf.updatedAt);
  return (await query.update(fields)) > 0;
}

/**
 * Suspends or resumes, in one transaction with the revocation of everything issued to the
 * partner. A suspension revokes; a resume revokes again what requests in flight at the moment of
 * suspension may have written after it, so nothing from before comes back. Resuming an active
 * partner changes nothing. Returns false when no such partner exists.
 */
export async function changePartnerStatus(db: Db, clientId: string, status: PartnerStatus, at: number): Promise<boolean> {
  return db.transaction(async (trx) => {
    const changed = await trx(TABLE)
      .where({ client_id: clientId })
      .whereNot({ status })
      .update({ status, updated_at: nextVersion(trx, at) });
    if (changed > 0 || status === 'suspended') await deletePartnerGrants(trx, clientId);
    if (changed > 0) return true;
    return (await trx<Row>(TABLE).where({ client_id: clientId }).first('client_id')) !== undefined;
  });
}
