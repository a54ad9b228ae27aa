import { isLoopbackHostname } from '../shared/loopback-hosts.ts';

/** The longest a partner's keys fetched from its jwks_uri are kept before they are fetched again. */
export const JWKS_URI_MAX_AGE_SECONDS = 300;

/**
 * oidc-provider's outgoing fetch (a partner's jwks_uri). oidc-provider sets a 2.5 s timeout and a
 * dispatcher refusing addresses of private networks, and keeps the keys as long as Cache-Control
 * or Expires say (at least 60 s), fetching again only once they are stale. Here: freshness is
 * capped at JWKS_URI_MAX_AGE_SECONDS (a partner publishes a new key that long before signing with
 * it), and a loopback URL (a developer's own machine: `partner create` allows http only there)
 * skips the private-network guard.
 */
export async function partnerFetch(url: string | URL | Request, options: RequestInit & { dispatcher?: unknown }, now = Date.now()) {
  const target = new URL(url instanceof Request ? url.url : url);
  if (isLoopbackHostname(target.hostname)) delete options.dispatcher;
  const response = await globalThis.fetch(url, options);
  const headers = new Headers(response.headers);
  const maxAge = /max-age=(\d+)/.exec(headers.get('cache-control') ?? '')?.[1];
  const expires = Date.parse(headers.get('expires') ?? '');
  const seconds =
    maxAge !== undefined ? Number(maxAge) : Number.isNaN(expires) ? undefined : Math.max(0, Math.floor((expires - now) / 1000));
  headers.delete('expires');
  headers.delete('cache-control');
  if (seconds !== undefined) headers.set('cache-control', `max-age=${String(Math.min(seconds, JWKS_URI_MAX_AGE_SECONDS))}`);
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}
