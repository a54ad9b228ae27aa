import type { Context, Next } from 'koa';

/**
 * A middleware that changes one list of the discovery document on its way out: `edit` gets the
 * list oidc-provider wrote and returns the one to send (undefined: leave the member out).
 */
function editDiscoveryList(member: string, edit: (listed: string[]) => Promise<string[] | undefined>) {
  return async function editDiscovery(ctx: Context, next: Next) {
    await next();
    const { oidc } = ctx as Context & { oidc?: { route?: string } };
    if (oidc?.route !== 'discovery' || ctx.status !== 200) return;
    const body = ctx.body as Record<string, unknown> | undefined;
    if (!body || typeof body !== 'object' || !Array.isArray(body[member])) return;
    const edited = await edit(body[member] as string[]);
    // undefined is left out of the JSON, as an absent member
    body[member] = edited;
  };
}

/**
 * oidc-provider writes `scopes_supported` from its static `scopes` (the OpenID Connect ones):
 * API scopes live in the database and must stay out of that list (oidc-provider treats its
 * members as OIDC scopes). The discovery document gets them added on the way out, read per
 * request through `apiScopes` (cached briefly), so `resource create` / `update` show on every
 * instance without a restart.
 */
export function discoveryScopes(apiScopes: () => Promise<readonly string[]>) {
  return editDiscoveryList('scopes_supported', async (listed) => [
    ...listed,
    ...(await apiScopes()).filter((scope) => !listed.includes(scope)),
  ]);
}

/**
 * `authorization_details_types_supported` as oidc-provider writes it lists the names the serving
 * Provider was built with (src/oidc/authorization-details.ts); only those still registered are
 * accepted, so the list is cut to them (read per request through `registered`, cached briefly).
 * A name registered since is listed once a Provider that knows it serves (KEY_POLL_INTERVAL).
 * With no type registered, no `authorization_details` is accepted: the member is left out.
 */
export function discoveryDetailsTypes(registered: () => Promise<readonly string[]>) {
  return editDiscoveryList('authorization_details_types_supported', async (listed) => {
    const names = new Set(await registered());
    const supported = listed.filter((name) => names.has(name));
    return supported.length ? supported : undefined;
  });
}
