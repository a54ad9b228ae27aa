import type { Context, Next } from 'koa';
import { renderPage } from '../shared/views.ts';

/** Where oidc-provider and the login pages set cookies (Secure under an https ISSUER). */
const BROWSER_PATHS = [/^\/auth(\/|$)/, /^\/interaction\//, /^\/session\/end(\/|$)/, /^\/(admin|account)(\/|$)(?!api\/)/];

/** The endpoints partners call: they answer in OAuth's JSON. */
const OAUTH_JSON_PATHS = [/^\/token(\/introspection|\/revocation)?$/, /^\/(userinfo|me|jwks)$/, /^\/\.well-known\/openid-configuration$/];

/** The start-up warning and the pages below name the setting the operator has to change. */
export const PLAIN_HTTP_WARNING =
  'ISSUER is https but TRUST_PROXY is not 1: this server speaks plain HTTP, so behind a TLS-terminating reverse proxy set TRUST_PROXY=1 (sign-in pages otherwise refuse to work)';

/**
 * An https ISSUER means cookies are `Secure`, and Koa refuses to set one on a request it sees
 * as plain HTTP: behind a TLS-terminating proxy that is every request unless TRUST_PROXY=1 lets
 * `X-Forwarded-Proto` count. Rather than the 500 that refusal becomes, say what is wrong:
 * - a browser page (sign-in, logout) gets a readable page: 503 when a proxy evidently
 *   forwarded the request (the server is misconfigured), 400 when someone opened the plain-HTTP
 *   address (open the https one);
 * - the OAuth JSON endpoints, when a proxy evidently forwarded the request, get
 *   `temporarily_unavailable` (their URLs in discovery would be http://, rate limits would
 *   count the proxy as one client). Without forwarding headers they answer as usual: a health
 *   check or an internal JWKS fetch over plain HTTP is not an error.
 */
export function secureTransport(options: { issuer: string; trustProxy: boolean }) {
  const https = options.issuer.startsWith('https:');
  return async function secureTransport(ctx: Context, next: Next): Promise<void> {
    if (!https || ctx.secure) {
      await next();
      return;
    }
    const forwarded = ctx.get('X-Forwarded-Proto') !== '' || ctx.get('X-Forwarded-For') !== '' || ctx.get('Forwarded') !== '';
    const misconfigured = forwarded && !options.trustProxy;
    if (BROWSER_PATHS.some((path) => path.test(ctx.path))) {
      ctx.status = misconfigured ? 503 : 400;
      ctx.type = 'html';
      ctx.set('Cache-Control', 'no-store');
      ctx.body = renderPage(ctx, 'This page needs HTTPS', 'error', {
        message: misconfigured
          ? 'This server is configured with an https address (ISSUER) but received this request over plain HTTP from a reverse proxy it does not trust. The operator must set TRUST_PROXY=1 so that the proxy’s X-Forwarded-Proto header counts.'
          : `This server signs you in over HTTPS only: open ${options.issuer} instead. (Operators: behind a TLS-terminating reverse proxy, set TRUST_PROXY=1.)`,
        code: misconfigured ? 'trust_proxy_not_set' : 'https_required',
      });
      return;
    }
    if (misconfigured && OAUTH_JSON_PATHS.some((path) => path.test(ctx.path))) {
      ctx.status = 503;
      ctx.set('Cache-Control', 'no-store');
      ctx.body = {
        error: 'temporarily_unavailable',
        error_description:
          'this server is misconfigured: ISSUER is https but requests arrive over plain HTTP through a proxy it does not trust; the operator must set TRUST_PROXY=1',
      };
      return;
    }
    await next();
  };
}
