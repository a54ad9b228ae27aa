import { randomBytes } from 'node:crypto';
import type { AdapterPayload } from 'oidc-provider';
import { recordChange, type AuditBy } from '../audit/audit.service.ts';
import type { Db } from '../db/knex.ts';
import { violatedConstraint } from '../db/constraint.ts';
import { constantTimeEqual } from '../shared/constant-time.ts';
import { type AppError, invalidInput, notFound, preconditionFailed } from '../shared/errors.ts';
import { sha256Base64url } from '../shared/hashing.ts';
import { decodeCursor, pageOf, pageSize, type Page } from '../shared/page-cursor.ts';
import { createInvalidatedCache } from '../shared/invalidated-cache.ts';
import type { ChangeFeed } from '../db/change-feed.ts';
import { isLoopbackHostname } from '../shared/loopback-hosts.ts';
import { findScopeOwners } from '../resources/resource.store.ts';
import { SCOPE_PATTERN } from '../resources/resource.service.ts';
import { ASYMMETRIC_METHODS, describeSecurity, parseProfile, resolveSecurity, type SecurityInput } from './client-auth.ts';
import {
  changePartnerStatus,
  countPartners,
  deletePartner as deletePartnerRows,
  DuplicateNameError,
  findNamesake,
  findPartner,
  insertPartner,
  listPartners,
  listPartnersPage,
  updatePartner,
  updatePartnerProfile,
  type Partner,
  type PartnerProfile,
  type PartnerProfileName,
  type Permission,
} from './partner.store.ts';

const GRANT_TYPES = ['client_credentials', 'authorization_code', 'refresh_token'] as const;

/**
 * Partner secrets are 256 random bits, so one SHA-256 is a sufficient hash (a slow KDF would
 * only cost the token endpoint): a stolen table yields nothing usable.
 */
export function hashSecret(secret: string): string {
  return `sha256:${sha256Base64url(secret)}`;
}

export function secretMatches(secret: string, storedHash: string): boolean {
  return constantTimeEqual(hashSecret(secret), storedHash);
}

function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

function newClientId(): string {
  return `ptn_${randomBytes(12).toString('base64url')}`;
}

/** The JARM response modes (`jwt` is `query.jwt` for the code flow): the only ones of a message-signing partner. */
const JWT_RESPONSE_MODES = ['jwt', 'query.jwt', 'fragment.jwt', 'form_post.jwt'] as const;

/** What a client_id can be (ours are `ptn_` + 16 base64url); anything else is no partner. */
const CLIENT_ID_PATTERN = /^[\w.~-]{1,64}$/;

export type PartnerInput = {
  name: string;
  scopes: string[];
  grantTypes: string[];
  redirectUris: string[];
  isPublic?: boolean;
  /** another partner may have the same name (else refused) */
  allowDuplicateName?: boolean;
  /** profile, client authentication, token binding, message signing (client-auth.ts) */
  security?: SecurityInput;
};

/**
 * The grants the partner can actually use: a partner allowed authorization_code also refreshes
 * (rotating refresh tokens). What `partner show` prints and what oidc-provider is told.
 */
function effectiveGrantTypes(grantTypes: readonly string[]): string[] {
  return grantTypes.includes('authorization_code') ? [...new Set([...grantTypes, 'refresh_token'])] : [...grantTypes];
}

function validRedirectUri(uri: string): boolean {
  const url = URL.parse(uri);
  if (!url || url.hash) return false;
  if (url.protocol === 'https:') return true;
  // plain http only for a developer's own machine (RFC 8252 loopback)
  return url.protocol === 'http:' && isLoopbackHostname(url.hostname);
}

/**
 * `--scope` names → the allow-list: each name is a permission on the one API that defines it
 * (scope names are unique across APIs, so a name is never ambiguous).
 */
