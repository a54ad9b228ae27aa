import { isNullOr, isSqlite, type Db } from '../db/knex.ts';
import { sha256Base64url } from '../shared/hashing.ts';

/** oidc-provider's rows (src/oidc/payload.store.ts writes them): tokens, codes, grants, sessions. */
export const PAYLOAD_TABLE = 'oidc_payloads';

/** The pointer to the grant a person last gave a partner (src/interactions/consent.store.ts writes it). */
const CONSENTS = 'consents';

/**
 * Everything issued to a partner (grants, refresh and opaque access tokens, codes), in one
 * statement: a suspension leaves nothing behind that a later resume would bring back.
 */
export async function deletePartnerGrants(db: Db, clientId: string): Promise<number> {
  return db(PAYLOAD_TABLE).where({ client_id: clientId }).delete();
}

/** The partner's remembered consents (pointers to grants), for a partner that is deleted. */
export async function deletePartnerConsents(db: Db, clientId: string): Promise<number> {
  return db(CONSENTS).where({ client_id: clientId }).delete();
}

/** Everything held for a person (sessions, grants, refresh and opaque access tokens, codes), in one statement. */
export async function deleteAccountGrants(db: Db, accountId: string): Promise<number> {
  return db(PAYLOAD_TABLE).where({ account_id: accountId }).delete();
}

/**
 * A grant and every row issued from it (codes, tokens), in one statement. The Grant row is found
 * by its hashed id (the adapter's key), whether or not it carries its id in clear; `byHash` also
 * takes the hashed id itself (what `grant list` shows for a grant stored before ids were kept).
 */
export async function revokeGrant(db: Db, grantId: string, options: { byHash?: boolean } = {}): Promise<number> {
  const keys = options.byHash ? [sha256Base64url(grantId), grantId] : [sha256Base64url(grantId)];
  return db(PAYLOAD_TABLE)
    .where('grant_id', grantId)
    .orWhere((q) => void q.where({ model: 'Grant' }).whereIn('id', keys))
    .delete();
}

/** One stored grant as oidc-provider saved it: who (account) gave which partner what, and when. */
export type StoredGrant = Readonly<{
  /** the grant id; the row's hashed id for a grant stored before ids were kept that no token points to */
  id: string;
  accountId: string | null;
  /** the person's username, if the account still exists */
  username: string | null;
  clientId: string | null;
  /** the partner's name, if it still exists */
  partnerName: string | null;
  /** OpenID scopes (`openid`, `offline_access`) */
  openidScope: string;
  /** API URI → the scopes granted for it */
  resources: Readonly<Record<string, string>>;
  /** the `authorization_details` (RFC 9396) the person approved, newest last (payments are never remembered past their code) */
  authorizationDetails: ReadonlyArray<Record<string, unknown>>;
  /** epoch seconds, as oidc-provider writes them */
  issuedAt: number | null;
  expiresAt: number | null;
}>;

type GrantRow = {
  id: string;
  grant_id: string | null;
  account_id: string | null;
  client_id: string | null;
  payload: string;
  username: string | null;
  partner_name: string | null;
};

type GrantPayload = {
  openid?: { scope?: string };
  resources?: Record<string, string>;
  rar?: Array<Record<string, unknown>>;
  iat?: number;
  exp?: number;
};

function fromRow(row: GrantRow): StoredGrant {
  const payload = JSON.parse(row.payload) as GrantPayload;
  return {
    id: row.grant_id ?? row.id,
    accountId: row.account_id,
    username: row.username,
    clientId: row.client_id,
    partnerName: row.partner_name,
    openidScope: payload.openid?.scope ?? '',
    resources: payload.resources ?? {},
    authorizationDetails: Array.isArray(payload.rar) ? payload.rar : [],
    issuedAt: payload.iat ?? null,
    expiresAt: payload.exp ?? null,
  };
}

/**
 * Live grants (not expired at `now`), with the person's username and the partner's name,
 * optionally only one person's (by username) or one partner's; oldest first.
 */
export async function listGrants(db: Db, filter: GrantFilter, now: number): Promise<StoredGrant[]> {
  return (await grantsQuery(db, filter, now)).map(fromRow).sort((a, b) => (a.issuedAt ?? 0) - (b.issuedAt ?? 0));
}

/** Whose grants: one person's (by username or account id), one partner's, or everyone's. */
export type GrantFilter = Readonly<{ username?: string; accountId?: string; clientId?: string }>;

/**
 * One page of live grants in the order of their stored row id (a hash: stable, not
 * chronological) after the row `afterRowId`, at most `limit`. `rowId` is the keyset.
 */
export async function listGrantsPage(
  db: Db,
  filter: GrantFilter,
  page: { afterRowId?: string; limit: number },
  now: number,
): Promise<Array<StoredGrant & { rowId: string }>> {
  const query = grantsQuery(db, filter, now).orderBy('g.id').limit(page.limit);
  if (page.afterRowId !== undefined) void query.andWhere('g.id', '>', page.afterRowId);
  return (await query).map((row) => ({ ...fromRow(row), rowId: row.id }));
}

function grantsQuery(db: Db, filter: GrantFilter, now: number) {
  const query = db(`${PAYLOAD_TABLE} as g`)
    .leftJoin('users as u', 'u.id', 'g.account_id')
    .leftJoin('partners as p', 'p.client_id', 'g.client_id')
    .select<GrantRow[]>('g.id', 'g.grant_id', 'g.account_id', 'g.client_id', 'g.payload', 'u.username', 'p.name as partner_name')
    .where('g.model', 'Grant')
    .andWhere(isNullOr('g.expires_at', '>', now));
  if (filter.username !== undefined) void query.andWhere('u.username', filter.username);
  if (filter.accountId !== undefined) void query.andWhere('g.account_id', filter.accountId);
  if (filter.clientId !== undefined) void query.andWhere('g.client_id', filter.clientId);
  return query;
}

/** Usable rows issued from each grant (refresh and opaque access tokens, codes not used yet), by grant id. */
export async function countIssued(db: Db, grantIds: readonly string[], now: number): Promise<Map<string, number>> {
  if (grantIds.length === 0) return new Map();
  const rows: Array<{ grant_id: string; n: number | string }> = await db(PAYLOAD_TABLE)
    .select('grant_id')
    .count({ n: '*' })
    .whereIn('grant_id', grantIds)
    .whereNot({ model: 'Grant' })
    .whereNull('consumed_at')
    .andWhere(isNullOr('expires_at', '>', now))
    .groupBy('grant_id');
  return new Map(rows.map((row) => [row.grant_id, Number(row.n)]));
}

/**
 * When each grant was last used, as far as the rows still kept tell: the newest `iat` (epoch
 * seconds) of the codes and tokens issued from it, used or not (a refresh rotates the refresh
 * token, so its `iat` is the last refresh). Rows purged after expiry leave no trace, and JWT
 * access tokens are not stored: a grant without rows has no known last use.
 */
export async function lastIssuedAt(db: Db, grantIds: readonly string[]): Promise<Map<string, number>> {
  if (grantIds.length === 0) return new Map();
  const iat = isSqlite(db) ? db.raw("max(json_extract(payload, '$.iat'))") : db.raw("max((payload::jsonb ->> 'iat')::bigint)");
  const rows: Array<{ grant_id: string; last: number | string | null }> = await db(PAYLOAD_TABLE)
    .select('grant_id', { last: iat })
    .whereIn('grant_id', grantIds)
    .whereNot({ model: 'Grant' })
    .groupBy('grant_id');
  return new Map(rows.flatMap((row) => (row.last === null ? [] : [[row.grant_id, Number(row.last)] as const])));
}
