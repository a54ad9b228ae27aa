import type { z } from 'zod';
import type { AccountDeps } from '../accounts/user.service.ts';
import {
  createUser,
  describeUserById,
  disableUser,
  enableUser,
  resetTotp,
  unlockUser,
  userById,
  userPage,
} from '../accounts/user.service.ts';
import { auditPage } from '../audit/audit.service.ts';
import type { Db } from '../db/knex.ts';
import { grantPage, revokeGrantById } from '../grants/grant.service.ts';
import type { Keyring } from '../keys/kek.ts';
import type { RotationPolicy } from '../keys/signing-key.lifecycle.ts';
import { loadKeyTimeline, revokeKey, rotateKeys } from '../keys/signing-key.service.ts';
import {
  createPartner,
  deletePartner,
  describePartner,
  getPartner,
  partnerPage,
  rotatePartnerSecret,
  setPartnerKeys,
  setPartnerProfile,
  setPartnerStatus,
  updatePartnerDetails,
} from '../partners/partner.service.ts';
import type { PartnerProfileName } from '../partners/partner.store.ts';
import {
  ADMIN_READ,
  ADMIN_WRITE,
  createResource,
  describeResourceAt,
  describeResources,
  updateResource,
  type DetailsTypeRequest,
} from '../resources/resource.service.ts';
import { invalidInput } from '../shared/errors.ts';
import type { AdminCaller } from './admin-token.ts';
import * as s from './admin-api.schemas.ts';

/** What the operations act on: the same services, with the same arguments, as the CLI (src/cli/cli.ts). */
export type OperationDeps = Readonly<{
  db: Db;
  keyring: Keyring;
  accounts: AccountDeps;
  policy: RotationPolicy;
  defaultProfile: PartnerProfileName;
  now: () => number;
}>;

type Input<P, Q, B> = Readonly<{
  params: P;
  query: Q;
  body: B;
  caller: AdminCaller;
  /** the version named by If-Match (operations with `ifMatch`) */
  ifMatch?: number;
  deps: OperationDeps;
}>;

/** What an operation answers: its body, and for one thing its version (the ETag) and where it lives. */
type Result = Readonly<{ body: unknown; version?: number; location?: string }>;

type Method = 'get' | 'post' | 'patch' | 'put' | 'delete';

export type Operation = Readonly<{
  method: Method;
  /** OpenAPI form, under /admin/api/v1: /partners/{client_id} */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  scope: typeof ADMIN_READ | typeof ADMIN_WRITE;
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** an update: `If-Match` with the current ETag is required (428 without, 412 when stale) */
  ifMatch?: boolean;
  /** 201 and a Location header */
  creates?: boolean;
  response: z.ZodType;
  run(input: Input<unknown, unknown, unknown>): Promise<Result>;
}>;

const EMPTY = s.EmptyBody;

/** One operation, typed by its schemas (the table below is then of plain Operations). */
function op<P extends z.ZodObject = typeof EMPTY, Q extends z.ZodObject = typeof EMPTY, B extends z.ZodType = typeof EMPTY>(
  definition: Omit<Operation, 'run' | 'params' | 'query' | 'body'> & {
    params?: P;
    query?: Q;
    body?: B;
    run(input: Input<z.output<P>, z.output<Q>, z.output<B>>): Promise<Result>;
  },
): Operation {
  return definition;
}

const words = (text: string | undefined) => (text === undefined ? undefined : text.split(/\s+/).filter(Boolean));
const describePairs = (descriptions: Record<string, string> | undefined) =>
  descriptions && Object.entries(descriptions).map(([scope, text]) => `${scope}=${text}`);
const detailsTypes = (
  types: ReadonlyArray<{ type: string; schema?: Record<string, unknown> }> | undefined,
): DetailsTypeRequest[] | undefined =>
  types?.map((entry, i) =>
    entry.schema === undefined
      ? { type: entry.type }
      : { type: entry.type, schema: { text: JSON.stringify(entry.schema), file: `details_types[${String(i)}].schema` } },
  );

