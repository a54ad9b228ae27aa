import type { Db } from '../db/knex.ts';

/** oidc-provider's rows (src/oidc/payload.store.ts writes them): tokens, codes, grants, sessions. */
export const PAYLOAD_TABLE = 'oidc_payloads';

/**
 * Everything issued to a partner (grants, refresh and opaque access tokens, codes), in one
 * statement: a suspension leaves nothing behind that a later resume would bring back.
 */
export async function deletePartnerGrants(db: Db, clientId: string): Promise<number> {
  return db(PAYLOAD_TABLE).where({ client_id: clientId }).delete();
}

/** Everything held for a person (sessions, grants, refresh and opaque access tokens, codes), in one statement. */
export async function deleteAccountGrants(db: Db, accountId: string): Promise<number> {
  return db(PAYLOAD_TABLE).where({ account_id: accountId }).delete();
}
