import type { Db } from '../db/knex.ts';

/** Where a login stands after the password: the second factor is due, or enrolment is. */
export type LoginStage = 'second_factor' | 'enrol' | 'enrolled';

export type LoginState = Readonly<{
  interactionUid: string;
  browserHash: string;
  userId: string;
  stage: LoginStage;
  pendingSecret: string | null;
  expiresAt: number;
}>;

type Row = { interaction_uid: string; browser_hash: string; user_id: string; stage: LoginStage; pending_secret: string | null; expires_at: number | string };

const TABLE = 'login_states';

export async function saveLoginState(db: Db, state: LoginState, now: number): Promise<void> {
  // expired states go with every write: no job needed to keep the table small
  await db(TABLE).where('expires_at', '<=', now).delete();
  await db(TABLE)
    .insert({
      interaction_uid: state.interactionUid,
      browser_hash: state.browserHash,
      user_id: state.userId,
      stage: state.stage,
      pending_secret: state.pendingSecret,
      expires_at: state.expiresAt,
    })
    .onConflict('interaction_uid')
    .merge();
}

/** The live state of this interaction, only for the browser that created it. */
export async function findLoginState(db: Db, interactionUid: string, browserHash: string, now: number): Promise<LoginState | undefined> {
  const row: Row | undefined = await db(TABLE).where({ interaction_uid: interactionUid, browser_hash: browserHash }).andWhere('expires_at', '>', now).first();
  if (!row) return undefined;
  return {
    interactionUid: row.interaction_uid,
    browserHash: row.browser_hash,
    userId: row.user_id,
    stage: row.stage,
    pendingSecret: row.pending_secret,
    expiresAt: Number(row.expires_at),
  };
}

/** Moves a state from one stage to the next; false if another request moved it first. */
export async function advanceLoginState(db: Db, interactionUid: string, from: LoginStage, change: { stage: LoginStage; pendingSecret?: string | null }): Promise<boolean> {
  const fields: Record<string, unknown> = { stage: change.stage };
  if (change.pendingSecret !== undefined) fields.pending_secret = change.pendingSecret;
  return (await db(TABLE).where({ interaction_uid: interactionUid, stage: from }).update(fields)) > 0;
}

export async function deleteLoginState(db: Db, interactionUid: string): Promise<void> {
  await db(TABLE).where({ interaction_uid: interactionUid }).delete();
}
