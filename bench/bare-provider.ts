/**
 * The baseline: a bare oidc-provider with its built-in in-memory adapter, the same ES256 key,
 * the same client and resource, answering client-credentials requests. Only for benchmarks: the
 * in-memory adapter is a size-capped cache, never fit for real use.
 * Env: PORT, ISSUER, BARE_CONFIG (JSON: { jwk, clientId, clientSecret, resource, scope, ttl,
 * opaqueResource?, opaqueScope? }): tokens for `opaqueResource` are opaque and introspectable.
 */
import Provider from 'oidc-provider';

const { jwk, clientId, clientSecret, resource, scope, ttl, opaqueResource, opaqueScope } = JSON.parse(process.env.BARE_CONFIG ?? '{}');
const provider = new Provider(process.env.ISSUER!, {
  jwks: { keys: [jwk] },
  clients: [
    { client_id: clientId, client_secret: clientSecret, grant_types: ['client_credentials'], response_types: [], redirect_uris: [] },
  ],
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, indicator) =>
        indicator === opaqueResource && opaqueResource
          ? { scope: opaqueScope, audience: opaqueResource, accessTokenTTL: ttl, accessTokenFormat: 'opaque' }
          : { scope, audience: resource, accessTokenTTL: ttl, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } },
    },
    introspection: { enabled: true },
  },
});
provider.listen(Number(process.env.PORT));
