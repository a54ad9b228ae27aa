import { createHash } from 'node:crypto';
import * as jose from 'jose';
import * as oauth from 'oauth4webapi';
import { Refusal } from './challenges.ts';
import type { ApiConfig } from './config.ts';
import { dpopChecker } from './dpop.ts';
import { introspector, IntrospectionUnavailable, type Introspect } from './introspection.ts';
import { jwksCache, JwksUnavailable } from './jwks.ts';

// Every transport asks one question: who is this token for, and may it be used here? A JWT
// access token (RFC 9068) is verified offline against the issuer's JWKS with jose; an opaque one
// is introspected. Both then go through the same checks of audience, expiry and sender
// constraint (DPoP proof or client certificate).

/** Who a token speaks for, and what it allows. */
export type Principal = Readonly<{
  clientId: string;
  subject: string;
  scopes: ReadonlySet<string>;
  /** epoch milliseconds */
  expiresAt: number;
  /** what the person approved (RFC 9396), as the token carries it */
  authorizationDetails: readonly unknown[];
  format: 'jwt' | 'opaque';
  /** the access token itself: a session asks about it again (opaque) */
  token: string;
  binding: 'dpop' | 'mtls' | undefined;
}>;

/** A request as far as authentication goes, from any transport. */
export type Presented = Readonly<{
  authorization: string | undefined;
  dpop: string | undefined;
  method: string;
  /** the URL the client called (a DPoP proof's htu) */
  url: string;
  /** the DER of the client's TLS certificate, when it sent one */
  peerCertificate: Buffer | undefined;
}>;

/** The issuer cannot be asked right now (JWKS or introspection): 503, not a refusal of the token. */
export class Unavailable extends Error {}

export type VerifierOptions = Readonly<{ now?: () => number; fetch?: typeof fetch; introspectionCacheMs?: number }>;

const JWT_SHAPE = /^[\w-]*\.[\w-]*\.[\w-]*$/;

/** Messages of jose's errors, as a client should read them in error_description. */
function jwtProblem(error: unknown): string {
  if (error instanceof jose.errors.JWTExpired) return 'the access token has expired';
  if (error instanceof jose.errors.JWTClaimValidationFailed)
    return `the access token's ${error.claim} is not accepted here: ${error.message}`;
  if (error instanceof jose.errors.JOSEAlgNotAllowed) return 'the access token is not signed with ES256 (alg)';
  if (error instanceof jose.errors.JWKSNoMatchingKey)
    return `the access token is not signed by a current key of the issuer: ${error.message}`;
  if (error instanceof jose.errors.JWSSignatureVerificationFailed) return 'the access token signature is not valid';
  return `the access token is not valid: ${(error as Error).message}`;
}

