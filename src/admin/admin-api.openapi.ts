import { OpenAPIRegistry, OpenApiGeneratorV31 } from '@asteasolutions/zod-to-openapi';
import { ADMIN_API_PATH, ADMIN_READ, ADMIN_WRITE } from '../resources/resource.service.ts';
import type { Operation } from './admin-api.operations.ts';
import { Problem } from './admin-api.schemas.ts';

const SCHEME = 'portcullis';

const problem = (description: string) => ({ description, content: { 'application/problem+json': { schema: Problem } } });

/**
 * The OpenAPI 3.1 document of the admin API, written from the operations' own schemas (the ones
 * that validate requests) and the OAuth 2.0 scheme that protects them: client credentials for
 * automation, the authorization code flow for a person who is an admin.
 */
export function openApiDocument(operations: readonly Operation[], issuer: string, version: string) {
  const registry = new OpenAPIRegistry();
  registry.registerComponent('securitySchemes', SCHEME, {
    type: 'oauth2',
    description: `Portcullis's own access tokens for the resource ${issuer}${ADMIN_API_PATH} (send it as the \`resource\` parameter). Opaque bearer tokens only.`,
    flows: {
      clientCredentials: {
        tokenUrl: `${issuer}/token`,
        scopes: { [ADMIN_READ]: 'read everything the admin API shows', [ADMIN_WRITE]: 'change partners, APIs, people, grants and keys' },
      },
      authorizationCode: {
        authorizationUrl: `${issuer}/auth`,
        tokenUrl: `${issuer}/token`,
        scopes: { [ADMIN_READ]: 'read everything the admin API shows', [ADMIN_WRITE]: 'change partners, APIs, people, grants and keys' },
      },
    },
  });
  for (const operation of operations) {
    const mediaType = operation.body && {
      content: { 'application/json': { schema: operation.body } },
      required: !operation.body.safeParse(undefined).success,
    };
    const ifMatch = operation.ifMatch
      ? [
          {
            name: 'If-Match',
            in: 'header' as const,
            required: true,
            description: 'the ETag of the GET this change is based on',
            schema: { type: 'string' as const },
          },
        ]
      : [];
    registry.registerPath({
      method: operation.method,
      path: operation.path,
      operationId: operation.operationId,
      summary: operation.summary,
      ...(operation.description ? { description: operation.description } : {}),
      tags: [operation.tag],
      security: [{ [SCHEME]: [operation.scope] }],
      ...(ifMatch.length ? { parameters: ifMatch } : {}),
      request: {
        ...(operation.params ? { params: operation.params } : {}),
        ...(operation.query ? { query: operation.query } : {}),
        ...(mediaType ? { body: mediaType } : {}),
      },
      responses: {
        [operation.creates ? 201 : 200]: {
          description: operation.creates ? 'created' : 'done',
          ...(operation.ifMatch || operation.method === 'get'
            ? { headers: { ETag: { description: 'the version of a single thing (If-Match of its updates)', schema: { type: 'string' } } } }
            : {}),
          content: { 'application/json': { schema: operation.response } },
        },
        400: problem('invalid input (the problem names each field)'),
        401: problem('no valid access token for the admin API'),
        403: problem(`the token lacks ${operation.scope}, or its person is not an admin`),
        ...(operation.params ? { 404: problem('no such thing') } : {}),
        ...(operation.ifMatch ? { 412: problem('changed since the ETag given'), 428: problem('If-Match is required') } : {}),
        ...(operation.body ? { 413: problem('body too large'), 415: problem('body not application/json') } : {}),
        503: problem('the database is briefly unavailable (Retry-After)'),
      },
    });
  }
  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'Portcullis admin API',
      version,
      description:
        'Everything the CLI and the admin console do, as JSON. Lists page with an opaque `cursor` (the `next` of the page before) and `limit` (default 50, at most 200). Single things carry an `ETag`; their updates require it in `If-Match`. Errors are RFC 9457 problem details.',
    },
    servers: [{ url: `${issuer}${ADMIN_API_PATH}` }],
  });
}