async function permissionsFor(db: Db, scopes: readonly string[]): Promise<Permission[]> {
  if (scopes.length === 0) throw invalidInput('--scope is required (space-separated scopes of registered resources)');
  for (const scope of scopes) if (!SCOPE_PATTERN.test(scope)) throw invalidInput(`"${scope}" is not a valid scope`);
  const owners = await findScopeOwners(db, scopes);
  const permissions = [...new Set(scopes)].map((scope) => {
    const resource = owners.get(scope);
    if (!resource) throw invalidInput(`scope "${scope}" belongs to no resource (create it with \`portcullis resource create\`)`);
    return { resource, scope };
  });
  // the order the store reads them back in
  return permissions.sort((a, b) => (a.resource === b.resource ? (a.scope < b.scope ? -1 : 1) : a.resource < b.resource ? -1 : 1));
}

type CheckedInput = Pick<PartnerInput, 'name' | 'grantTypes' | 'redirectUris' | 'isPublic'>;

function checkInput(input: CheckedInput): void {
  const name = input.name.trim();
  if (!name) throw invalidInput('--name is required');
  if (name.length > 200) throw invalidInput('--name is longer than 200 characters');
  for (const grant of input.grantTypes) {
    if (!(GRANT_TYPES as readonly string[]).includes(grant))
      throw invalidInput(`--grant ${grant} is not supported (use ${GRANT_TYPES.join(', ')})`);
  }
  for (const uri of input.redirectUris) {
    if (!validRedirectUri(uri)) throw invalidInput(`--redirect-uri ${uri} must be an https URL (or http on localhost) without a fragment`);
  }
  if (input.isPublic && !input.grantTypes.includes('authorization_code')) {
    throw invalidInput('--public partners (no client secret: apps on phones and in browsers) need --grant authorization_code');
  }
  if (input.isPublic && input.grantTypes.includes('client_credentials')) {
    throw invalidInput('--public partners cannot use client_credentials: that grant needs a client secret');
  }
  if (input.grantTypes.includes('authorization_code') && input.redirectUris.length === 0) {
    throw invalidInput('--grant authorization_code needs at least one --redirect-uri');
  }
}

/** The allow-list as API → its scopes the partner may be given. */
function scopesByResource(partner: Partner): Record<string, string[]> {
  const byResource: Record<string, string[]> = {};
  for (const { resource, scope } of partner.allowed) (byResource[resource] ??= []).push(scope);
  return byResource;
}

export function describePartner(partner: Partner) {
  return {
    client_id: partner.clientId,
    name: partner.name,
    status: partner.status,
    scope: partner.allowed.map((p) => p.scope).join(' '),
    allowed: Object.fromEntries(Object.entries(scopesByResource(partner)).map(([uri, scopes]) => [uri, scopes.join(' ')])),
    public: partner.authMethod === 'none',
    ...describeSecurity(partner),
    grant_types: effectiveGrantTypes(partner.grantTypes),
    redirect_uris: partner.redirectUris,
    created_at: new Date(partner.createdAt).toISOString(),
    updated_at: new Date(partner.updatedAt).toISOString(),
  };
}

/**
 * `defaultProfile`: DEFAULT_PROFILE, the profile of a partner created without `--profile`.
 */
export async function createPartner(
  db: Db,
  input: PartnerInput,
  by: AuditBy,
  options: { defaultProfile?: PartnerProfileName; now?: number } = {},
) {
  const now = options.now ?? Date.now();
  const grantTypes = input.grantTypes.length ? [...new Set(input.grantTypes)] : ['client_credentials'];
  const security = resolveSecurity({ ...input.security, isPublic: input.isPublic }, undefined, options.defaultProfile ?? 'baseline');
  checkInput({ ...input, grantTypes, isPublic: security.authMethod === 'none' });
  const allowed = await permissionsFor(db, input.scopes);
  const secret = security.authMethod === 'client_secret_basic' ? newSecret() : null;
  const partner: Partner = {
    ...security,
    clientId: newClientId(),
    name: input.name.trim(),
    secretHash: secret === null ? null : hashSecret(secret),
    allowed,
    grantTypes,
    redirectUris: [...new Set(input.redirectUris)],
    status: 'active',
    createdAt: now,
    updatedAt: now,
  };
  await insertPartner(db, partner, { allowDuplicateName: input.allowDuplicateName ?? false }).catch((error: unknown) =>
    writeFailed(db, error, partner),
  );
  await recordChange(
    db,
    by,
    {
      action: 'partner.create',
      target: partner.clientId,
      details: {
        name: partner.name,
        scope: allowed.map((p) => p.scope).join(' '),
        grant_types: grantTypes,
        auth_method: partner.authMethod,
      },
    },
    now,
  );
  return { client_id: partner.clientId, client_secret: secret, partner: describePartner(partner) };
}

