import type { Context, Next } from 'koa';
import type { ClientAuthMethod, Configuration, KoaContextWithOIDC } from 'oidc-provider';
import type { TlsConfig } from '../config/config.ts';
import { issuedByTrusted, requestCertificate, type CertificateSource } from '../shared/client-certificate.ts';
import { subjectMatches } from '../shared/distinguished-name.ts';

/**
 * RFC 8705 (OAuth 2.0 mutual TLS) as oidc-provider's `features.mTLS`, on when a client
 * certificate can reach this server at all: its own TLS listener (TLS_CERT), or a trusted proxy's
 * header (TRUST_PROXY=1 + TLS_CLIENT_CERT_HEADER). Then:
 * - `self_signed_tls_client_auth`: the partner registered its certificate (a JWKS key with `x5c`);
 * - `tls_client_auth`, only with TLS_CLIENT_CA: a certificate issued by one of those CAs whose
 *   subject is the partner's registered DN (src/shared/distinguished-name.ts);
 * - certificate-bound tokens (`cnf.x5t#S256`) for partners registered with
 *   `tls_client_certificate_bound_access_tokens`, whatever their client authentication.
 * Without a source none of it is enabled, and discovery says nothing of it.
 */
export function withMtls(configuration: Configuration, tls: TlsConfig, trustProxy: boolean): Configuration {
  const source = certificateSourceOf(tls, trustProxy);
  const tlsMethods: ClientAuthMethod[] = ['tls_client_auth', 'self_signed_tls_client_auth'];
  const others = [...(configuration.clientAuthMethods ?? [])].filter((method) => !tlsMethods.includes(method));
  if (!source) return { ...configuration, clientAuthMethods: others };
  const authorities = tls.clientCa?.certificates;
  const certificateOf = (ctx: KoaContextWithOIDC) => requestCertificate(ctx.req, source);
  return {
    ...configuration,
    clientAuthMethods: [...others, ...(authorities ? ['tls_client_auth' as const] : []), 'self_signed_tls_client_auth'],
    features: {
      ...configuration.features,
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        selfSignedTlsClientAuth: true,
        tlsClientAuth: Boolean(authorities),
        getCertificate: certificateOf,
        certificateAuthorized(ctx) {
          const certificate = certificateOf(ctx);
          return Boolean(certificate && authorities && issuedByTrusted(certificate, authorities));
        },
        // `partner create` registers a subject DN only; the SAN alternatives of RFC 8705 §2.1.2 match nothing
        certificateSubjectMatches(ctx, property, expected) {
          const certificate = certificateOf(ctx);
          return Boolean(certificate && property === 'tls_client_auth_subject_dn' && subjectMatches(certificate, expected));
        },
      },
    },
  };
}

function certificateSourceOf(tls: TlsConfig, trustProxy: boolean): CertificateSource | undefined {
  if (tls.listener) return { header: undefined };
  if (trustProxy && tls.clientCertHeader) return { header: tls.clientCertHeader };
  return undefined;
}

/** The endpoints a partner calls with its certificate (RFC 8705 §5), as discovery names them. */
const ALIASED = [
  'token_endpoint',
  'revocation_endpoint',
  'introspection_endpoint',
  'pushed_authorization_request_endpoint',
  'userinfo_endpoint',
] as const;

/**
 * RFC 8705 §5 `mtls_endpoint_aliases` in discovery when mutual TLS is on. Every connection is
 * asked for a certificate (natively, or by the proxy in front), so the aliases are the endpoints'
 * own URLs: a client that prefers the aliases (oauth4webapi's `useMtlsAlias`) lands on the same
 * endpoints. (A deployment that asks for certificates on a host of its own would list that host's
 * URLs here: not supported.)
 */
export function mtlsEndpointAliases(tls: TlsConfig, trustProxy: boolean) {
  const enabled = certificateSourceOf(tls, trustProxy) !== undefined;
  return async function mtlsEndpointAliases(ctx: Context, next: Next) {
    await next();
    const { oidc } = ctx as Context & { oidc?: { route?: string } };
    if (!enabled || oidc?.route !== 'discovery' || ctx.status !== 200) return;
    const body = ctx.body as Record<string, unknown> | undefined;
    if (!body || typeof body !== 'object') return;
    const aliases = Object.fromEntries(ALIASED.flatMap((name) => (typeof body[name] === 'string' ? [[name, body[name]]] : [])));
    body.mtls_endpoint_aliases = aliases;
  };
}
