import type Provider from 'oidc-provider';
import type { AuthorizationDetail, Grant, Interaction, KoaContextWithOIDC } from 'oidc-provider';
import type { Db } from '../db/knex.ts';
import { findScopeDescriptions } from '../resources/scope-description.store.ts';
import { findConsentGrantId, saveConsent } from './consent.store.ts';

/** Words for the scopes OpenID Connect defines; resource scopes take theirs from the database. */
const OIDC_SCOPE_WORDS: Partial<Record<string, string>> = {
  openid: 'Know who you are (your account identifier)',
  offline_access: 'Keep access while you are not using it',
};

type Missing = {
  missingOIDCScope?: string[];
  missingOIDCClaims?: string[];
  missingResourceScopes?: Record<string, string[]>;
  /** the request's `authorization_details` (RFC 9396): asked every time, never remembered */
  rar?: AuthorizationDetail[];
};

function missing(interaction: Interaction): Missing {
  return interaction.prompt.details;
}

/** Every scope the person is asked to give, in order, without repeats. */
export function requestedScopes(interaction: Interaction): string[] {
  const details = missing(interaction);
  const scopes = [...(details.missingOIDCScope ?? []), ...Object.values(details.missingResourceScopes ?? {}).flat()];
  return [...new Set(scopes)];
}

/** The `authorization_details` the person is asked to approve (oidc-provider asks whenever a request carries any). */
export function requestedDetails(interaction: Interaction): AuthorizationDetail[] {
  return missing(interaction).rar ?? [];
}

/**
 * Approved details kept in a grant: a code takes its own request's details only if the grant
 * holds them (src/oidc/authorization-details.ts), which it needs between the consent and the
 * code, seconds; older ones are dropped beyond this many, so a grant used for payment after
 * payment does not grow for ever.
 */
const APPROVED_DETAILS_KEPT = 20;

/** Each scope in words, with its technical name for the curious. */
export async function scopeWords(db: Db, scopes: readonly string[]): Promise<Array<{ scope: string; words: string }>> {
  const described = await findScopeDescriptions(db, scopes);
  return scopes.map((scope) => ({ scope, words: described.get(scope) ?? OIDC_SCOPE_WORDS[scope] ?? `Use “${scope}” on your behalf` }));
}

/** Adds what the interaction asks for to the existing grant (or a new one) and remembers it. */
export async function grantConsent(provider: Provider, db: Db, interaction: Interaction, accountId: string, now: number): Promise<string> {
  const clientId = String(interaction.params.client_id);
  const existing = interaction.grantId ? await provider.Grant.find(interaction.grantId) : undefined;
  const grant = existing ?? new provider.Grant({ accountId, clientId });
  const details = missing(interaction);
  if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
  if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {}))
    grant.addResourceScope(indicator, scopes.join(' '));
  if (details.rar?.length) {
    grant.rar = (grant.rar ?? []).slice(-Math.max(0, APPROVED_DETAILS_KEPT - details.rar.length));
    for (const detail of details.rar) grant.addRar(detail);
  }
  const grantId = await grant.save();
  await saveConsent(db, accountId, clientId, grantId, now);
  return grantId;
}

/**
 * oidc-provider's `loadExistingGrant`, extended: besides the grant of this browser session, a
 * grant the person gave this partner in an earlier session counts, until it is revoked.
 */
export function createGrantLoader(db: Db) {
  return async function loadExistingGrant(ctx: KoaContextWithOIDC): Promise<Grant | undefined> {
    const { session, client, result, provider } = ctx.oidc;
    const accountId = session?.accountId;
    if (!session || !accountId || !client) return undefined;
    const candidates = [
      result?.consent?.grantId,
      session.grantIdFor(client.clientId),
      await findConsentGrantId(db, accountId, client.clientId),
    ];
    for (const grantId of candidates) {
      if (!grantId) continue;
      const grant = await provider.Grant.find(grantId);
      if (grant && grant.accountId === accountId && grant.clientId === client.clientId) return grant;
    }
    return undefined;
  };
}
