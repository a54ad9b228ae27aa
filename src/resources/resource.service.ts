import { recordChange, type AuditBy } from '../audit/audit.service.ts';
import type { ChangeFeed } from '../db/change-feed.ts';
import type { Db } from '../db/knex.ts';
import { createInvalidatedCache } from '../shared/invalidated-cache.ts';
import { isLoopbackHostname } from '../shared/loopback-hosts.ts';
import { AppError, invalidInput, notFound, preconditionFailed } from '../shared/errors.ts';
import { violatedConstraint } from '../db/constraint.ts';
import {
  ensureBuiltInResource,
  findDefaultResource,
  findResource,
  findIntrospectorCandidate,
  findScopeOwners,
  insertResource,
  countResources,
  listResources,
  listScopeNames,
  updateResource as saveChange,
  type Resource,
  type ResourceChange,
  type TokenFormat,
} from './resource.store.ts';
import { findScopeDescriptions, saveScopeDescriptions } from './scope-description.store.ts';
import { PAYMENT_INITIATION } from './payment-initiation.ts';
import { findDetailsType, findDetailsTypeOwners, listDetailsTypes, type DetailsType, type DetailsTypeInput } from './details-type.store.ts';

export const SCOPE_PATTERN = /^[\x21\x23-\x5B\x5D-\x7E]+$/; // RFC 6749 scope-token

/** A resource URI is printable ASCII (RFC 3986); anything else is no resource, and no query. */
const RESOURCE_URI = /^[\x21-\x7e]{1,512}$/;

/** How long an answer is kept at most (changes are told at once), and how many. */
const RESOURCE_CACHE = { maxEntries: 1000, maxAgeMs: 60_000 };

/**
 * Resource lookups on the token hot path. Answers are kept until any write to the API tables,
 * by anyone, is told (src/db/change-feed.ts); while the feed is down every lookup reads the
 * database.
 */
export function createResourceDirectory(db: Db, changes: ChangeFeed, now: () => number = Date.now) {
  const caches: Array<{ forget(key?: string): void }> = [];
  function memo<T>(load: (key: string) => Promise<T>) {
    const cache = createInvalidatedCache({ load, live: () => changes.live(), ...RESOURCE_CACHE, now });
    caches.push(cache);
    return cache;
  }
  // a change to any API table may change any answer (the default, the scope list, a type's owner)
  changes.subscribe('resource', () => {
    for (const cache of caches) cache.forget();
  });
  const resources = memo((key) => (key === '' ? findDefaultResource(db) : findResource(db, key)));
  const lists = memo((key) => (key === 'scopes' ? listScopeNames(db) : listDetailsTypeNames(db)));
  const detailsTypes = memo((type) => findDetailsType(db, type));
  return {
    /** Every registered API scope. */
    scopes: (): Promise<string[]> => lists.get('scopes'),
    find: (uri: string): Promise<Resource | undefined> => (RESOURCE_URI.test(uri) ? resources.get(uri) : Promise.resolve(undefined)),
    findDefault: (): Promise<Resource | undefined> => resources.get(''),
    /** The registered `authorization_details` type of this name (RFC 9396), if any. */
    detailsType: (type: string): Promise<DetailsType | undefined> => detailsTypes.get(type),
    /** Every registered `authorization_details` type name (discovery's authorization_details_types_supported). */
    detailsTypeNames: (): Promise<string[]> => lists.get('details types'),
  };
}

/** Every registered `authorization_details` type name, sorted. */
export async function listDetailsTypeNames(db: Db): Promise<string[]> {
  return (await listDetailsTypes(db)).map((entry) => entry.type);
}

export type ResourceDirectory = ReturnType<typeof createResourceDirectory>;

const DEFAULT_ACCESS_TOKEN_TTL = 600;
const MAX_ACCESS_TOKEN_TTL = 24 * 3600;