/** A partner as shown, with its version. */
async function partnerAt(db: Db, clientId: string): Promise<Result> {
  const partner = await getPartner(db, clientId);
  return { body: describePartner(partner), version: partner.updatedAt };
}

async function apiAt(db: Db, uri: string): Promise<Result> {
  const { resource, version } = await describeResourceAt(db, uri);
  return { body: resource, version };
}

async function personAt(deps: OperationDeps, id: string): Promise<Result> {
  const user = await userById(deps.db, id);
  return { body: await describeUserById(deps.accounts, id), version: user.updatedAt };
}

const apiPath = (uri: string) => `/apis/${encodeURIComponent(uri)}`;

/** Every operation of the admin API: the router and the OpenAPI document are both made from this list. */
export const OPERATIONS: readonly Operation[] = [
  // ── partners ──
  op({
    method: 'get',
    path: '/partners',
    operationId: 'listPartners',
    tag: 'partners',
    summary: 'List partners by name, a page at a time',
    scope: ADMIN_READ,
    query: s.SearchPageQuery,
    response: s.PartnerPage,
    run: async ({ query, deps }) => ({ body: await partnerPage(deps.db, query) }),
  }),
  op({
    method: 'post',
    path: '/partners',
    operationId: 'createPartner',
    tag: 'partners',
    summary: 'Register a partner (its client secret is in this answer only)',
    scope: ADMIN_WRITE,
    body: s.PartnerCreate,
    creates: true,
    response: s.PartnerCreated,
    run: async ({ body, caller, deps }) => {
      const created = await createPartner(
        deps.db,
        {
          name: body.name,
          scopes: words(body.scope) ?? [],
          grantTypes: body.grant_types ?? [],
          redirectUris: body.redirect_uris ?? [],
          isPublic: body.public,
          allowDuplicateName: body.allow_duplicate_name,
          security: {
            profile: body.profile,
            authMethod: body.auth_method,
            jwksText: body.jwks === undefined ? undefined : JSON.stringify(body.jwks),
            jwksUri: body.jwks_uri,
            tlsSubjectDn: body.tls_subject_dn,
            tokenBinding: body.token_binding,
            messageSigning: body.message_signing,
          },
        },
        caller.by,
        { defaultProfile: deps.defaultProfile },
      );
      const { version } = await partnerAt(deps.db, created.client_id);
      const secret = created.client_secret === null ? {} : { client_secret: created.client_secret };
      return { body: { ...created.partner, ...secret }, version, location: `/partners/${created.client_id}` };
    },
  }),
  op({
    method: 'get',
    path: '/partners/{client_id}',
    operationId: 'getPartner',
    tag: 'partners',
    summary: 'One partner (with its ETag)',
    scope: ADMIN_READ,
    params: s.ClientIdParams,
    response: s.Partner,
    run: ({ params, deps }) => partnerAt(deps.db, params.client_id),
  }),
  op({
    method: 'patch',
    path: '/partners/{client_id}',
    operationId: 'updatePartner',
    tag: 'partners',
    summary: 'Change a partner’s name, allowed scopes, grants, redirect URIs or message signing',
    description: 'Only the fields given change; `scope`, `grant_types` and `redirect_uris` replace the lists.',
    scope: ADMIN_WRITE,
    params: s.ClientIdParams,
    body: s.PartnerUpdate,
    ifMatch: true,
    response: s.Partner,
    run: async ({ params, body, caller, ifMatch, deps }) => {
      await updatePartnerDetails(
        deps.db,
        params.client_id,
        {
          name: body.name,
          scopes: words(body.scope),
          grantTypes: body.grant_types,
          redirectUris: body.redirect_uris,
          allowDuplicateName: body.allow_duplicate_name,
          messageSigning: body.message_signing,
        },
        caller.by,
        deps.now(),
        { updatedAt: ifMatch },
      );
      return partnerAt(deps.db, params.client_id);
    },
  }),
  op({
    method: 'delete',
    path: '/partners/{client_id}',
    operationId: 'deletePartner',
    tag: 'partners',
    summary: 'Delete a partner and everything issued to it',
    scope: ADMIN_WRITE,
    params: s.ClientIdParams,
    response: s.Deleted,
    run: async ({ params, caller, deps }) => ({ body: await deletePartner(deps.db, params.client_id, caller.by) }),
  }),
  ...(['suspend', 'resume'] as const).map((action) =>
    op({
      method: 'post',
      path: `/partners/{client_id}/${action}`,
      operationId: `${action}Partner`,
      tag: 'partners',
      summary:
        action === 'suspend'
          ? 'Suspend a partner: its grants and tokens are revoked at once, new ones refused'
          : 'Resume a suspended partner (nothing revoked comes back)',
      scope: ADMIN_WRITE,
      params: s.ClientIdParams,
      body: EMPTY.optional(),
      response: s.Partner,
      run: async ({ params, caller, deps }) => {
        await setPartnerStatus(deps.db, params.client_id, action === 'suspend' ? 'suspended' : 'active', caller.by, deps.now());
        return partnerAt(deps.db, params.client_id);
      },
    }),
  ),
  op({
    method: 'post',
    path: '/partners/{client_id}/rotate-secret',
    operationId: 'rotatePartnerSecret',
    tag: 'partners',
    summary: 'A new client secret (in this answer only); the old one stops working at once',
    scope: ADMIN_WRITE,
    params: s.ClientIdParams,
    body: EMPTY.optional(),
    response: s.SecretRotated,
    run: async ({ params, caller, deps }) => ({ body: await rotatePartnerSecret(deps.db, params.client_id, caller.by, deps.now()) }),
  }),
  op({
    method: 'put',
    path: '/partners/{client_id}/keys',
    operationId: 'setPartnerKeys',
    tag: 'partners',
    summary: 'Replace a partner’s public keys (a key set, or its URL); a partner with a secret moves to private_key_jwt',
    scope: ADMIN_WRITE,
    params: s.ClientIdParams,
    body: s.PartnerKeys,
    ifMatch: true,
    response: s.Partner,
    run: async ({ params, body, caller, ifMatch, deps }) => {
      const keys = { jwksText: body.jwks === undefined ? undefined : JSON.stringify(body.jwks), jwksUri: body.jwks_uri };
      await setPartnerKeys(deps.db, params.client_id, keys, caller.by, deps.now(), { updatedAt: ifMatch });
      return partnerAt(deps.db, params.client_id);
    },
  }),
  op({
    method: 'put',
    path: '/partners/{client_id}/profile',
    operationId: 'setPartnerProfile',
    tag: 'partners',
    summary: 'Set a partner’s profile (baseline or fapi2)',
    scope: ADMIN_WRITE,
    params: s.ClientIdParams,
    body: s.PartnerProfile,
    ifMatch: true,
    response: s.Partner,
    run: async ({ params, body, caller, ifMatch, deps }) => {
      await setPartnerProfile(deps.db, params.client_id, body.profile, caller.by, deps.now(), { updatedAt: ifMatch });
      return partnerAt(deps.db, params.client_id);
    },
  }),
  op({
    method: 'get',
    path: '/partners/{client_id}/grants',
    operationId: 'listPartnerGrants',
    tag: 'grants',
    summary: 'The live grants people gave a partner',
    scope: ADMIN_READ,
    params: s.ClientIdParams,
    query: s.PageQuery,
    response: s.GrantPage,
    run: async ({ params, query, deps }) => {
      await getPartner(deps.db, params.client_id);
      return { body: await grantPage(deps.db, { clientId: params.client_id, ...query }, deps.now()) };
    },
  }),
  // ── APIs ──
  op({
    method: 'get',
    path: '/apis',
    operationId: 'listApis',
    tag: 'apis',
    summary: 'Every registered API (the admin API itself is built in)',
    scope: ADMIN_READ,
    response: s.ApiList,
    run: async ({ deps }) => ({ body: { items: await describeResources(deps.db) } }),
  }),
  op({
    method: 'post',
    path: '/apis',
    operationId: 'createApi',
    tag: 'apis',
    summary: 'Register an API with its scopes (and their words for the consent page)',
    scope: ADMIN_WRITE,
    body: s.ApiCreate,
    creates: true,
    response: s.Api,
    run: async ({ body, caller, deps }) => {
      await createResource(
        deps.db,
        {
          uri: body.uri,
          scopes: words(body.scope) ?? [],
          ttl: body.ttl,
          format: body.format,
          introspector: body.introspector,
          signedIntrospection: body.signed_introspection,
          isDefault: body.default ?? false,
          describe: describePairs(body.descriptions),
          detailsTypes: detailsTypes(body.details_types),
        },
        caller.by,
        deps.now(),
      );
      return { ...(await apiAt(deps.db, body.uri)), location: apiPath(body.uri) };
    },
  }),
  op({
    method: 'get',
    path: '/apis/{uri}',
    operationId: 'getApi',
    tag: 'apis',
    summary: 'One API with its scopes’ words (with its ETag)',
    scope: ADMIN_READ,
    params: s.ApiParams,
    response: s.Api,
    run: ({ params, deps }) => apiAt(deps.db, params.uri),
  }),
  op({
    method: 'patch',
    path: '/apis/{uri}',
    operationId: 'updateApi',
    tag: 'apis',
    summary: 'Change an API: scopes (replacing them), lifetime, format, introspector, default, scope words, detail types',
    description: 'The built-in admin API cannot be changed.',
    scope: ADMIN_WRITE,
    params: s.ApiParams,
    body: s.ApiUpdate,
    ifMatch: true,
    response: s.Api,
    run: async ({ params, body, caller, ifMatch, deps }) => {
      await updateResource(
        deps.db,
        {
          uri: params.uri,
          scopes: words(body.scope),
          ttl: body.ttl,
          format: body.format,
          introspector: body.introspector,
          signedIntrospection: body.signed_introspection,
          isDefault: body.default,
          describe: describePairs(body.descriptions),
          detailsTypes: detailsTypes(body.details_types),
        },
        caller.by,
        { updatedAt: ifMatch },
      );
      return apiAt(deps.db, params.uri);
    },
  }),
  // ── people ──
  op({
    method: 'get',
    path: '/people',
    operationId: 'listPeople',
    tag: 'people',
    summary: 'List people by username, a page at a time',
    scope: ADMIN_READ,
    query: s.SearchPageQuery,
    response: s.PersonPage,
    run: async ({ query, deps }) => ({ body: await userPage(deps.accounts, query) }),
  }),
  op({
    method: 'post',
    path: '/people',
    operationId: 'createPerson',
    tag: 'people',
    summary: 'Create a person; the enrolment code for their authenticator is in this answer only',
    scope: ADMIN_WRITE,
    body: s.PersonCreate,
    creates: true,
    response: s.PersonCreated,
    run: async ({ body, caller, deps }) => {
      const created = await createUser(
        deps.accounts,
        { username: body.username, password: body.password, isAdmin: body.admin ?? false, withTotp: false },
        caller.by,
      );
      return { body: created, location: `/people/${created.id}` };
    },
  }),
  op({
    method: 'get',
    path: '/people/{id}',
    operationId: 'getPerson',
    tag: 'people',
    summary: 'One person (with its ETag)',
    scope: ADMIN_READ,
    params: s.PersonParams,
    response: s.Person,
    run: ({ params, deps }) => personAt(deps, params.id),
  }),
  ...(
    [
      ['unlock', 'unlockPerson', 'Lift a lock after failed sign-ins', unlockUser, s.Person],
      ['disable', 'disablePerson', 'Disable a person: signed out everywhere, their grants and tokens revoked', disableUser, s.Person],
      ['enable', 'enablePerson', 'Enable a disabled person (nothing revoked comes back)', enableUser, s.Person],
      [
        'reset-second-factor',
        'resetSecondFactor',
        'Remove a person’s authenticator and recovery codes; the new enrolment code is in this answer only',
        resetTotp,
        s.PersonEnrolment,
      ],
    ] as const
  ).map(([action, operationId, summary, change, response]) =>
    op({
      method: 'post',
      path: `/people/{id}/${action}`,
      operationId,
      tag: 'people',
      summary,
      scope: ADMIN_WRITE,
      params: s.PersonParams,
      body: EMPTY.optional(),
      response,
      run: async ({ params, caller, deps }) => {
        const user = await userById(deps.db, params.id);
        return { body: await change(deps.accounts, user.username, caller.by) };
      },
    }),
  ),
  op({
    method: 'get',
    path: '/people/{id}/grants',
    operationId: 'listPersonGrants',
    tag: 'grants',
    summary: 'The live grants a person gave partners',
    scope: ADMIN_READ,
    params: s.PersonParams,
    query: s.PageQuery,
    response: s.GrantPage,
    run: async ({ params, query, deps }) => {
      await userById(deps.db, params.id);
      return { body: await grantPage(deps.db, { accountId: params.id, ...query }, deps.now()) };
    },
  }),
  // ── grants ──
  op({
    method: 'get',
    path: '/grants',
    operationId: 'listGrants',
    tag: 'grants',
    summary: 'Live grants: who granted which partner what, and when',
    scope: ADMIN_READ,
    query: s.GrantQuery,
    response: s.GrantPage,
    run: async ({ query, deps }) => {
      const { person, partner, ...paging } = query;
      return { body: await grantPage(deps.db, { accountId: person, clientId: partner, ...paging }, deps.now()) };
    },
  }),
  op({
    method: 'delete',
    path: '/grants/{id}',
    operationId: 'revokeGrant',
    tag: 'grants',
    summary: 'Revoke a grant and every token and code issued from it',
    scope: ADMIN_WRITE,
    params: s.GrantParams,
    response: s.GrantRevoked,
    run: async ({ params, caller, deps }) => ({ body: await revokeGrantById(deps.db, params.id, caller.by) }),
  }),
  // ── signing keys ──
  op({
    method: 'get',
    path: '/keys',
    operationId: 'keyTimeline',
    tag: 'keys',
    summary: 'The signing keys as a timeline: next, active, retired and revoked, with their dates',
    scope: ADMIN_READ,
    response: s.KeyTimeline,
    run: async ({ deps }) => ({ body: await loadKeyTimeline(deps.db, deps.policy, deps.now()) }),
  }),
  op({
    method: 'post',
    path: '/keys/rotate',
    operationId: 'rotateKeys',
    tag: 'keys',
    summary: 'Add a signing key now (published at once; signing after KEY_PREPUBLISH, or at once with `immediately`)',
    scope: ADMIN_WRITE,
    body: s.KeyRotate.optional(),
    response: s.KeyTimeline,
    run: async ({ body, caller, deps }) => {
      await rotateKeys(deps.db, deps.keyring, deps.policy, { immediately: body?.immediately ?? false }, caller.by, deps.now());
      return { body: await loadKeyTimeline(deps.db, deps.policy, deps.now()) };
    },
  }),
  op({
    method: 'post',
    path: '/keys/{kid}/revoke',
    operationId: 'revokeKey',
    tag: 'keys',
    summary: 'Emergency revocation: the key leaves the JWKS at once and, if it signed, a new key signs',
    description: 'Typed twice: `confirm` must equal the kid in the path.',
    scope: ADMIN_WRITE,
    params: s.KeyParams,
    body: s.KeyRevoke,
    response: s.KeyTimeline,
    run: async ({ params, body, caller, deps }) => {
      if (body.confirm !== params.kid) throw invalidInput('confirm must be the kid of the key to revoke, typed again');
      await revokeKey(deps.db, deps.keyring, deps.policy, params.kid, caller.by, deps.now());
      return { body: await loadKeyTimeline(deps.db, deps.policy, deps.now()) };
    },
  }),
  // ── audit log ──
  op({
    method: 'get',
    path: '/audit',
    operationId: 'listAudit',
    tag: 'audit',
    summary: 'The audit log, newest first, filtered by actor, action, target and time',
    scope: ADMIN_READ,
    query: s.AuditQuery,
    response: s.AuditPage,
    run: async ({ query, deps }) => ({ body: await auditPage(deps.db, query, deps.now()) }),
  }),
];
