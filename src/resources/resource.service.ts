import type { Db } from '../db/knex.ts';
import { invalidInput } from '../http/errors.ts';
import { findDefaultResource, findResource, listResources, saveResource, type Resource } from './resource.store.ts';
import { findPartner } from '../partners/partner.store.ts';
import { saveScopeDescriptions } from './scope-description.store.ts';

export const SCOPE_PATTERN = /^[\x21\x23-\x5B\x5D-\x7E]+$/; // RFC 6749 scope-token

/**
 * Resource lookups on the token hot path. Rows change rarely (CLI), so answers are kept for a
 * short time: a change made by the CLI or another instance applies within `ttlMs`.
 */
export function createResourceDirectory(db: Db, ttlMs = 2000, now: () => number = Date.now) {
  const cache = new Map<string, { at: number; value: Promise<Resource | undefined> }>();
  function cached(key: string, load: () => Promise<Resource | undefined>): Promise<Resource | undefined> {
    const hit = cache.get(key);
    if (hit && now() - hit.at < ttlMs) return hit.value;
    const value = load();
    value.catch(() => cache.delete(key));
    cache.set(key, { at: now(), value });
    if (cache.size > 1000) cache.delete(cache.keys().next().value as string);
    return value;
  }
  return {
    // a resource URI is printable ASCII (RFC 3986); anything else is no resource, and no query
    find: (uri: string) => (/^[\x21-\x7e]{1,512}$/.test(uri) ? cached(`uri:${uri}`, () => findResource(db, uri)) : Promise.resolve(undefined)),
    findDefault: () => cached('default', () => findDefaultResource(db)),
  };
}

export type ResourceDirectory = ReturnType<typeof createResourceDirectory>;

export const DEFAULT_ACCESS_TOKEN_TTL = 600;
const MAX_ACCESS_TOKEN_TTL = 24 * 3600;

export function describeResource(resource: Resource) {
  return {
    uri: resource.uri,
    scope: resource.scopes.join(' '),
    access_token_ttl: resource.accessTokenTtl,
    token_format: resource.tokenFormat,
    introspector: resource.introspector,
    default: resource.isDefault,
    created_at: new Date(resource.createdAt).toISOString(),
  };
}

function checkUri(uri: string): string {
  const url = URL.parse(uri);
  if (!url) throw invalidInput(`--uri ${uri} is not an absolute URI`);
  if (url.hash || uri.includes('#')) throw invalidInput('--uri must not have a fragment (RFC 8707)');
  const local = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && local)) throw invalidInput('--uri must be https (http only on localhost)');
  return uri;
}

/** Registers an API, or updates the one with this URI. Scope names are unique across APIs. */
/** `scope=words` pairs (the CLI's --describe) → a map; each scope must be one of `scopes`. */
export function parseDescriptions(pairs: readonly string[], scopes: readonly string[]): Record<string, string> {
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

export async function createResource(db: Db, input: { uri: string; scopes: string[]; ttl?: number; format?: string; introspector?: string; isDefault: boolean; describe?: string[] }, now: number = Date.now()) {
  const uri = checkUri(input.uri);
  const scopes = [...new Set(input.scopes)];
  if (scopes.length === 0) throw invalidInput('--scope is required (space-separated, e.g. "payments:read payments:write")');
  for (const scope of scopes) {
    if (!SCOPE_PATTERN.test(scope) || scope.length > 100) throw invalidInput(`"${scope}" is not a valid scope`);
    if (scope === 'openid' || scope === 'offline_access') throw invalidInput(`"${scope}" is reserved by OpenID Connect`);
  }
  const ttl = input.ttl ?? DEFAULT_ACCESS_TOKEN_TTL;
  if (!Number.isInteger(ttl) || ttl < 30 || ttl > MAX_ACCESS_TOKEN_TTL) throw invalidInput(`--ttl must be whole seconds from 30 to ${MAX_ACCESS_TOKEN_TTL}`);
  for (const other of await listResources(db)) {
    if (other.uri === uri) continue;
    const clash = scopes.find((scope) => other.scopes.includes(scope));
    if (clash) throw invalidInput(`scope "${clash}" already belongs to ${other.uri}`);
  }
  const format = input.format ?? 'jwt';
  if (format !== 'jwt' && format !== 'opaque') throw invalidInput('--format must be jwt or opaque');
  if (input.introspector !== undefined && !(await findPartner(db, input.introspector))) throw invalidInput(`--introspector ${input.introspector}: no such partner`);
  const descriptions = parseDescriptions(input.describe ?? [], scopes);
  const existing = await findResource(db, uri);
  const resource: Resource = { uri, scopes, accessTokenTtl: ttl, tokenFormat: format, introspector: input.introspector ?? null, isDefault: input.isDefault, createdAt: existing?.createdAt ?? now };
  await saveResource(db, resource);
  await saveScopeDescriptions(db, descriptions);
  return Object.keys(descriptions).length ? { ...describeResource(resource), descriptions } : describeResource(resource);
}
