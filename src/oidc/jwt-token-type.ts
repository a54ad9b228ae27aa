import type { Context, Next } from 'koa';
import type { KoaContextWithOIDC } from 'oidc-provider';

/** A JWS compact value whose header says it is an RFC 9068 access token. */
export function isJwtAccessToken(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  const parts = value.split('.');
  if (parts.length !== 3) return false;
  try {
    const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')) as { typ?: unknown };
    return typeof header.typ === 'string' && header.typ.toLowerCase().replace(/^application\//, '') === 'at+jwt';
  } catch {
    return false;
  }
}

/**
 * JWT access tokens are not stored, so the provider would call them inactive (introspection)
 * or silently accept their revocation. Say instead what RFC 7009 §2.2.1 has the code for: the
 * server does not support this token type here; verify it against the JWKS.
 */
export function jwtTokenTypeGuard(paths: { introspection: string; revocation: string }) {
  return async function guard(ctx: Context, next: Next) {
    await next();
    if (ctx.method !== 'POST' || ctx.status !== 200) return;
    if (ctx.path !== paths.introspection && ctx.path !== paths.revocation) return;
    // oidc-provider's router adds `oidc` to the requests it routes: this middleware runs before it
    const { oidc } = ctx as Context & { oidc?: KoaContextWithOIDC['oidc'] };
    const token = oidc?.params?.token;
    if (!isJwtAccessToken(token)) return;
    if (ctx.path === paths.introspection && (ctx.body as { active?: boolean } | undefined)?.active !== false) return;
    ctx.status = 400;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      error: 'unsupported_token_type',
      error_description: 'JWT access tokens are self-contained: verify them with the keys at the jwks_uri',
    };
  };
}