/** A refused partner write, in words: a name taken, or a scope that left its API meanwhile. */
async function writeFailed(db: Db, error: unknown, partner: Pick<Partner, 'clientId' | 'name'>): Promise<never> {
  if (error instanceof DuplicateNameError) {
    const holder = await findNamesake(db, partner.name, partner.clientId);
    throw invalidInput(
      `a partner named "${partner.name}" exists${holder ? ` (${holder})` : ''}: choose another --name, or pass --allow-duplicate-name`,
    );
  }
  if (violatedConstraint(error) === 'foreign_key')
    throw invalidInput('a scope in --scope was just removed from its resource: run `portcullis resource list` and try again');
  throw error;
}

/** `partner update`: only what is given changes; `--scope`, `--grant` and `--redirect-uri` replace the lists. */
export type PartnerChange = Partial<
  Pick<PartnerInput, 'name' | 'scopes' | 'grantTypes' | 'redirectUris' | 'allowDuplicateName'> & { messageSigning: boolean }
>;

/**
 * Changes a partner under the same rules as createPartner, checked on the result. Every
 * instance drops its cached copy when the row changes (createClientDirectory), so each uses the
 * new allow-list and grants for its next token request. Tokens already issued keep what they carry
 * until they expire (`partner suspend` + `resume` cuts them all).
 */
export async function updatePartnerDetails(
  db: Db,
  clientId: string,
  change: PartnerChange,
  by: AuditBy,
  now: number = Date.now(),
  onlyIf: Precondition = {},
) {
  const current = await getPartner(db, clientId);
  const grantTypes = change.grantTypes?.length ? [...new Set(change.grantTypes)] : undefined;
  const merged: CheckedInput = {
    name: change.name ?? current.name,
    grantTypes: grantTypes ?? [...current.grantTypes],
    redirectUris: change.redirectUris ?? [...current.redirectUris],
    isPublic: current.authMethod === 'none',
  };
  checkInput(merged);
  // message signing needs the partner's keys (a partner never loses them: set-keys only replaces)
  if (change.messageSigning) resolveSecurity({ messageSigning: true }, current, current.profile);
  const profile: Partial<PartnerProfile> = {
    name: change.name?.trim(),
    grantTypes,
    redirectUris: change.redirectUris && [...new Set(change.redirectUris)],
    allowed: change.scopes && (await permissionsFor(db, change.scopes)),
    messageSigning: change.messageSigning,
  };
  const updated = await updatePartnerProfile(
    db,
    clientId,
    profile,
    { allowDuplicateName: change.allowDuplicateName ?? false, ifUpdatedAt: onlyIf.updatedAt },
    now,
  ).catch((error: unknown) => writeFailed(db, error, { clientId, name: merged.name.trim() }));
  if (!updated) throw await missingOrChanged(db, clientId, onlyIf);
  const changed = Object.keys(profile).filter((key) => profile[key as keyof typeof profile] !== undefined);
  await recordChange(db, by, { action: 'partner.update', target: clientId, details: { changed } }, now);
  return describePartner(await getPartner(db, clientId));
}

/**
 * Deletes the partner and everything issued to it, in one transaction: its client_id, refresh
 * tokens and opaque access tokens are refused from the next request on (JWT access tokens already
 * issued are checked offline and live out their short life). An API's introspector is refused:
 * `resource update --no-introspector` first.
 */