/**
 * An API as the CLI shows it. `authorization_details_types`: each type it accepts with its
 * schema (`"built-in"` for the one shipped with Portcullis), from `types` (all APIs' types).
 */
function describeResource(resource: Resource, types: readonly DetailsType[] = []) {
  return {
    uri: resource.uri,
    scope: resource.scopes.join(' '),
    access_token_ttl: resource.accessTokenTtl,
    token_format: resource.tokenFormat,
    introspector: resource.introspector,
    signed_introspection: resource.signedIntrospection,
    default: resource.isDefault,
    built_in: resource.builtIn,
    authorization_details_types: types
      .filter((entry) => entry.resourceUri === resource.uri)
      .map((entry) => ({ type: entry.type, schema: entry.schema === null ? 'built-in' : (JSON.parse(entry.schema) as unknown) })),
    created_at: new Date(resource.createdAt).toISOString(),
    updated_at: new Date(resource.updatedAt).toISOString(),
  };
}

/** How many APIs are registered (for the admin console's overview). */
export { countResources };

/** Every registered API, described (`resource list`). */
export async function describeResources(db: Db) {
  const types = await listDetailsTypes(db);
  return (await listResources(db)).map((resource) => describeResource(resource, types));
}

/** One API with its scopes' consent words, and its version (the admin API's ETag). */
export async function describeResourceAt(db: Db, uri: string) {
  const resource = RESOURCE_URI.test(uri) ? await findResource(db, uri) : undefined;
  if (!resource) throw notFound(`no resource ${uri}`);
  const words = await findScopeDescriptions(db, resource.scopes);
  return {
    version: resource.updatedAt,
    resource: { ...describeResource(resource, await listDetailsTypes(db)), descriptions: Object.fromEntries(words) },
  };
}

/** The path of the admin API under the issuer: its resource indicator is ISSUER + this. */
export const ADMIN_API_PATH = '/admin/api/v1';
export const ADMIN_READ = 'admin:read';
export const ADMIN_WRITE = 'admin:write';

/** The admin API's resource indicator (and access-token audience) for an issuer. */
export function adminApiUri(issuer: string): string {
  return `${issuer.replace(/\/+$/, '')}${ADMIN_API_PATH}`;
}

const builtInRefusal = (uri: string) =>
  invalidInput(
    `resource ${uri} is built in (the admin API): it cannot be changed or deleted; partners are allowed its scopes with \`partner create --scope\``,
  );

/**
 * The admin API as a built-in API (resource indicator ISSUER/admin/api/v1, scopes admin:read and
 * admin:write, opaque tokens so they are revocable at once), made at start by the server and by
 * every command (src/storage.ts): racing instances make one. `move` (the server): a built-in
 * made under another ISSUER is carried to this one. Returns the URI that holds the admin scopes;
 * refuses when an API an operator registered took one of its scope names.
 */
export async function ensureAdminApi(db: Db, issuer: string, options: { move: boolean }, now: number = Date.now()): Promise<string> {
  const uri = adminApiUri(issuer);
  const holder = await ensureBuiltInResource(
    db,
    { uri, accessTokenTtl: DEFAULT_ACCESS_TOKEN_TTL, tokenFormat: 'opaque', createdAt: now },
    {
      [ADMIN_READ]: 'See the platform’s setup: partners, APIs, people, their grants, signing keys and the audit log',
      [ADMIN_WRITE]:
        'Change the platform’s setup: create, change, suspend and delete partners, APIs and people, revoke grants, rotate and revoke signing keys',
    },
    options,
  );
  if (holder === undefined) {
    const owners = await findScopeOwners(db, [ADMIN_READ, ADMIN_WRITE]);
    throw new AppError(
      'admin_scope_taken',
      `the scopes ${ADMIN_READ} and ${ADMIN_WRITE} are the admin API's (${uri}), but ${[...new Set(owners.values())].join(', ')} defines them: give that API other scope names (portcullis resource update --scope)`,
      { status: 500 },
    );
  }
  return holder;
}