export function tokenVerifier(config: ApiConfig, options: VerifierOptions = {}) {
  const now = options.now ?? Date.now;
  const insecure = { [oauth.allowInsecureRequests]: new URL(config.issuer).protocol === 'http:' }; // loopback only (config.ts)
  const custom = options.fetch ? { [oauth.customFetch]: options.fetch } : {};
  let as: oauth.AuthorizationServer | undefined;
  let keys: ReturnType<typeof jwksCache> | undefined;
  let introspect: Introspect | undefined;
  const dpop = dpopChecker({ now });

  /** The issuer's metadata (OpenID discovery), fetched at first use and again after a failure. */
  async function discover(): Promise<ReturnType<typeof jwksCache>> {
    if (keys) return keys;
    try {
      const response = await oauth.discoveryRequest(new URL(config.issuer), { ...insecure, ...custom });
      as = await oauth.processDiscoveryResponse(new URL(config.issuer), response);
    } catch (error) {
      throw new Unavailable(`cannot read the issuer's discovery document: ${(error as Error).message}`);
    }
    if (config.introspection)
      introspect = introspector({ as, ...config.introspection, now, fetch: options.fetch, maxCacheMs: options.introspectionCacheMs });
    keys = jwksCache(as.jwks_uri ?? `${config.issuer}/jwks`, { now, fetch: options.fetch });
    return keys;
  }

  // guide:begin verify-jwt
  async function jwtClaims(token: string): Promise<jose.JWTPayload> {
    const keyFor = await discover();
    try {
      const { payload } = await jose.jwtVerify(token, keyFor, {
        issuer: config.issuer,
        audience: config.audience,
        typ: 'at+jwt', // RFC 9068: an ID token (typ JWT) is not an access token
        algorithms: ['ES256'], // what Portcullis signs with; `alg: none` is never accepted
        requiredClaims: ['exp', 'iat', 'sub', 'client_id', 'jti'],
        currentDate: new Date(now()),
      });
      return payload;
    } catch (error) {
      if (error instanceof JwksUnavailable) throw new Unavailable(error.message);
      throw new Refusal('invalid_token', jwtProblem(error));
    }
  }
  // guide:end verify-jwt

  // guide:begin verify-opaque
  async function opaqueClaims(token: string, fresh = false): Promise<jose.JWTPayload> {
    await discover();
    if (!introspect) throw new Refusal('invalid_token', 'opaque access tokens are not accepted here (no introspection credential)');
    let answer: oauth.IntrospectionResponse;
    try {
      answer = await introspect(token, { fresh });
    } catch (error) {
      if (error instanceof IntrospectionUnavailable) throw new Unavailable(error.message);
      throw error;
    }
    if (!answer.active) throw new Refusal('invalid_token', 'the access token is not active (expired, revoked or unknown)');
    const audiences = [answer.aud ?? []].flat();
    if (!audiences.includes(config.audience))
      throw new Refusal('invalid_token', `the access token is for ${audiences.join(' ') || 'no audience'}, not ${config.audience}`);
    if (answer.iss !== undefined && answer.iss !== config.issuer)
      throw new Refusal('invalid_token', 'the access token is from another issuer');
    if (typeof answer.exp !== 'number' || answer.exp * 1000 <= now()) throw new Refusal('invalid_token', 'the access token has expired');
    return answer;
  }
  // guide:end verify-opaque

  function principalOf(claims: jose.JWTPayload, token: string, format: Principal['format']): Principal {
    const cnf = (claims.cnf ?? {}) as { jkt?: string; 'x5t#S256'?: string };
    return {
      clientId: String(claims.client_id),
      subject: String(claims.sub),
      scopes: new Set(typeof claims.scope === 'string' ? claims.scope.split(' ') : []),
      expiresAt: (claims.exp ?? 0) * 1000,
      authorizationDetails: Array.isArray(claims.authorization_details) ? (claims.authorization_details as unknown[]) : [],
      format,
      token,
      binding: cnf.jkt ? 'dpop' : cnf['x5t#S256'] ? 'mtls' : undefined,
    };
  }

  // guide:begin sender-constraint
  /** RFC 9449 (DPoP) and RFC 8705 §3 (certificate-bound): the token only with its proof. */
  async function checkBinding(claims: jose.JWTPayload, token: string, scheme: string, presented: Presented): Promise<void> {
    const cnf = (claims.cnf ?? {}) as { jkt?: string; 'x5t#S256'?: string };
    if (cnf.jkt) {
      if (scheme !== 'dpop')
        throw new Refusal('invalid_token', 'this token is DPoP-bound: send it as Authorization: DPoP with a DPoP proof', {
          scheme: 'DPoP',
        });
      await dpop.check({ proof: presented.dpop, method: presented.method, url: presented.url, accessToken: token, jkt: cnf.jkt });
    } else if (scheme === 'dpop') {
      throw new Refusal('invalid_token', 'this token is not DPoP-bound: send it as Authorization: Bearer', { scheme: 'DPoP' });
    }
    if (cnf['x5t#S256']) {
      const thumbprint = presented.peerCertificate && createHash('sha256').update(presented.peerCertificate).digest('base64url');
      if (thumbprint !== cnf['x5t#S256'])
        throw new Refusal('invalid_token', 'this token is bound to a client certificate: connect with that certificate (mutual TLS)');
    }
  }
  // guide:end sender-constraint

  return {
    /** Who the presented token speaks for; a Refusal (with its challenge) or Unavailable otherwise. */
    async verify(presented: Presented): Promise<Principal> {
      const match = /^(Bearer|DPoP) +([\x21-\x7e]+)$/i.exec(presented.authorization ?? '');
      if (!presented.authorization) throw Refusal.missing();
      if (!match)
        throw new Refusal('invalid_request', 'the Authorization header must be "Bearer TOKEN" or "DPoP TOKEN"', { scheme: 'both' });
      const scheme = match[1].toLowerCase();
      const token = match[2];
      const format = JWT_SHAPE.test(token) ? 'jwt' : 'opaque';
      try {
        const claims = format === 'jwt' ? await jwtClaims(token) : await opaqueClaims(token);
        await checkBinding(claims, token, scheme, presented);
        return principalOf(claims, token, format);
      } catch (error) {
        // a request made with DPoP is answered with a DPoP challenge (RFC 9449 §7.1)
        throw error instanceof Refusal && scheme === 'dpop' && error.scheme !== 'DPoP' ? withScheme(error, 'DPoP') : error;
      }
    },

    /** For sessions: is an opaque token still active (asked afresh, so a revocation shows)? */
    async stillActive(principal: Principal): Promise<boolean> {
      if (principal.format === 'jwt') return principal.expiresAt > now();
      try {
        await opaqueClaims(principal.token, true);
        return true;
      } catch (error) {
        if (error instanceof Refusal) return false;
        return true; // the issuer cannot be asked: keep the session until its next check or its expiry
      }
    },

    /** The DPoP nonce to hand out (DPoP-Nonce header). */
    dpopNonce: () => dpop.nonce(),
  };
}

export type TokenVerifier = ReturnType<typeof tokenVerifier>;

function withScheme(refusal: Refusal, scheme: 'DPoP' | 'Bearer'): Refusal {
  return new Refusal(refusal.code, refusal.message, { scheme, nonce: refusal.nonce, scope: refusal.scope });
}

// guide:begin scope
/** A route's scope (RFC 6750 §3.1 insufficient_scope, 403), challenged in the token's own scheme. */
export function requireScope(principal: Principal, scope: string): void {
  if (!principal.scopes.has(scope))
    throw new Refusal('insufficient_scope', `this needs the scope ${scope}`, {
      scope,
      scheme: principal.binding === 'dpop' ? 'DPoP' : 'Bearer',
    });
}
// guide:end scope
