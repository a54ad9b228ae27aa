import { extendZodWithOpenApi } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { MAX_PAGE_SIZE } from '../shared/page-cursor.ts';

/**
 * The admin API's request and response shapes (zod 4). The same objects validate each request
 * (src/admin/admin-api.routes.ts) and write the OpenAPI 3.1 document: the two cannot drift apart.
 * Request objects are strict: a field the API does not know is refused, never ignored.
 */
extendZodWithOpenApi(z);

/** Text of 1…max characters without NUL (which PostgreSQL refuses in a query, and no name holds). */
const text = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((value) => !value.includes('\u0000'), 'must not contain NUL');
const scopeList = text(2000).openapi({ description: 'space-separated scopes', example: 'payments:read payments:write' });
const uri = text(512);
const iso = z.string().openapi({ format: 'date-time' });
const isoOrNull = iso.nullable();

// ── paging ──────────────────────────────────────────────────────────────────

const cursor = text(2048).openapi({ description: 'the `next` of the page before, unchanged' });
const limit = z.coerce
  .number()
  .int()
  .min(1)
  .max(MAX_PAGE_SIZE)
  .openapi({ description: `page size (default 50, at most ${String(MAX_PAGE_SIZE)})`, type: 'integer' });

export const PageQuery = z.strictObject({ cursor: cursor.optional(), limit: limit.optional() });
export const SearchPageQuery = PageQuery.extend({
  search: text(200).optional().openapi({ description: 'part of the name (or username) or id, case ignored' }),
});

/** A page: the items and the cursor of the next page (null on the last). */
function page<T extends z.ZodType>(name: string, item: T) {
  return z
    .object({
      items: z.array(item),
      next: z.string().nullable().openapi({ description: 'pass as `cursor` for the next page; null on the last page' }),
    })
    .openapi(name);
}

// ── partners ────────────────────────────────────────────────────────────────

export const ClientIdParams = z.strictObject({
  client_id: text(64).openapi({ param: { name: 'client_id', in: 'path' }, example: 'ptn_Xr1…' }),
});

const grantType = z.enum(['client_credentials', 'authorization_code', 'refresh_token']);
const redirectUris = z.array(text(2000)).max(20);
const jwks = z
  .looseObject({ keys: z.array(z.record(z.string(), z.unknown())).max(10) })
  .openapi({ description: 'a JSON Web Key Set of the partner’s public keys' });

export const Partner = z
  .looseObject({
    client_id: z.string(),
    name: z.string(),
    status: z.enum(['active', 'suspended']),
    scope: z.string(),
    allowed: z.record(z.string(), z.string()).openapi({ description: 'API URI → the scopes of it the partner may be given' }),
    public: z.boolean(),
    profile: z.enum(['baseline', 'fapi2']),
    auth_method: z.string(),
    token_binding: z.string(),
    message_signing: z.boolean(),
    grant_types: z.array(z.string()),
    redirect_uris: z.array(z.string()),
    created_at: iso,
    updated_at: iso,
  })
  .openapi('Partner');

export const PartnerCreated = Partner.extend({
  client_secret: z.string().optional().openapi({ description: 'shown this once (confidential partners with a secret)' }),
}).openapi('PartnerCreated');

export const PartnerPage = page('PartnerPage', Partner);

export const PartnerCreate = z
  .strictObject({
    name: text(200),
    scope: scopeList,
    grant_types: z.array(grantType).max(3).optional(),
    redirect_uris: redirectUris.optional(),
    public: z.boolean().optional(),
    allow_duplicate_name: z.boolean().optional(),
    profile: z.enum(['baseline', 'fapi2']).optional(),
    auth_method: z.enum(['client_secret_basic', 'none', 'private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth']).optional(),
    jwks: jwks.optional(),
    jwks_uri: uri.optional(),
    tls_subject_dn: text(1000).optional(),
    token_binding: z.enum(['dpop', 'mtls']).optional(),
    message_signing: z.boolean().optional(),
  })
  .openapi('PartnerCreate');

