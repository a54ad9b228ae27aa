import type { Context, Next } from 'koa';
import { ERROR_DETAIL } from '../shared/errors.ts';

/** RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E; we also drop `<` and `>`. */
const OUTSIDE_CHARSET = /[^\x20\x21\x23-\x3B\x3D\x3F-\x5B\x5D-\x7E]/g;
const MAX_LENGTH = 300;

export function cleanErrorDescription(text: string): string {
  const clean = text.replace(OUTSIDE_CHARSET, '?');
  return clean.slice(0, MAX_LENGTH);
}

/** oidc-provider's descriptions of a malformed `Authorization: Basic` header (lib/shared/client_auth.js). */
const BASIC_HEADER_REFUSALS = new Set([
  'invalid authorization header value format',
  'client_secret must be provided in the Authorization header',
  'client_id and client_secret in the authorization header are not properly encoded',
]);

/** The routes that authenticate a client (where the Authorization header means HTTP Basic). */
const CLIENT_AUTH_ROUTES = new Set(['token', 'introspection', 'revocation']);

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * What is wrong with an `Authorization` header sent as client credentials (RFC 6749 §2.3.1:
 * `Basic base64(urlencode(client_id) ":" urlencode(client_secret))`), or undefined when it is
 * well formed.
 */
export function basicCredentialsProblem(header: string): string | undefined {
  const value = header.trim();
  if (value === '') return 'it is empty';
  const parts = value.split(' ');
  const [scheme, encoded] = parts;
  if (scheme.toLowerCase() !== 'basic' || parts.length !== 2)
    return `expected "Basic " followed by base64(client_id:client_secret), got a ${scheme.slice(0, 20)} header`;
  if (encoded.length % 4 !== 0 || !BASE64.test(encoded)) return 'the part after "Basic " is not base64';
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) return 'the decoded value has no ":" between client_id and client_secret';
  let clientId: string;
  let secret: string;
  try {
    clientId = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
    secret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' '));
  } catch {
    return 'client_id and client_secret are not properly form-encoded (RFC 6749 section 2.3.1)';
  }
  if (!clientId && !secret) return 'both client_id and client_secret are empty (were the variables holding them set?)';
  if (!clientId) return 'the client_id (before the ":") is empty';
  if (!secret) return 'the client_secret (after the ":") is empty';
  return undefined;
}

type OAuthErrorBody = { error?: unknown; error_description?: unknown };

/** Refusals whose reason is the partner's own request (a DPoP proof, a client assertion): told once the partner is known. */
const DETAILED_ERRORS = new Set(['invalid_grant', 'invalid_client', 'invalid_dpop_proof', 'invalid_request']);

/** The provider's withheld reason, for a refusal of a known partner at a client-authenticating route. */
function withheldDetail(ctx: Context, body: OAuthErrorBody): string | undefined {
  const { oidc } = ctx as Context & { oidc?: { route?: string; client?: unknown } };
  const detail = (ctx.state as Record<symbol, unknown>)[ERROR_DETAIL];
  if (typeof detail !== 'string' || !oidc?.client || typeof body.error !== 'string' || !DETAILED_ERRORS.has(body.error)) return undefined;
  return detail;
}

/**
 * A partner whose registration this server cannot honour as configured (e.g. `tls_client_auth`
 * on a server without a client-certificate source) makes oidc-provider answer
 * `invalid_client_metadata`, a registration error that means nothing to a client at the token
 * endpoint: it is a failed client authentication (401 `invalid_client`) that says why.
 */
function misregisteredClient(ctx: Context, body: OAuthErrorBody): boolean {
  const { oidc } = ctx as Context & { oidc?: { route?: string } };
  if (
    body.error !== 'invalid_client_metadata' ||
    !oidc?.route ||
    !(CLIENT_AUTH_ROUTES.has(oidc.route) || oidc.route === 'pushed_authorization_request')
  )
    return false;
  ctx.status = 401;
  body.error = 'invalid_client';
  body.error_description = `client authentication failed: this partner's registration cannot be used by this server as configured (${String(body.error_description)})`;
  return true;
}

/** A clearer description for a client-authentication refusal, or undefined to keep the provider's. */
function clientAuthDescription(ctx: Context, body: OAuthErrorBody): string | undefined {
  const { oidc } = ctx as Context & { oidc?: { route?: string; client?: { clientAuthMethod: string } } };
  if (!oidc?.route || !CLIENT_AUTH_ROUTES.has(oidc.route)) return undefined;
  const header = ctx.get('Authorization');
  const sent = ctx.headers.authorization !== undefined;
  if (sent && typeof body.error_description === 'string' && BASIC_HEADER_REFUSALS.has(body.error_description)) {
    const problem = basicCredentialsProblem(header);
    return problem ? `the Authorization header is not valid Basic credentials: ${problem}` : undefined;
  }
  if (body.error === 'invalid_client') {
    if (!oidc.client) return 'client authentication failed: no active partner has this client_id';
    if (sent && oidc.client.clientAuthMethod === 'none')
      return 'client authentication failed: this partner is public (no secret): send client_id in the body, without an Authorization header';
    if (sent && oidc.client.clientAuthMethod !== 'client_secret_basic')
      return `client authentication failed: this partner authenticates with ${oidc.client.clientAuthMethod}, not a client secret`;
    if (sent)
      return 'client authentication failed: the client_secret does not match (it is shown once, by partner create or rotate-secret)';
  }
  return undefined;
}

/**
 * The net under every OAuth error body (oidc-provider's and ours): an `error_description` that
 * carries a piece of the request (a resource URI, a scope) reaches the client only within the
 * characters RFC 6749 allows, without markup, and bounded in length. A refused client
 * authentication says what was wrong with the credentials sent.
 */
export function oauthErrorText() {
  return async function oauthErrorText(ctx: Context, next: Next) {
    await next();
    const body = ctx.body as OAuthErrorBody | undefined;
    if (ctx.status < 400 || !body || typeof body !== 'object' || Buffer.isBuffer(body) || typeof body.error !== 'string') return;
    if (!misregisteredClient(ctx, body))
      body.error_description = clientAuthDescription(ctx, body) ?? withheldDetail(ctx, body) ?? body.error_description;
    if (typeof body.error_description === 'string') body.error_description = cleanErrorDescription(body.error_description);
  };
}
