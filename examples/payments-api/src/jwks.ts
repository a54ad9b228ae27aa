import * as jose from 'jose';

// The issuer's signing keys, cached as Portcullis says (Cache-Control: max-age on /jwks, which it
// keeps below KEY_PREPUBLISH: a key is published before it signs, so a cache that honours it
// never meets an unknown kid in a planned rotation). An unknown kid still happens after an
// emergency `keys revoke` (a new key signs at once): the JWKS is then fetched again once, but
// not more often than `refetchEveryMs` whatever tokens arrive (a flood of made-up kids costs the
// issuer one request per interval). A failed fetch keeps the keys already held.

export type JwksCacheOptions = Readonly<{
  now: () => number;
  fetch?: typeof fetch;
  /** least time between two fetches caused by an unknown kid (default 2 s) */
  refetchEveryMs?: number;
  /** the cache time when the answer has no max-age (default 60 s); any max-age is capped at 1 h */
  defaultMaxAgeMs?: number;
}>;

export class JwksUnavailable extends Error {}

type Held = { keys: Map<string, jose.JWK>; fetchedAt: number; maxAgeMs: number };

const MAX_AGE_CAP_MS = 3_600_000;
const RETRY_AFTER_FAILURE_MS = 5_000;

// guide:begin jwks
/** A key resolver for jose's jwtVerify: the issuer's key for the token's `kid`, from the cache. */
export function jwksCache(jwksUri: string, options: JwksCacheOptions) {
  const refetchEveryMs = options.refetchEveryMs ?? 2_000;
  const fetchJwks = options.fetch ?? fetch;
  let held: Held | undefined;
  let lastFetchAt = -Infinity;
  let inFlight: Promise<void> | undefined;
  const imported = new Map<string, Promise<jose.CryptoKey | Uint8Array>>();

  async function load(): Promise<void> {
    lastFetchAt = options.now();
    try {
      const response = await fetchJwks(jwksUri, { headers: { accept: 'application/json' } });
      if (!response.ok) throw new Error(`${jwksUri} answered ${response.status}`);
      const { keys } = (await response.json()) as jose.JSONWebKeySet;
      const maxAge = /(?:^|,)\s*max-age=(\d+)/.exec(response.headers.get('cache-control') ?? '')?.[1];
      held = {
        keys: new Map(keys.flatMap((key) => (key.kid && key.use !== 'enc' ? [[key.kid, key] as const] : []))),
        fetchedAt: options.now(),
        maxAgeMs: Math.min(maxAge === undefined ? (options.defaultMaxAgeMs ?? 60_000) : Number(maxAge) * 1000, MAX_AGE_CAP_MS),
      };
    } catch (error) {
      if (!held) throw new JwksUnavailable(`cannot fetch the issuer's keys: ${(error as Error).message}`);
      held.fetchedAt = options.now(); // keep serving the keys held; try again a little later
      held.maxAgeMs = RETRY_AFTER_FAILURE_MS;
    }
  }
  /** One fetch at a time: concurrent requests share it. */
  const refresh = () => (inFlight ??= load().finally(() => (inFlight = undefined)));

  return async function keyFor(header: jose.JWTHeaderParameters): Promise<jose.CryptoKey | Uint8Array> {
    if (!header.kid) throw new jose.errors.JWKSNoMatchingKey('the token names no key (no kid)');
    if (!held || options.now() - held.fetchedAt >= held.maxAgeMs) await refresh();
    if (!held?.keys.has(header.kid) && options.now() - lastFetchAt >= refetchEveryMs) await refresh(); // once, rate-limited
    const jwk = held?.keys.get(header.kid);
    if (!jwk) throw new jose.errors.JWKSNoMatchingKey(`key ${header.kid} is not in the issuer's JWKS (unknown or revoked)`);
    const cacheKey = `${header.kid}:${header.alg}:${JSON.stringify(jwk)}`;
    let key = imported.get(cacheKey);
    if (!key) imported.set(cacheKey, (key = jose.importJWK(jwk, header.alg)));
    return key;
  };
}
// guide:end jwks