export const PartnerUpdate = z
  .strictObject({
    name: text(200).optional(),
    scope: scopeList.optional(),
    grant_types: z.array(grantType).min(1).max(3).optional(),
    redirect_uris: redirectUris.optional(),
    allow_duplicate_name: z.boolean().optional(),
    message_signing: z.boolean().optional(),
  })
  .openapi('PartnerUpdate');

export const PartnerKeys = z
  .strictObject({ jwks: jwks.optional(), jwks_uri: uri.optional() })
  .refine((keys) => (keys.jwks === undefined) !== (keys.jwks_uri === undefined), { error: 'give exactly one of jwks and jwks_uri' })
  .openapi('PartnerKeys');

export const PartnerProfile = z.strictObject({ profile: z.enum(['baseline', 'fapi2']) }).openapi('PartnerProfile');

export const SecretRotated = z.object({ client_id: z.string(), client_secret: z.string() }).openapi('SecretRotated');

export const Deleted = z.object({ deleted: z.literal(true) }).openapi('Deleted');

// ── APIs ────────────────────────────────────────────────────────────────────

export const ApiParams = z.strictObject({
  uri: uri.openapi({ param: { name: 'uri', in: 'path' }, description: 'the API’s URI, percent-encoded as one path segment' }),
});

const descriptions = z
  .record(text(100), text(300))
  .openapi({ description: 'scope → words people understand (consent page)', example: { 'payments:read': 'See your payments' } });
const detailsTypes = z
  .array(
    z.strictObject({
      type: text(200),
      schema: z
        .record(z.string(), z.unknown())
        .optional()
        .openapi({ description: 'a JSON Schema of the detail (payment_initiation has one built in)' }),
    }),
  )
  .max(20);

export const Api = z
  .looseObject({
    uri: z.string(),
    scope: z.string(),
    access_token_ttl: z.number().int(),
    token_format: z.enum(['jwt', 'opaque']),
    introspector: z.string().nullable(),
    signed_introspection: z.boolean(),
    default: z.boolean(),
    built_in: z.boolean(),
    created_at: iso,
    updated_at: iso,
    descriptions: descriptions.optional(),
  })
  .openapi('Api');

export const ApiList = z.object({ items: z.array(Api) }).openapi('ApiList');

export const ApiCreate = z
  .strictObject({
    uri,
    scope: scopeList,
    ttl: z.number().int().optional().openapi({ description: 'access-token lifetime, seconds (30 to 86400; default 600)' }),
    format: z.enum(['jwt', 'opaque']).optional(),
    introspector: text(64).optional(),
    signed_introspection: z.boolean().optional(),
    default: z.boolean().optional(),
    descriptions: descriptions.optional(),
    details_types: detailsTypes.optional(),
  })
  .openapi('ApiCreate');

export const ApiUpdate = z
  .strictObject({
    scope: scopeList.optional(),
    ttl: z.number().int().optional(),
    format: z.enum(['jwt', 'opaque']).optional(),
    introspector: text(64).nullable().optional().openapi({ description: 'null removes the introspector' }),
    signed_introspection: z.boolean().optional(),
    default: z.literal(true).optional(),
    descriptions: descriptions.optional(),
    details_types: detailsTypes.optional().openapi({ description: 'replaces the API’s types; [] removes them' }),
  })
  .openapi('ApiUpdate');

// ── people ──────────────────────────────────────────────────────────────────

export const PersonParams = z.strictObject({ id: text(64).openapi({ param: { name: 'id', in: 'path' }, example: 'usr_…' }) });

export const Person = z
  .looseObject({
    id: z.string(),
    username: z.string(),
    admin: z.boolean(),
    status: z.enum(['active', 'disabled']),
    totp_enrolled: z.boolean(),
    locked_until: isoOrNull,
    enrolment_code_expires_at: isoOrNull,
    created_at: iso,
  })
  .openapi('Person');

export const PersonPage = page('PersonPage', Person);

export const PersonCreate = z
  .strictObject({
    username: text(64),
    password: text(1024).openapi({ description: 'the first password (checked for strength; never logged)' }),
    admin: z.boolean().optional(),
  })
  .openapi('PersonCreate');

