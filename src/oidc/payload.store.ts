import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import { isNullOr, type Db } from '../db/knex.ts';
import { PAYLOAD_TABLE, revokeGrant } from '../grants/grant.store.ts';
import { sha256Base64url } from '../shared/hashing.ts';
import { createInvalidatedCache } from '../shared/invalidated-cache.ts';
import type { ChangeFeed } from '../db/change-feed.ts';

/** Models found by a secondary key keep their id in the payload: the lookup must return it. */
const KEEPS_JTI = new Set(['Session', 'DeviceCode']);

export const TABLE = PAYLOAD_TABLE;

/** Words oidc-provider uses for its single-use models in error descriptions. */
const SINGLE_USE_LABELS: Record<string, string> = {
  AuthorizationCode: 'authorization code',
  RefreshToken: 'refresh token',
  DeviceCode: 'device code',
};

/** How many introspected access tokens an instance keeps, and how long at most (deaths are told at once). */
const TOKEN_CACHE = { maxEntries: 10_000, maxAgeMs: 60_000 };

/** Opaque bearer values the provider may look up as any of these kinds. */
const BEARER_MODELS = ['AccessToken', 'ClientCredentials', 'RefreshToken'];

export function hashId(id: string): string {
  return sha256Base64url(id);
}

/** A stored model, as the drivers return it: PostgreSQL gives bigint columns as strings. */
type StoredRow = {
  model: string;
  /** SHA-256 of the model's id */
  id: string;
  payload: string;
  grant_id: string | null;
  client_id: string | null;
  account_id: string | null;
  uid: string | null;
  user_code: string | null;
  expires_at: number | string | null;
  consumed_at: number | string | null;
};

type Row = Pick<StoredRow, 'payload' | 'consumed_at'>;

export type ClientSource = (clientId: string) => Promise<AdapterPayload | undefined>;

/**
 * oidc-provider's storage on knex (SQLite or PostgreSQL): one table for every model, keyed by
 * (model, SHA-256 of the id), so a database dump holds no usable bearer token. `Client` is
 * answered from the partners table instead (registration is off; partners are made by the CLI).
 */
