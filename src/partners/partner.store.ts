import type { Db } from '../db/knex.ts';
import { deletePartnerGrants } from '../grants/grant.store.ts';

export type PartnerStatus = 'active' | 'suspended';

/** One entry of a partner's allow-list: a scope of one API. */
export type Permission = Readonly<{ resource: string; scope: string }>;

export type Partner = Readonly<{
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
  };
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

/** Status alone, read fresh: whether the partner's tokens may still be honoured. */
export async function isPartnerActive(db: Db, clientId: string): Promise<boolean> {
  return (await db<Row>(TABLE).where({ client_id: clientId }).first('status'))?.status === 'active';
}

export async function listPartners(db: Db): Promise<Partner[]> {
  return withPermissions(db, await db<Row>(TABLE).select('*').orderBy('created_at'));
}

/** The partner and its allow-list, together; fails (foreign key) if a scope left its API meanwhile. */
export async function insertPartner(db: Db, partner: Partner): Promise<void> {
  await db.transaction(async (trx) => {
    await trx(TABLE).insert({
      client_id: partner.clientId,
      name: partner.name,
      secret_hash: partner.secretHash,
      grant_types: JSON.stringify(partner.grantTypes),
      redirect_uris: JSON.stringify(partner.redirectUris),
      status: partner.status,
      created_at: partner.createdAt,
      updated_at: partner.updatedAt,
    });
    await trx(ALLOWED).insert(partner.allowed.map((p) => ({ client_id: partner.clientId, resource_uri: p.resource, scope: p.scope })));
  });
}

/** Returns false when no such partner exists. */
export async function updatePartner(db: Db, clientId: string, change: { secretHash?: string }, at: number): Promise<boolean> {
  const fields: Record<string, unknown> = { updated_at: at };
  if (change.secretHash) fields.secret_hash = change.secretHash;
  return (await db(TABLE).where({ client_id: clientId }).update(fields)) > 0;
}

/**
 * Suspends or resumes, in one transaction with the revocation of everything issued to the
 * partner. A suspension revokes; a resume revokes again what requests in flight at the moment of
 * suspension may have written after it, so nothing from before comes back. Resuming an active
 * partner changes nothing. Returns false when no such partner exists.
 */
export async function changePartnerStatus(db: Db, clientId: string, status: PartnerStatus, at: number): Promise<boolean> {
  return db.transaction(async (trx) => {
    const changed = await trx(TABLE).where({ client_id: clientId }).whereNot({ status }).update({ status, updated_at: at });
    if (changed > 0 || status === 'suspended') await deletePartnerGrants(trx, clientId);
    if (changed > 0) return true;
    return (await trx<Row>(TABLE).where({ client_id: clientId }).first('client_id')) !== undefined;
  });
}
