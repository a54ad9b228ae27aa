import type { Db } from '../db/knex.ts';

/**
 * Where a login stands after the password: the second factor is due; or enrolment is, first the
 * operator's enrolment code (`enrol`), then the new authenticator's confirmation code
 * (`enrol_confirm`), then the recovery codes are shown (`enrolled`).
 */
export type LoginStage = 'second_factor' | 'enrol' | 'enrol_confirm' | 'enrolled';

export type LoginState = Readonly<{
  interactionUid: string;
  browserHash: string;
  userId: string;
  stage: LoginStage;
  pendingSecret: string | null;
  /** hash of the enrolment code this browser gave (stage enrol_confirm) */
  enrolmentCodeHash: string | null;
  /** codes checked in this stage */
  attempts: number;
  expiresAt: number;
}>;

type Row = {
  interaction_uid: string;
  browser_hash: string;
  user_id: string;
  stage: LoginStage;
  pending_secret: string | null;
  enrolment_code_hash: string | null;
  attempts: number | string;
  expires_at: number | string;
};

const TABLE = 'login_states';

/** A password was verified: the state starts (or starts over) with no code tried and no secret offered. */
export async function saveLoginState(
  db: Db,
  state: Omit<LoginState, 'attempts' | 'enrolmentCodeHash' | 'pendingSecret'>,
  now: number,
): Promise<void> {
  // expired states go with every write: no job needed to keep the table small
  await db(TABLE).where('expires_at', '<=', now).delete();
  await db(TABLE)
    .insert({
      interaction_uid: state.interactionUid,
      browser_hash: state.browserHash,
      user_id: state.userId,
      stage: state.stage,
      pending_secret: null,
      enrolment_code_hash: null,
      attempts: 0,
      expires_at: state.expiresAt,
    })
    .onConflict('interaction_uid')
    .merge();
}

/** The live state of this interaction, only for the browser that created it. */
export async function findLoginState(db: Db, interactionUid: string, browserHash: string, now: number): Promise<LoginState | undefined> {
  const row = await db<Row>(TABLE)
    .where({ interaction_uid: interactionUid, browser_hash: browserHash })
    .andWhere('expires_at', '>', now)
    .first();
  if (!row) return undefined;
  return {
    interactionUid: row.interaction_uid,
    browserHash: row.browser_hash,
    userId: row.user_id,
    stage: row.stage,
    pendingSecret: row.pending_secret,
    enrolmentCodeHash: row.enrolment_code_hash,
    attempts: Number(row.attempts),
    expiresAt: Number(row.expires_at),
  };
}

/**
 * Takes one of the `cap` attempts of this stage before a code is checked, in one statement, so
 * parallel posts cannot check more than `cap` codes. 'exhausted': none left, and the state is
 * gone (the password is asked again); 'moved': the state is at another stage or gone already.
 */
export async function claimAttempt(db: Db, state: LoginState, cap: number, now: number): Promise<'ok' | 'exhausted' | 'moved'> {
  const claimed = await db(TABLE)
    .where({ interaction_uid: state.interactionUid, browser_hash: state.browserHash, stage: state.stage })
    .andWhere('attempts', '<', cap)
    .andWhere('expires_at', '>', now)
    .update({ attempts: db.raw('attempts + 1') });
  if (claimed > 0) return 'ok';
  return (await endIfExhausted(db, state, cap)) ? 'exhausted' : 'moved';
}

/** After a wrong code: the stage's last attempt ends this login (true when it did). */
export async function endIfExhausted(db: Db, state: LoginState, cap: number): Promise<boolean> {
  return (
    (await db(TABLE).where({ interaction_uid: state.interactionUid, stage: state.stage }).andWhere('attempts', '>=', cap).delete()) > 0
  );
}

/** Moves a state from one stage to the next, with a fresh count of attempts; false if another request moved it first. */
export async function advanceLoginState(
  db: Db,
  interactionUid: string,
  from: LoginStage,
  change: { stage: LoginStage; pendingSecret?: string | null; enrolmentCodeHash?: string | null },
): Promise<boolean> {
  const fields: Record<string, unknown> = { stage: change.stage, attempts: 0 };
  if (change.pendingSecret !== undefined) fields.pending_secret = change.pendingSecret;
  if (change.enrolmentCodeHash !== undefined) fields.enrolment_code_hash = change.enrolmentCodeHash;
  return (await db(TABLE).where({ interaction_uid: interactionUid, stage: from }).update(fields)) > 0;
}

export async function deleteLoginState(db: Db, interactionUid: string): Promise<void> {
  await db(TABLE).where({ interaction_uid: interactionUid }).delete();
}

/** Ends every login of the person under way (past the password, before the second factor). */
export async function deleteUserLoginStates(db: Db, userId: string): Promise<number> {
  return db(TABLE).where({ user_id: userId }).delete();
}

/**
 * Ends the enrolments under way whose offered secret is not sealed with `prefix` (the current
 * format, or the current format under the first KEK): after a KEK rotation or the upgrade of
 * the sealing format, those people start their enrolment again rather than keep a secret
 * sealed under a key about to go. Returns how many.
 */
export async function dropOfferedSecretsNotSealedWith(db: Db, prefix: string): Promise<number> {
  return db(TABLE).whereNotNull('pending_secret').andWhereNot('pending_secret', 'like', `${prefix}%`).delete();
}
