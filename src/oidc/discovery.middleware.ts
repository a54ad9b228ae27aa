import type { Context, Next } from 'koa';

/**
 * oidc-provider writes `scopes_supported` from its static `scopes` (the OpenID Connect ones):
 * API scopes live in the database and must stay out of that list (oidc-provider treats its
 * members as OIDC scopes). The discovery document gets them added on the way out, read per
 * request through `apiScopes` (cached briefly), so `resource create` / `update` show on every
 * instance without a restart.
 */
export function discoveryScopes(apiScopes: () => Promise<readonly string[]>) {
  return async function discoveryScopes(ctx: Context, next: Next) {
    await next();
    const { oidc } = ctx as Context & { oidc?: { route?: string } };
    if (oidc?.route !== 'discovery' || ctx.status !== 200) return;
    const body = ctx.body as { scopes_supported?: unknown } | undefined;
    if (!body || typeof body !== 'object' || !Array.isArray(body.scopes_supported)) return;
    const listed = body.scopes_supported as string[];
    body.scopes_supported = [...listed, ...(await apiScopes()).filter((scope) => !listed.includes(scope))];
  };
}