export const PersonCreated = z
  .looseObject({
    id: z.string(),
    username: z.string(),
    enrolment_code: z
      .string()
      .openapi({ description: 'shown this once: hand it to the person out of band; they bind an authenticator with it at first sign-in' }),
    enrolment_code_expires_at: iso,
  })
  .openapi('PersonCreated');

export const PersonEnrolment = Person.extend({
  enrolment_code: z.string().openapi({ description: 'shown this once' }),
}).openapi('PersonEnrolment');

// ── grants ──────────────────────────────────────────────────────────────────

const Grant = z
  .looseObject({
    id: z.string(),
    user: z.string().nullable(),
    account_id: z.string().nullable(),
    client_id: z.string().nullable(),
    partner: z.string().nullable(),
    scope: z.string(),
    resources: z.record(z.string(), z.string()),
    granted_at: isoOrNull,
    expires_at: isoOrNull,
    live_tokens: z.number().int(),
  })
  .openapi('Grant');

export const GrantPage = page('GrantPage', Grant);

export const GrantQuery = PageQuery.extend({
  person: text(64).optional().openapi({ description: 'a person’s id: only their grants' }),
  partner: text(64).optional().openapi({ description: 'a client_id: only that partner’s grants' }),
});

export const GrantParams = z.strictObject({ id: text(128).openapi({ param: { name: 'id', in: 'path' } }) });

export const GrantRevoked = z.object({ id: z.string(), revoked: z.literal(true), rows_deleted: z.number().int() }).openapi('GrantRevoked');

// ── signing keys ────────────────────────────────────────────────────────────

const Key = z
  .looseObject({
    kid: z.string(),
    alg: z.string(),
    state: z.enum(['next', 'active', 'retired', 'revoked']),
    published: z.boolean().openapi({ description: 'in the JWKS now' }),
    created_at: isoOrNull,
    activates_at: isoOrNull,
    signs_until: isoOrNull,
    retires_at: isoOrNull,
    removed_at: isoOrNull,
    revoked_at: isoOrNull,
  })
  .openapi('Key');

export const KeyTimeline = z
  .object({ at: iso, signing: z.string().nullable(), keys: z.array(Key) })
  .openapi('KeyTimeline', { description: 'every key, in order of activation, as it stands at `at`' });

export const KeyRotate = z
  .strictObject({
    immediately: z.boolean().optional().openapi({ description: 'sign with the new key at once (else after KEY_PREPUBLISH)' }),
  })
  .openapi('KeyRotate');

export const KeyParams = z.strictObject({ kid: text(128).openapi({ param: { name: 'kid', in: 'path' } }) });

export const KeyRevoke = z
  .strictObject({ confirm: text(128).openapi({ description: 'the kid again: an emergency revocation is typed twice' }) })
  .openapi('KeyRevoke');

// ── audit log ───────────────────────────────────────────────────────────────

export const AuditQuery = PageQuery.extend({
  actor: text(200).optional().openapi({ description: 'cli, partner:<client_id>, person:<id> or anonymous' }),
  action: text(64).optional().openapi({ description: 'an action (partner.suspend) or a family (partner.*)' }),
  target: text(300).optional(),
  since: text(64).optional().openapi({ description: 'ISO 8601 time or a duration back from now (24h, 7d); inclusive' }),
  until: text(64).optional().openapi({ description: 'ISO 8601 time or a duration back from now; exclusive' }),
});

const AuditEntry = z
  .object({
    seq: z.number().int(),
    at: iso,
    actor: z.string(),
    action: z.string(),
    target: z.string().nullable(),
    source_ip: z.string().nullable(),
    request_id: z.string().nullable(),
    details: z.unknown(),
    prev_hash: z.string(),
    hash: z.string(),
  })
  .openapi('AuditEntry');

export const AuditPage = page('AuditPage', AuditEntry);

// ── errors ──────────────────────────────────────────────────────────────────

export const Problem = z
  .looseObject({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().optional(),
    code: z.string().openapi({ description: 'a stable machine word (invalid_input, not_found, precondition_failed, …)' }),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .openapi('Problem', { description: 'RFC 9457 problem details' });

export const EmptyBody = z.strictObject({});
