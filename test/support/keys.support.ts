import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { basic, form, type Partner } from './http.ts';

/** Short key durations for tests: a rotation every 4 s, JWKS cacheable for 1 s. */
export const FAST_KEYS = { KEY_ROTATION_INTERVAL: '4s', KEY_PREPUBLISH: '3s', KEY_RETAIN: '3s', KEY_POLL_INTERVAL: '1s' };

/** A client-credentials token request; `status` and the token (when 200). */
export async function requestToken(url: string, partner: Partner): Promise<{ status: number; token?: string }> {
  const res = await fetch(`${url}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: basic(partner.clientId, partner.clientSecret),
    },
    body: form({ grant_type: 'client_credentials', scope: 'payments:read' }),
  });
  const body = (await res.json()) as { access_token?: string };
  return { status: res.status, token: body.access_token };
}

export async function fetchJwks(url: string): Promise<{ jwks: JSONWebKeySet; kids: string[]; maxAge: number | undefined }> {
  const res = await fetch(`${url}/jwks`);
  const jwks = (await res.json()) as JSONWebKeySet;
  const maxAge = /max-age=(\d+)/.exec(res.headers.get('cache-control') ?? '')?.[1];
  return { jwks, kids: jwks.keys.map((key) => key.kid!), maxAge: maxAge === undefined ? undefined : Number(maxAge) };
}

/**
 * A resource server that caches the JWKS for `cacheSeconds` and never refetches early, not even
 * for an unknown kid (jose refetches on an unknown kid only once its cool-down has passed).
 */
export function cachingVerifier(url: string, cacheSeconds: number) {
  const jwks = createRemoteJWKSet(new URL(`${url}/jwks`), { cacheMaxAge: cacheSeconds * 1000, cooldownDuration: cacheSeconds * 1000 });
  return (token: string, audience: string) => jwtVerify(token, jwks, { issuer: url, audience, typ: 'at+jwt', algorithms: ['ES256'] });
}

/**
 * A resource server that fetches the JWKS afresh for this one check. The token's own `iat` is
 * the clock, so the outcome depends only on whether its key is published, not on its expiry.
 */
export async function verifyWithFreshJwks(url: string, token: string, audience: string) {
  const { jwks } = await fetchJwks(url);
  const iat = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).iat as number;
  return jwtVerify(token, createLocalJWKSet(jwks), { issuer: url, audience, algorithms: ['ES256'], currentDate: new Date(iat * 1000) });
}

export function kidOf(token: string): string {
  return JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString()).kid as string;
}