export function createAdapterClass(db: Db, findClient: ClientSource, now: () => number = Date.now, changes?: ChangeFeed) {
  function live(model: string) {
    return db<StoredRow>(TABLE)
      .select('payload', 'consumed_at')
      .where('model', model)
      .andWhere(isNullOr('expires_at', '>', now()));
  }

  // Introspection and revocation look a bearer value up as all three kinds at once (oidc-provider's
  // findToken). One query answers the three. With a change feed, an access token found is kept
  // in memory (a stored token does not change until it dies, and its death is told: revocation,
  // its grant or partner or person going; migrations/20261129190000_token_change_feed.ts), so
  // introspecting it again reads nothing; what is not found, and refresh tokens, are not kept.
  // Without a feed, concurrent finds of one value share the query while it runs.
  const findBearerRows = async (hash: string): Promise<Array<Row & { model: string }>> =>
    db<StoredRow>(TABLE)
      .select('model', 'payload', 'consumed_at')
      .whereIn('model', BEARER_MODELS)
      .andWhere('id', hash)
      .andWhere(isNullOr('expires_at', '>', now()));
  const tokens = createInvalidatedCache({
    load: findBearerRows,
    live: () => changes?.live() ?? false,
    ...TOKEN_CACHE,
    now,
    keep: (rows) => rows.length > 0 && rows.every((row) => row.model !== 'RefreshToken'),
  });
  changes?.subscribe('token', (hash) => tokens.forget(hash));
  const bearerRows = (hash: string) => tokens.get(hash);

  function revive(row: Row | undefined, id?: string): AdapterPayload | undefined {
    if (!row) return undefined;
    const payload = JSON.parse(row.payload) as AdapterPayload;
    if (id !== undefined && payload.jti === undefined) payload.jti = id;
    if (row.consumed_at !== null) payload.consumed = Math.floor(Number(row.consumed_at) / 1000);
    return payload;
  }

  return class KnexAdapter implements Adapter {
    readonly model: string;

    constructor(model: string) {
      this.model = model;
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
      if (this.model === 'Client') throw new Error('clients are managed with `portcullis partner`, not through the provider');
      const stored: AdapterPayload = { ...payload };
      if (!KEEPS_JTI.has(this.model)) delete stored.jti;
      await db(TABLE)
        .insert({
          model: this.model,
          id: hashId(id),
          payload: JSON.stringify(stored),
          // a Grant keeps its own id in clear (not a bearer value): `grant list` and `grant revoke` use it
          grant_id: payload.grantId ?? (this.model === 'Grant' ? id : null),
          client_id: payload.clientId ?? null,
          account_id: payload.accountId ?? null,
          uid: payload.uid ?? null,
          user_code: payload.userCode ?? null,
          expires_at: expiresIn ? now() + expiresIn * 1000 : null,
          consumed_at: null,
        })
        .onConflict(['model', 'id'])
        .merge();
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (this.model === 'Client') return findClient(id);
      if (BEARER_MODELS.includes(this.model)) {
        const rows = await bearerRows(hashId(id));
        return revive(
          rows.find((row) => row.model === this.model),
          id,
        );
      }
      return revive(await live(this.model).andWhere('id', hashId(id)).first(), id);
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      return revive(await live(this.model).andWhere('uid', uid).first());
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      return revive(await live(this.model).andWhere('user_code', userCode).first());
    }

    /**
     * Single use, decided by the database: of requests racing to use one code or refresh token,
     * the one whose UPDATE changes the row wins. oidc-provider checks `consumed` before calling
     * this, so a loser got past that check: it is treated as a reuse (RFC 6749 §4.1.2, RFC 9700
     * §4.14.2), its grant is revoked with everything issued from it, and it gets invalid_grant.
     */
    async consume(id: string): Promise<void> {
      const key = { model: this.model, id: hashId(id) };
      if ((await db(TABLE).where(key).whereNull('consumed_at').update({ consumed_at: now() })) > 0) return;
      if (this.model === 'PushedAuthorizationRequest')
        throw new errors.InvalidRequestUri('request_uri is invalid, expired, or was already used');
      const row = await db<StoredRow>(TABLE).select('grant_id').where(key).first();
      if (row?.grant_id) await revokeGrant(db, row.grant_id);
      throw new errors.InvalidGrant(`${SINGLE_USE_LABELS[this.model] ?? 'grant'} already used`);
    }

    async destroy(id: string): Promise<void> {
      await db(TABLE)
        .where({ model: this.model, id: hashId(id) })
        .delete();
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await db(TABLE).where({ model: this.model, grant_id: grantId }).delete();
    }
  };
}

/** Deletes expired rows in batches; returns how many went. */
export async function purgeExpired(db: Db, at: number = Date.now(), batch = 1000): Promise<number> {
  let total = 0;
  for (;;) {
    const doomed = db(TABLE).select('model', 'id').whereNotNull('expires_at').andWhere('expires_at', '<=', at).limit(batch);
    const deleted = await db(TABLE).whereIn(['model', 'id'], doomed).delete();
    total += deleted;
    if (deleted < batch) return total;
  }
}

/**
 * oidc-provider's replay cache (client assertion `jti`s, DPoP proof `jti`s) as one atomic
 * statement: the row is inserted, or an expired one with the same key replaced; a live one makes
 * the statement change nothing. Of requests racing with one value, on any number of instances,
 * exactly one gets true. (oidc-provider's own `ReplayDetection.unique` finds, then saves: a race.)
 */
export function createReplayGuard(db: Db, now: () => number = Date.now) {
  return async function firstUse(id: string, expiresInSeconds: number): Promise<boolean> {
    const at = now();
    const inserted = await db(TABLE)
      .insert({
        model: 'ReplayDetection',
        id: hashId(id),
        payload: '{}',
        grant_id: null,
        client_id: null,
        account_id: null,
        uid: null,
        user_code: null,
        expires_at: at + Math.max(1, expiresInSeconds) * 1000,
        consumed_at: null,
      })
      .onConflict(['model', 'id'])
      .merge(['payload', 'expires_at'])
      .where(`${TABLE}.expires_at`, '<=', at)
      .returning('id');
    return inserted.length === 1;
  };
}
