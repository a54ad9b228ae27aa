import type Provider from 'oidc-provider';
import type { AuditBy } from '../audit/audit.service.ts';
import { ADMIN_READ, ADMIN_WRITE } from '../resources/resource.service.ts';
import { AppError } from '../shared/errors.ts';

/**
 * Who may use the admin API (and the admin console): the bearer of an opaque access token that
 * Portcullis issued for the admin API (audience ISSUER/admin/api/v1) with an admin scope, whose
 * partner is still active and, for a token issued on behalf of a person, whose person is still an
 * active admin. A partner allowed admin scopes does not make a person an admin: both must hold.
 *
 * Sender-constrained tokens (DPoP- or certificate-bound) are refused with a message saying so:
 * the admin API does not verify DPoP proofs or client certificates, and accepting a bound token
 * without its proof would turn it back into a bearer token.
 */

/** The caller of the admin API, as audit rows and the routes need it. */
export type AdminCaller = Readonly<{
  /** actor partner:<client_id> (client credentials) or person:<account id>, with source IP and request id */
  by: AuditBy;
  scopes: ReadonlySet<string>;
  clientId: string;
  accountId?: string;
}>;

export type AdminTokenDeps = Readonly<{
  /** the Provider serving now (src/oidc/provider.holder.ts `current`): its models find tokens */
  provider: () => Provider;
  /** the admin API's resource indicator: the audience its tokens carry */
  audience: string;
  /** whether a partner's tokens may still be honoured (the partner directory's isActive) */
  partnerActive: (clientId: string) => Promise<boolean>;
  /** whether a person is an active admin now */
  personIsAdmin: (accountId: string) => Promise<boolean>;
}>;

/** A refusal with its RFC 6750 challenge: 401 invalid_token, 403 insufficient_scope, 403 not an admin. */
export class AdminTokenError extends AppError {
  readonly challenge: string;
  constructor(code: string, message: string, status: 401 | 403, challenge: string) {
    super(code, message, { status });
    this.challenge = challenge;
  }
}

/** RFC 6750 §3 parameter values are quoted strings: no `"` or `\` inside. */
const quoted = (text: string) => `"${text.replace(/["\\]/g, "'")}"`;

function challengeOf(realm: string, error?: string, description?: string, scope?: string): string {
  const params = [`realm=${quoted(realm)}`];
  if (error) params.push(`error=${quoted(error)}`);
  if (description) params.push(`error_description=${quoted(description)}`);
  if (scope) params.push(`scope=${quoted(scope)}`);
  return `Bearer ${params.join(', ')}`;
}

const invalidToken = (realm: string, description: string) =>
  new AdminTokenError('invalid_token', description, 401, challengeOf(realm, 'invalid_token', description));

/** The token of an `Authorization: Bearer …` header; a missing header is a 401 without error code (RFC 6750 §3.1). */
export function bearerToken(authorization: string | undefined, realm: string): string {
  if (!authorization)
    throw new AdminTokenError(
      'unauthorized',
      'an access token for the admin API is required (Authorization: Bearer …)',
      401,
      challengeOf(realm),
    );
  const match = /^Bearer +([\w~+/.-]+=*) *$/i.exec(authorization);
  if (!match) throw invalidToken(realm, 'the Authorization header must be "Bearer" and one access token');
  return match[1];
}

/** What an opaque token value can be (oidc-provider's are 43 base64url characters). */
const OPAQUE_TOKEN = /^[\w-]{20,128}$/;

type FoundToken = {
  clientId?: string;
  accountId?: string;
  aud?: string | string[];
  scope?: string;
  isExpired: boolean;
  isSenderConstrained(): boolean;
};

/**
 * Checks an access token for the admin API and says who holds it. `scope`: the scope the request
 * needs (admin:read to read, admin:write to change). Throws AdminTokenError (401 or 403).
 */
export async function verifyAdminToken(
  deps: AdminTokenDeps,
  token: string,
  request: { scope: typeof ADMIN_READ | typeof ADMIN_WRITE; sourceIp?: string; requestId?: string },
): Promise<AdminCaller> {
  const realm = deps.audience;
  const provider = deps.provider();
  const found = (
    OPAQUE_TOKEN.test(token) ? ((await provider.AccessToken.find(token)) ?? (await provider.ClientCredentials.find(token))) : undefined
  ) as FoundToken | undefined;
  if (!found || found.isExpired || !found.clientId)
    throw invalidToken(realm, 'the access token is unknown, expired or revoked (the admin API takes opaque tokens it issued)');
  if (![found.aud ?? []].flat().includes(deps.audience))
    throw invalidToken(realm, `the access token is not for the admin API: ask for one with resource=${deps.audience}`);
  if (found.isSenderConstrained())
    throw invalidToken(
      realm,
      'the admin API does not take sender-constrained (DPoP or certificate-bound) tokens: it cannot check their proof; use a partner whose tokens are bearer tokens',
    );
  if (!(await deps.partnerActive(found.clientId)))
    throw invalidToken(realm, 'the partner this token was issued to is suspended or deleted');
  if (found.accountId !== undefined && !(await deps.personIsAdmin(found.accountId)))
    throw new AdminTokenError(
      'not_an_admin',
      'the person this token acts for is not an active admin',
      403,
      challengeOf(realm, 'insufficient_scope', 'the person this token acts for is not an active admin', request.scope),
    );
  const scopes = new Set((found.scope ?? '').split(' ').filter(Boolean));
  if (!scopes.has(request.scope)) {
    const description = `this request needs the scope ${request.scope}`;
    throw new AdminTokenError('insufficient_scope', description, 403, challengeOf(realm, 'insufficient_scope', description, request.scope));
  }
  const actor =
    found.accountId === undefined ? ({ type: 'partner', id: found.clientId } as const) : ({ type: 'person', id: found.accountId } as const);
  return {
    by: { actor, sourceIp: request.sourceIp, requestId: request.requestId },
    scopes,
    clientId: found.clientId,
    ...(found.accountId === undefined ? {} : { accountId: found.accountId }),
  };
}