/** One `--details-type TYPE`, with the schema file given after it (`--details-schema FILE`), if any. */
export type DetailsTypeRequest = Readonly<{ type: string; schema?: Readonly<{ text: string; file: string }> }>;

/** RFC 9396 leaves a type's form open: printable ASCII without `"` or `\\` (it is a URI or a plain word). */
const DETAILS_TYPE_PATTERN = /^[\x21\x23-\x5B\x5D-\x7E]{1,200}$/;

/**
 * The API's new list of types, checked: each name valid and given once, each schema file a
 * usable JSON Schema; a type without a file is `payment_initiation` (its schema is shipped), or
 * one this API already has (it keeps its schema). A type of another API is refused.
 */
async function checkDetailsTypes(
  db: Db,
  uri: string,
  requests: readonly DetailsTypeRequest[],
  current: readonly DetailsType[],
): Promise<DetailsTypeInput[]> {
  const checked: DetailsTypeInput[] = [];
  for (const request of requests) {
    const { type } = request;
    if (!DETAILS_TYPE_PATTERN.test(type)) throw invalidInput(`--details-type "${type}" is not a valid type (printable ASCII, no spaces)`);
    if (checked.some((entry) => entry.type === type)) throw invalidInput(`--details-type ${type} is given twice`);
    let schema: string | null;
    if (request.schema) {
      const { checkDetailsSchema } = await import('./details-schema.ts');
      try {
        schema = checkDetailsSchema(request.schema.text);
      } catch (error) {
        throw invalidInput(`--details-schema ${request.schema.file} ${(error as Error).message}`);
      }
    } else if (type === PAYMENT_INITIATION) schema = null;
    else {
      const kept = current.find((entry) => entry.type === type && entry.resourceUri === uri);
      if (!kept)
        throw invalidInput(
          `--details-type ${type} needs a JSON Schema: give --details-schema FILE right after it (only ${PAYMENT_INITIATION} has one built in)`,
        );
      schema = kept.schema;
    }
    checked.push({ type, schema });
  }
  for (const [type, owner] of await findDetailsTypeOwners(
    db,
    checked.map((entry) => entry.type),
  )) {
    if (owner !== uri) throw invalidInput(`authorization_details type "${type}" already belongs to ${owner}`);
  }
  return checked;
}

function checkUri(uri: string): string {
  const url = URL.parse(uri);
  if (!url) throw invalidInput(`--uri ${uri} is not an absolute URI`);
  if (url.hash || uri.includes('#')) throw invalidInput('--uri must not have a fragment (RFC 8707)');
  const local = isLoopbackHostname(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && local)) throw invalidInput('--uri must be https (http only on localhost)');
  return uri;
}

/** `scope=words` pairs (the CLI's --describe) → a map; each scope must be one of `scopes`. */
function parseDescriptions(pairs: readonly string[], scopes: readonly string[]): Record<string, string> {
  const descriptions: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    const scope = pair.slice(0, at).trim();
    const words = pair.slice(at + 1).trim();
    if (at < 1 || !words) throw invalidInput(`--describe takes "scope=words people understand", got "${pair}"`);
    if (!scopes.includes(scope)) throw invalidInput(`--describe names "${scope}", which is not in --scope`);
    if (words.length > 300) throw invalidInput(`--describe for "${scope}" is longer than 300 characters`);
    descriptions[scope] = words;
  }
  return descriptions;
}

function checkScopes(input: readonly string[]): string[] {
  const scopes = [...new Set(input)];
  if (scopes.length === 0) throw invalidInput('--scope is required (space-separated, e.g. "payments:read payments:write")');
  for (const scope of scopes) {
    if (!SCOPE_PATTERN.test(scope) || scope.length > 100) throw invalidInput(`"${scope}" is not a valid scope`);
    if (scope === 'openid' || scope === 'offline_access') throw invalidInput(`"${scope}" is reserved by OpenID Connect`);
  }
  return scopes;
}

