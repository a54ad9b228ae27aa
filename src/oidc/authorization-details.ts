import { errors, type AuthorizationDetail, type Client, type KoaContextWithOIDC } from 'oidc-provider';
import { PAYMENT_INITIATION } from '../resources/payment-initiation.ts';
import type { ResourceDirectory } from '../resources/resource.service.ts';

/**
 * Rich authorization requests (RFC 9396): oidc-provider's `features.richAuthorizationRequests`.
 *
 * The types are registered at run time (`resource create … --details-type`), but oidc-provider
 * copies `types` when a Provider is built and refuses any other name as unsupported. So a
 * Provider gets one validator per name registered when it was built (plus the built-in
 * `payment_initiation`), and each validator reads the registration afresh (cached for the
 * directory's few seconds): a type dropped or re-schemed applies at once, and a new name is
 * taken once the server builds its next Provider, which it does when it sees the list of names
 * change (every KEY_POLL_INTERVAL, src/resources/details-type.job.ts).
 *
 * What reaches a token: the consent step puts what the person approved in the grant
 * (`grant.addRar`); a code carries the details of its own authorization request only, and only
 * if the grant holds them (approved); an access token carries those of its code or refresh token
 * that belong to its audience (the API of their type). Details asked for with client
 * credentials are refused: they need a person's approval.
 */

type Directory = Pick<ResourceDirectory, 'detailsType' | 'findDefault'>;

/** The authorization endpoint and PAR: where details are first asked for, and a resource named. */
const AUTHORIZATION_ROUTES = new Set(['authorization', 'pushed_authorization_request']);

/** A JSON value with its object keys sorted: two details are the same when these are equal. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object')
    return `{${Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonical((value as Record<string, unknown>)[key])}`)
      .join(',')}}`;
  return JSON.stringify(value);
}

const within = (list: readonly AuthorizationDetail[], detail: AuthorizationDetail) =>
  list.some((entry) => canonical(entry) === canonical(detail));

/** The `authorization_details` parameter of this request (oidc-provider has checked it is a JSON array of objects). */
function requested(ctx: KoaContextWithOIDC): AuthorizationDetail[] | undefined {
  const text = ctx.oidc.params?.authorization_details;
  if (typeof text !== 'string') return undefined;
  const details = JSON.parse(text) as AuthorizationDetail[];
  return details.length ? details : undefined;
}

/** The APIs the partner's allow-list has a scope of (client metadata `partner_scopes`: API URI → scopes). */
function allowedApis(client: Client): Set<string> {
  const allowed = (client.metadata().partner_scopes ?? {}) as Record<string, unknown>;
  return new Set(Object.keys(allowed).filter((uri) => Array.isArray(allowed[uri]) && allowed[uri].length > 0));
}

/** The resources this authorization request names, or the default one when it names none. */
async function requestedResources(ctx: KoaContextWithOIDC, directory: Directory): Promise<string[]> {
  const named = [ctx.oidc.params?.resource ?? []].flat().filter((value): value is string => typeof value === 'string');
  if (named.length) return named;
  const fallback = await directory.findDefault();
  return fallback ? [fallback.uri] : [];
}

const refuse = (type: string, why: string) => new errors.InvalidAuthorizationDetails(`${type}: ${why}`);

/** Whether `detail` may be asked for by `client` here: its type registered, allowed, for the resource asked for, and valid by its schema. */
async function validate(directory: Directory, ctx: KoaContextWithOIDC, detail: AuthorizationDetail, client: Client) {
  const { type } = detail;
  const registered = await directory.detailsType(type);
  if (!registered) throw new errors.InvalidAuthorizationDetails(`unsupported authorization details type value '${type}'`);
  if (!allowedApis(client).has(registered.resourceUri))
    throw new errors.InvalidAuthorizationDetails(
      `authorization details type '${type}' is not allowed for this client (no scope of ${registered.resourceUri} in its allow-list)`,
    );
  const { detailsValidator } = await import('../resources/details-schema.ts');
  const problem = detailsValidator(registered.schema)(detail);
  if (problem) throw refuse(type, problem);
  const locations = Array.isArray(detail.locations) ? (detail.locations as unknown[]) : [];
  if (locations.some((location) => location !== registered.resourceUri))
    throw refuse(type, `locations may name only ${registered.resourceUri}, the API of this type`);
  if (AUTHORIZATION_ROUTES.has(ctx.oidc.route) && !(await requestedResources(ctx, directory)).includes(registered.resourceUri))
    throw refuse(type, `this type is for ${registered.resourceUri}: ask for that resource (resource=${registered.resourceUri})`);
}

/**
 * The feature's configuration for a Provider built now, `known` being the type names registered
 * at this moment (a name registered later needs the next Provider: see above).
 */
export function authorizationDetails(directory: Directory, known: readonly string[]) {
  const names = [...new Set([PAYMENT_INITIATION, ...known])];
  return {
    enabled: true,
    types: Object.fromEntries(
      names.map((name) => [
        name,
        { validate: (ctx: KoaContextWithOIDC, detail: AuthorizationDetail, client: Client) => validate(directory, ctx, detail, client) },
      ]),
    ),
    /** A code carries its own request's details, each approved by the person (in the grant by the consent step), no other. */
    authorizationDetailsForGrantSource(ctx: KoaContextWithOIDC) {
      const details = requested(ctx);
      if (!details) return undefined;
      const approved = ctx.oidc.grant?.rar ?? [];
      if (!details.every((detail) => within(approved, detail)))
        throw new errors.AccessDenied('the person has not approved these authorization_details');
      return details;
    },
    /**
     * An access token carries what its code or refresh token carries (the token request may ask
     * for part of it), less what belongs to another API than the token's.
     */
    async authorizationDetailsForAccessToken(
      ctx: KoaContextWithOIDC,
      token: { resourceServer?: { audience?: string } },
      source: { rar?: AuthorizationDetail[] } | undefined,
    ) {
      const asked = requested(ctx);
      if (!source) {
        if (asked)
          throw new errors.InvalidAuthorizationDetails('authorization_details need a person’s approval: ask in an authorization request');
        return undefined;
      }
      const granted = source.rar ?? [];
      if (asked && !asked.every((detail) => within(granted, detail)))
        throw new errors.InvalidAuthorizationDetails('these authorization_details were not approved in this grant');
      const audience = token.resourceServer?.audience;
      if (!audience) return undefined;
      const kept: AuthorizationDetail[] = [];
      for (const detail of asked ?? granted) {
        if ((await directory.detailsType(detail.type))?.resourceUri === audience) kept.push(detail);
      }
      return kept.length ? kept : undefined;
    },
    authorizationDetailsForIntrospection(_ctx: KoaContextWithOIDC, token: { rar?: AuthorizationDetail[] }) {
      return token.rar;
    },
  };
}