export async function deletePartner(db: Db, clientId: string, by: AuditBy) {
  const outcome = CLIENT_ID_PATTERN.test(clientId) ? await deletePartnerRows(db, clientId) : 'missing';
  if (outcome === 'missing') throw notFound(`no partner with client_id ${clientId}`);
  if (outcome !== 'deleted')
    throw invalidInput(
      `partner ${clientId} introspects tokens for ${outcome.introspects}: run \`portcullis resource update --uri ${outcome.introspects} --no-introspector\` first`,
    );
  await recordChange(db, by, { action: 'partner.delete', target: clientId });
  return { client_id: clientId, deleted: true };
}

/** The admin API's If-Match: the change applies only to the partner as it was at this `updated_at`. */
export type Precondition = Readonly<{ updatedAt?: number }>;

/** Why a conditional write changed nothing: the partner is gone (404) or was changed meanwhile (412). */
async function missingOrChanged(db: Db, clientId: string, onlyIf: Precondition): Promise<AppError> {
  const partner = CLIENT_ID_PATTERN.test(clientId) ? await findPartner(db, clientId) : undefined;
  return partner && onlyIf.updatedAt !== undefined
    ? preconditionFailed(`partner ${clientId}`)
    : notFound(`no partner with client_id ${clientId}`);
}

export async function getPartner(db: Db, clientId: string): Promise<Partner> {
  const partner = CLIENT_ID_PATTERN.test(clientId) ? await findPartner(db, clientId) : undefined;
  if (!partner) throw notFound(`no partner with client_id ${clientId}`);
  return partner;
}

/** `suspended` revokes every grant and token of the partner at once (see changePartnerStatus). */
export async function setPartnerStatus(db: Db, clientId: string, status: Partner['status'], by: AuditBy, now: number = Date.now()) {
  if (!(await changePartnerStatus(db, clientId, status, now))) throw notFound(`no partner with client_id ${clientId}`);
  await recordChange(db, by, { action: status === 'suspended' ? 'partner.suspend' : 'partner.resume', target: clientId }, now);
  return describePartner(await getPartner(db, clientId));
}

/** The old secret stops working at once; the new one is shown this one time. */
export async function rotatePartnerSecret(db: Db, clientId: string, by: AuditBy, now: number = Date.now()) {
  const { authMethod } = await getPartner(db, clientId);
  if (authMethod !== 'client_secret_basic')
    throw invalidInput(
      `partner ${clientId} authenticates with ${authMethod}: it has no secret to rotate${authMethod === 'none' ? '' : ' (`partner set-keys` replaces its keys)'}`,
    );
  const secret = newSecret();
  if (!(await updatePartner(db, clientId, { secretHash: hashSecret(secret) }, now, { authMethods: ['client_secret_basic'] })))
    throw notFound(`no partner with client_id ${clientId} using a client secret`);
  await recordChange(db, by, { action: 'partner.rotate_secret', target: clientId }, now);
  return { client_id: clientId, client_secret: secret };
}

/**
 * `partner set-profile`: fapi2 needs a partner that already authenticates with keys or a
 * certificate (checked in the UPDATE itself); its tokens are then bound (DPoP by default for
 * private_key_jwt, mTLS for certificates) and it must push its authorization requests (PAR).
 * Tokens already issued keep what they carry until they expire.
 */
export async function setPartnerProfile(
  db: Db,
  clientId: string,
  rawProfile: string,
  by: AuditBy,
  now: number = Date.now(),
  precondition: Precondition = {},
) {
  const profile = parseProfile(rawProfile, 'the profile');
  const current = await getPartner(db, clientId);
  const security = resolveSecurity({ profile }, current, profile);
  const onlyIf = { ...(profile === 'fapi2' ? { authMethods: ASYMMETRIC_METHODS } : {}), ...precondition };
  if (!(await updatePartner(db, clientId, { profile, tokenBinding: security.tokenBinding }, now, onlyIf))) {
    if (precondition.updatedAt !== undefined) throw await missingOrChanged(db, clientId, precondition);
    throw invalidInput(`partner ${clientId} changed or went away meanwhile: run the command again`);
  }
  await recordChange(db, by, { action: 'partner.set_profile', target: clientId, details: { profile } }, now);
  return describePartner(await getPartner(db, clientId));
}