function checkTtl(ttl: number): number {
  if (!Number.isInteger(ttl) || ttl < 30 || ttl > MAX_ACCESS_TOKEN_TTL)
    throw invalidInput(`--ttl must be whole seconds from 30 to ${MAX_ACCESS_TOKEN_TTL}`);
  return ttl;
}

function checkFormat(format: string): TokenFormat {
  if (format !== 'jwt' && format !== 'opaque') throw invalidInput('--format must be jwt or opaque');
  return format;
}

/** Scope names are unique across APIs: consent pages and audit lines name one thing. */
async function checkScopesFree(db: Db, uri: string, scopes: readonly string[]): Promise<void> {
  for (const [scope, owner] of await findScopeOwners(db, scopes)) {
    if (owner !== uri) throw invalidInput(`scope "${scope}" already belongs to ${owner}`);
  }
}

/**
 * The API's own credential, allowed to introspect tokens issued for it: a confidential partner
 * (a public one authenticates with nothing but its client_id, which anyone can send).
 */
async function checkIntrospector(db: Db, clientId: string): Promise<string> {
  const partner = await findIntrospectorCandidate(db, clientId);
  if (!partner) throw invalidInput(`--introspector ${clientId}: no such partner`);
  if (!partner.confidential)
    throw invalidInput(`--introspector ${clientId} is a public partner (no client secret): an introspector must be a confidential partner`);
  return clientId;
}

/** Signed answers go to the API's introspector: without one, asking for them means nothing. */
function checkSignedIntrospection(signed: boolean, introspector: string | null): void {
  if (signed && introspector === null)
    throw invalidInput(
      '--signed-introspection needs the API’s introspector (--introspector CLIENT_ID); to drop the introspector, give --no-signed-introspection too',
    );
}

const existsMessage = (uri: string) => `resource ${uri} already exists: change it with \`portcullis resource update --uri ${uri}\``;

/** The database refused a write: say which rule (the checks above lost a race to another command). */
async function explainConflict(db: Db, uri: string, error: unknown, creating: boolean): Promise<never> {
  const rule = violatedConstraint(error);
  if (rule === 'unique' && creating && (await findResource(db, uri))) throw invalidInput(existsMessage(uri));
  if (rule === 'unique')
    throw invalidInput(
      'a scope in --scope or a --details-type was just given to another resource: run `portcullis resource list` and try again',
    );
  throw error;
}

/** The API as stored after a write, with the descriptions that write gave. */
async function describeStored(db: Db, uri: string, descriptions: Record<string, string>) {
  const resource = await findResource(db, uri);
  if (!resource) throw invalidInput(`no resource ${uri}`);
  const described = describeResource(resource, await listDetailsTypes(db));
  return Object.keys(descriptions).length ? { ...described, descriptions } : described;
}

export type ResourceInput = {
  uri: string;
  scopes: string[];
  ttl?: number;
  format?: string;
  introspector?: string;
  signedIntrospection?: boolean;
  isDefault: boolean;
  describe?: string[];
  detailsTypes?: readonly DetailsTypeRequest[];
};

