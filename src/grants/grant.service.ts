import { recordChange, type AuditBy } from '../audit/audit.service.ts';
import type { Db } from '../db/knex.ts';
import { notFound } from '../shared/errors.ts';
import { decodeCursor, pageOf, pageSize } from '../shared/page-cursor.ts';
import { countIssued, lastIssuedAt, listGrants, listGrantsPage, revokeGrant, type GrantFilter, type StoredGrant } from './grant.store.ts';

/** What a grant id can be (oidc-provider's are 43 base64url characters, as are hashed ids); anything else is no grant. */
const GRANT_ID_PATTERN = /^[\w-]{1,128}$/;

const iso = (seconds: number | null) => (seconds === null ? null : new Date(seconds * 1000).toISOString());

type Usage = Readonly<{ live: Map<string, number>; lastUsed: Map<string, number> }>;

/** What the stored rows tell of each grant's use: live tokens, and the newest issued (src/grants/grant.store.ts). */
async function usageOf(db: Db, grants: readonly StoredGrant[], now: number): Promise<Usage> {
  const ids = grants.map((grant) => grant.id);
  const [live, lastUsed] = await Promise.all([countIssued(db, ids, now), lastIssuedAt(db, ids)]);
  return { live, lastUsed };
}

function describeGrant(grant: StoredGrant, usage: Usage) {
  const scopes = [grant.openidScope, ...Object.values(grant.resources)].join(' ').split(' ').filter(Boolean);
  return {
    id: grant.id,
    user: grant.username,
    account_id: grant.accountId,
    client_id: grant.clientId,
    partner: grant.partnerName,
    scope: [...new Set(scopes)].join(' '),
    resources: grant.resources,
    /** payments (RFC 9396 details) approved through it; kept for the latest few */
    authorization_details: grant.authorizationDetails,
    granted_at: iso(grant.issuedAt),
    expires_at: iso(grant.expiresAt),
    /** when a code or token was last issued from it, as far as the stored rows tell (null: not known) */
    last_used_at: iso(usage.lastUsed.get(grant.id) ?? null),
    /** refresh and opaque access tokens (and codes) issued from it and still live; JWT access tokens are not stored */
    live_tokens: usage.live.get(grant.id) ?? 0,
  };
}

/**
 * `grant list`: the consents people gave partners, as oidc-provider stored them. Never a token
 * value: the listing holds ids, names, scopes and times only.
 */
export async function listGrantsDescribed(db: Db, filter: { username?: string; clientId?: string }, now: number = Date.now()) {
  const grants = await listGrants(db, filter, now);
  const usage = await usageOf(db, grants, now);
  return grants.map((grant) => describeGrant(grant, usage));
}

/**
 * A page of live grants (one person's, one partner's, or all), for the admin API and console:
 * `cursor` is the `next` of the page before.
 */
export async function grantPage(db: Db, filter: GrantFilter & { cursor?: string; limit?: number }, now: number = Date.now()) {
  const limit = pageSize(filter.limit);
  const afterRowId = filter.cursor === undefined ? undefined : decodeCursor(filter.cursor, ['string'] as const)[0];
  const rows = await listGrantsPage(
    db,
    { username: filter.username, accountId: filter.accountId, clientId: filter.clientId },
    { afterRowId, limit: limit + 1 },
    now,
  );
  const usage = await usageOf(db, rows.slice(0, limit), now);
  return pageOf(
    rows,
    limit,
    (grant) => [grant.rowId],
    (grant) => describeGrant(grant, usage),
  );
}

/**
 * `grant revoke`: the grant and every token and code issued from it go, in one statement (the
 * person is asked to consent again; JWT access tokens already issued live out their short life).
 */
export async function revokeGrantById(db: Db, id: string, by: AuditBy) {
  const deleted = GRANT_ID_PATTERN.test(id) ? await revokeGrant(db, id, { byHash: true }) : 0;
  if (deleted === 0) throw notFound(`no grant ${id}`);
  await recordChange(db, by, { action: 'consent.revoke', target: id, details: { rows_deleted: deleted } });
  return { id, revoked: true, rows_deleted: deleted };
}