/** What `partner set-keys` takes: one of the two. */
export type KeysInput = { jwksText?: string; jwksUri?: string };

/**
 * `partner set-keys`: the partner's public keys, replaced at once (assertions signed with a key
 * left out are refused from the next request; publish the new key next to the old one to rotate
 * without a gap). A partner that used a client secret moves to private_key_jwt and its secret
 * stops working.
 */
export async function setPartnerKeys(
  db: Db,
  clientId: string,
  keys: KeysInput,
  by: AuditBy,
  now: number = Date.now(),
  precondition: Precondition = {},
) {
  if (keys.jwksText === undefined && keys.jwksUri === undefined) throw invalidInput('give --jwks-file FILE or --jwks-uri URL');
  const current = await getPartner(db, clientId);
  if (current.authMethod === 'none') throw invalidInput(`partner ${clientId} is public: it has no keys (create a confidential partner)`);
  const authMethod = current.authMethod === 'client_secret_basic' ? 'private_key_jwt' : current.authMethod;
  const security = resolveSecurity({ ...keys, authMethod }, current, current.profile);
  const changed = await updatePartner(
    db,
    clientId,
    { authMethod, jwks: security.jwks, jwksUri: security.jwksUri, secretHash: authMethod === current.authMethod ? undefined : null },
    now,
    { authMethods: [current.authMethod], ...precondition },
  );
  if (!changed && precondition.updatedAt !== undefined) throw await missingOrChanged(db, clientId, precondition);
  if (!changed) throw invalidInput(`partner ${clientId} changed or went away meanwhile: run the command again`);
  // public keys only (or their URL): the JWKS itself is not copied here
  await recordChange(
    db,
    by,
    { action: 'partner.set_keys', target: clientId, details: { auth_method: authMethod, jwks_uri: security.jwksUri ?? null } },
    now,
  );
  return describePartner(await getPartner(db, clientId));
}

export { countPartners, listPartners };

/**
 * A page of partners by name (`search`: part of the name or client_id), for the admin API and
 * console: `cursor` is the `next` of the page before (keyset on name, client_id).
 */
export async function partnerPage(
  db: Db,
  options: { search?: string; cursor?: string; limit?: number },
): Promise<Page<ReturnType<typeof describePartner>>> {
  const limit = pageSize(options.limit);
  const after = options.cursor === undefined ? undefined : decodeCursor(options.cursor, ['string', 'string'] as const);
  const search = options.search?.trim() || undefined;
  if (search !== undefined && search.length > 200) throw invalidInput('search is longer than 200 characters');
  const rows = await listPartnersPage(db, { search, after, limit: limit + 1 });
  return pageOf(rows, limit, (partner) => [partner.name, partner.clientId], describePartner);
}

/**
 * Client metadata for oidc-provider. `client_secret` carries the hash: the provider hands it
 * back to our `compareClientSecret`, never to the wire. A suspended partner does not exist.
 * An authorization_code partner may also refresh (rotating refresh tokens), and may send the
 * person back to any of its redirect URIs after logout.
 */
