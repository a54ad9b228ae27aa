import type { Db } from '../db/knex.ts';

const TABLE = 'consents';

type Row = { account_id: string; client_id: string; grant_id: string; updated_at: number | string };

/** The grant a person last gave this partner (it may since have been revoked or expired). */
export async function findConsentGrantId(db: Db, accountId: string, clientId: string): Promise<string | undefined> {
  const row = await db<Row>(TABLE).where({ account_id: accountId, client_id: clientId }).first();
  return row?.grant_id;
}

export async function saveConsent(db: Db, accountId: string, clientId: string, grantId: string, at: number): Promise<void> {
  await db(TABLE)
    .insert({ account_id: accountId, client_id: clientId, grant_id: grantId, updated_at: at })
    .onConflict(['account_id', 'client_id'])
    .merge(['grant_id', 'updated_at']);
}
