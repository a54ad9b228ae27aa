import type { Db } from '../db/knex.ts';

export type PartnerStatus = 'active' | 'suspended';

export type Partner = Readonly<{
  clientId: string;
  name: string;
  secretHash: string | null;
  scopes: readonly string[];
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
  scopes: string;
  grant_types: string;
  redirect_uris: string;
  status: PartnerStatus;
  created_at: number | string;
  updated_at: number | string;
};

const TABLE = 'partners';

function fromRow(row: Row): Partner {
  return {
    clientId: row.client_id,
    name: row.name,
    secretHash: row.secret_hash,
    scopes: row.scopes.split(' ').filter(Boolean),
    grantTypes: JSON.parse(row.grant_types) as string[],
    redirectUris: JSON.parse(row.redirect_uris) as string[],
    status: row.status,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

export async function findPartner(db: Db, clientId: string): Promise<Partner | undefined> {
  const row = await db(TABLE).where({ client_id: clientId }).first();
  return row ? fromRow(row) : undefined;
}

export async function listPartners(db: Db): Promise<Partner[]> {
  return (await db(TABLE).select('*').orderBy('created_at')).map(fromRow);
}

export async function insertPartner(db: Db, partner: Partner): Promise<void> {
  await db(TABLE).insert({
    client_id: partner.clientId,
    name: partner.name,
    secret_hash: partner.secretHash,
    scopes: partner.scopes.join(' '),
    grant_types: JSON.stringify(partner.grantTypes),
    redirect_uris: JSON.stringify(partner.redirectUris),
    status: partner.status,
    created_at: partner.createdAt,
    updated_at: partner.updatedAt,
  });
}

/** Returns false when no such partner exists. */
export async function updatePartner(db: Db, clientId: string, change: { status?: PartnerStatus; secretHash?: string }, at: number): Promise<boolean> {
  const fields: Record<string, unknown> = { updated_at: at };
  if (change.status) fields.status = change.status;
  if (change.secretHash) fields.secret_hash = change.secretHash;
  return (await db(TABLE).where({ client_id: clientId }).update(fields)) > 0;
}