export function toClientMetadata(partner: Partner | undefined): AdapterPayload | undefined {
  if (!partner || partner.status !== 'active') return undefined;
  const code = partner.grantTypes.includes('authorization_code');
  const metadata: AdapterPayload = {
    client_id: partner.clientId,
    client_name: partner.name,
    grant_types: effectiveGrantTypes(partner.grantTypes),
    response_types: code ? ['code'] : [],
    redirect_uris: [...partner.redirectUris],
    post_logout_redirect_uris: code ? [...partner.redirectUris] : [],
    token_endpoint_auth_method: partner.authMethod,
    partner_scopes: scopesByResource(partner),
    partner_profile: partner.profile,
  };
  if (partner.secretHash && partner.authMethod === 'client_secret_basic') metadata.client_secret = partner.secretHash;
  if (partner.jwks) metadata.jwks = { keys: partner.jwks.keys.map((key) => ({ ...key })) };
  if (partner.jwksUri) metadata.jwks_uri = partner.jwksUri;
  if (partner.tlsSubjectDn) metadata.tls_client_auth_subject_dn = partner.tlsSubjectDn;
  if (partner.tokenBinding === 'dpop') metadata.dpop_bound_access_tokens = true;
  if (partner.tokenBinding === 'mtls') metadata.tls_client_certificate_bound_access_tokens = true;
  // FAPI 2.0: authorization requests only through PAR
  if (partner.profile === 'fapi2' && code) metadata.require_pushed_authorization_requests = true;
  // FAPI 2.0 Message Signing: a request object it signed, pushed through PAR, and a signed response (JARM)
  if (partner.messageSigning && code)
    Object.assign(metadata, {
      require_pushed_authorization_requests: true,
      require_signed_request_object: true,
      response_modes: [...JWT_RESPONSE_MODES],
    });
  return metadata;
}

/** How many partners an instance keeps in memory, and for how long at most (changes are told at once). */
const PARTNER_CACHE = { maxEntries: 10_000, maxAgeMs: 60_000 };

/**
 * Partner lookups on the token and introspection hot paths. With a change feed, partners are
 * kept in memory and dropped the moment any instance, the CLI or anyone else writes their rows
 * (src/db/change-feed.ts: PostgreSQL NOTIFY, SQLite's `changes` rows): a suspension or a secret
 * rotation applies on every instance within the feed's delay (milliseconds), and while the feed
 * is down every lookup reads the database. Without a feed, concurrent lookups of one client share
 * a single query and nothing is kept. An unknown client_id is kept too (the insert of a new
 * partner tells), within `maxEntries`.
 */
export function createClientDirectory(db: Db, changes?: ChangeFeed, now: () => number = Date.now) {
  const load = async (clientId: string) => {
    const partner = await findPartner(db, clientId);
    return { partner, metadata: partner && toClientMetadata(partner) };
  };
  const cache = createInvalidatedCache({ load, live: () => changes?.live() ?? false, ...PARTNER_CACHE, now });
  changes?.subscribe('partner', (clientId) => cache.forget(clientId));
  // never a query for what cannot be a client_id (PostgreSQL refuses a NUL byte with an error)
  const lookup = (clientId: string) => (CLIENT_ID_PATTERN.test(clientId) ? cache.get(clientId) : Promise.resolve(undefined));
  return {
    /** The partner as oidc-provider's Client model wants it (the adapter's `find` for `Client`). */
    metadata: async (clientId: string): Promise<AdapterPayload | undefined> => {
      const metadata = (await lookup(clientId))?.metadata;
      // One turn of the event loop, as the database read gave: the requests that arrived together
      // go on together (the check phase), so their signatures reach libuv's pool in one batch.
      // Measured (bench/perf.ts): without it a client-credentials token cost ~0.6 ms of CPU
      // against ~0.45 ms with it or with the read; a cache hit is not worth that.
      await new Promise((resolve) => setImmediate(resolve));
      // oidc-provider writes into a key set it is given (x5t#S256 of a certificate): its own copy
      const jwks = metadata?.jwks as { keys: Array<Record<string, unknown>> } | undefined;
      return jwks ? { ...metadata, jwks: { keys: jwks.keys.map((key) => ({ ...key })) } } : metadata;
    },
    /** Whether the partner's tokens may still be honoured. */
    isActive: async (clientId: string): Promise<boolean> => (await lookup(clientId))?.partner?.status === 'active',
  };
}