/** Registers a new API; an existing URI is refused (`resource update` changes one). */
export async function createResource(db: Db, input: ResourceInput, by: AuditBy, now: number = Date.now()) {
  const uri = checkUri(input.uri);
  const scopes = checkScopes(input.scopes);
  const resource: Resource = {
    uri,
    scopes,
    accessTokenTtl: checkTtl(input.ttl ?? DEFAULT_ACCESS_TOKEN_TTL),
    tokenFormat: checkFormat(input.format ?? 'jwt'),
    introspector: input.introspector === undefined ? null : await checkIntrospector(db, input.introspector),
    signedIntrospection: input.signedIntrospection ?? false,
    isDefault: input.isDefault,
    createdAt: now,
    builtIn: false,
    updatedAt: now,
  };
  checkSignedIntrospection(resource.signedIntrospection, resource.introspector);
  const descriptions = parseDescriptions(input.describe ?? [], scopes);
  if (await findResource(db, uri)) throw invalidInput(existsMessage(uri));
  await checkScopesFree(db, uri, scopes);
  const detailsTypes = await checkDetailsTypes(db, uri, input.detailsTypes ?? [], []);
  await insertResource(db, resource, detailsTypes).catch((error: unknown) => explainConflict(db, uri, error, true));
  await saveScopeDescriptions(db, descriptions);
  await recordChange(
    db,
    by,
    {
      action: 'resource.create',
      target: uri,
      details: { scope: scopes.join(' '), format: resource.tokenFormat, introspector: resource.introspector },
    },
    now,
  );
  return describeStored(db, uri, descriptions);
}

export type ResourceUpdate = {
  uri: string;
  scopes?: string[];
  ttl?: number;
  format?: string;
  introspector?: string | null;
  signedIntrospection?: boolean;
  isDefault?: boolean;
  describe?: string[];
  /** replaces the API's `authorization_details` types (an empty list drops them all) */
  detailsTypes?: readonly DetailsTypeRequest[];
};

/**
 * Changes only what is given. Scopes given replace the API's scopes: a scope left out stops
 * being issued at once (within the resource cache time) and leaves every partner's allow-list,
 * so adding it back later gives it to no one.
 */
export async function updateResource(db: Db, input: ResourceUpdate, by: AuditBy, onlyIf: { updatedAt?: number } = {}) {
  const uri = input.uri;
  const existing = await findResource(db, uri);
  if (!existing) throw notFound(`no resource ${uri} (register it with \`portcullis resource create\`)`);
  if (existing.builtIn) throw builtInRefusal(uri);
  const change: ResourceChange = {};
  if (input.scopes !== undefined) change.scopes = checkScopes(input.scopes);
  if (input.ttl !== undefined) change.accessTokenTtl = checkTtl(input.ttl);
  if (input.format !== undefined) change.tokenFormat = checkFormat(input.format);
  if (input.introspector !== undefined)
    change.introspector = input.introspector === null ? null : await checkIntrospector(db, input.introspector);
  if (input.signedIntrospection !== undefined) change.signedIntrospection = input.signedIntrospection;
  checkSignedIntrospection(
    change.signedIntrospection ?? existing.signedIntrospection,
    change.introspector === undefined ? existing.introspector : change.introspector,
  );
  if (input.isDefault) change.isDefault = true;
  if (input.detailsTypes !== undefined)
    change.detailsTypes = await checkDetailsTypes(db, uri, input.detailsTypes, await listDetailsTypes(db));
  const descriptions = parseDescriptions(input.describe ?? [], change.scopes ?? existing.scopes);
  if (Object.keys(change).length === 0 && Object.keys(descriptions).length === 0)
    throw invalidInput(
      'nothing to change: give at least one of --scope --ttl --format --introspector --no-introspector --signed-introspection --no-signed-introspection --default --describe --details-type --no-details-types',
    );
  if (change.scopes) await checkScopesFree(db, uri, change.scopes);
  if (!(await saveChange(db, uri, change, Date.now(), onlyIf).catch((error: unknown) => explainConflict(db, uri, error, false)))) {
    if (onlyIf.updatedAt !== undefined && (await findResource(db, uri))) throw preconditionFailed(`resource ${uri}`);
    throw notFound(`no resource ${uri}`);
  }
  await saveScopeDescriptions(db, descriptions);
  const changed = [...Object.keys(change), ...(Object.keys(descriptions).length ? ['descriptions'] : [])];
  await recordChange(db, by, { action: 'resource.update', target: uri, details: { changed } });
  return describeStored(db, uri, descriptions);
}
