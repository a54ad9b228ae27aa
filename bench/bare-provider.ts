/**
 * The baseline: a bare oidc-provider with its built-in in-memory adapter, the same ES256 key,
 * the same client and resource, answering client-credentials requests. Only for benchmarks: the
 * in-memory adapter is a size-capped cache, never fit for real use.
 * Env: PORT, ISSUER, BARE_CONFIG (JSON: { jwk, clientId, clientSecret, resource, scope, ttl }).
 */
import Provider from 'oidc-provider';

const { jwk, clientId, clientSecret, resource, scope, ttl } = JSON.parse(process.env.BARE_CONFIG ?? '{}');
const provider = new Provider(process.env.ISSUER!, {
  jwks: { keys: [jwk] },
  clients: [{ client_id: clientId, client_secret: clientSecret, grant_types: ['client_credentials'], response_types: [], redirect_uris: [] }],
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({ scope, audience: resource, accessTokenTTL: ttl, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } }),
    },
  },
});
provider.listen(Number(process.env.PORT));
