import Provider, { errors, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { Config } from '../config/config.ts';
import type { KeySet } from '../keys/signing-key.service.ts';
import type { ResourceDirectory } from '../resources/resource.service.ts';
import { secretMatches } from '../partners/partner.service.ts';
import { withMtls } from './mtls.ts';
import { renderPage } from '../shared/views.ts';
import { ACR_MFA, ID_TOKEN_TTL } from '../shared/auth-context.ts';
import { cspAllowingFormTarget } from '../shared/content-security-policy.ts';
import { authorizationDetails } from './authorization-details.ts';
import { ERROR_DETAIL } from '../shared/errors.ts';
import { partnerFetch } from './partner-fetch.ts';

export type ProviderDeps = Readonly<{
  config: Config;
  Adapter: NonNullable<Configuration['adapter']>;
  cookieKeys: string[];
  resources: ResourceDirectory;
  /** The `authorization_details` types registered when this Provider is built (RAR: src/oidc/authorization-details.ts). */
  detailsTypes: readonly string[];
  findAccount: NonNullable<Configuration['findAccount']>;
  /** Finds the grant a person already gave a partner (remembered consent). */
  loadExistingGrant: NonNullable<Configuration['loadExistingGrant']>;
  /** Extra middleware (health, headers, routes) to mount on every Provider built. */
  middleware: ReadonlyArray<Parameters<Provider['use']>[0]>;
  /** Called with every provider error event: logging and metrics. */
  onError: (event: string, ctx: KoaContextWithOIDC | undefined, error: Error) => void;
  /**
   * Whether tokens of this partner (and person, for person-bound tokens) may still be honoured:
   * read fresh on every introspection, so a suspension or a disabled account applies at once.
   * An undefined argument is not checked.
   */
  tokenOwnerActive: (clientId: string | undefined, accountId: string | undefined) => Promise<boolean>;
  /** Called after every successful token endpoint response (metrics). */
  onTokenIssued?: (grantType: string, clientId: string) => void;
  /**
   * The replay cache of client assertions and DPoP proofs, shared by every instance: true the
   * first time `id` is seen while it lives (src/oidc/payload.store.ts createReplayGuard).
   */
  firstUse: (id: string, expiresInSeconds: number) => Promise<boolean>;
  /** 32 bytes, the same on every instance: DPoP nonces are derived from it (not stored). */
  dpopNonceSecret: Buffer;
}>;

const ES256 = ['ES256'] as const;
/** What partners sign with: client assertions, request objects, DPoP proofs (our own signatures stay ES256). */
const PARTNER_ALGS = ['ES256', 'PS256'] as const;
/** A client assertion may live at most this long (exp − iat, and exp − now): a stolen one is soon useless. */
const CLIENT_ASSERTION_MAX_SECONDS = 300;
/** A request object may live at most this long (exp − nbf): FAPI 2.0 Message Signing. */
const REQUEST_OBJECT_MAX_SECONDS = 3600;
/** RFC 9701's media type: an introspector asks for a signed answer with it in `Accept`. */
const SIGNED_INTROSPECTION = 'application/token-introspection+jwt';
/** The largest key set fetched from a partner's jwks_uri. */
const JWKS_URI_MAX_BYTES = 64 * 1024;
const OIDC_SCOPES = new Set(['openid', 'offline_access']);

const REFRESH_TOKEN_TTL = 14 * 24 * 3600;
const LEGACY_USERINFO_PATH = '/me';

/** The partner's allow-list for one API (client metadata `partner_scopes`: API URI → scopes). */
function partnerScopes(client: { metadata(): Record<string, unknown> }, uri: string): Set<string> {
  const allowed = (client.metadata().partner_scopes ?? {}) as Record<string, unknown>;
  const scopes = Object.hasOwn(allowed, uri) ? allowed[uri] : [];
  return new Set(Array.isArray(scopes) ? scopes.map(String) : []);
}

/** A request parameter as text: oidc-provider's parameters are strings when present. */
const textOf = (value: unknown): string => (typeof value === 'string' ? value : '');

/**
 * The parts of the logout form oidc-provider hands `logoutSource` as markup (where it posts, our
 * own URL, and its random xsrf token, both unescaped): the template builds the form from them.
 */
function logoutForm(html: string): { action: string; xsrf: string } {
  const match =
    /^<form id="op\.logoutForm" method="post" action="([^"]*)"><input type="hidden" name="xsrf" value="([^"]*)"\/><\/form>$/.exec(html);
  if (!match) throw new Error('oidc-provider changed its logout form');
  return { action: match[1], xsrf: match[2] };
}

const apiScopes = (text: unknown) =>
  textOf(text)
    .split(' ')
    .filter((scope) => scope && !OIDC_SCOPES.has(scope));

/**
 * The API scopes an access token for `indicator` would carry, computed as oidc-provider will:
 * at the authorization endpoint from the request, at the token endpoint from the code's or
 * refresh token's grant. `offered` is what the API defines and the partner is allowed.
 */
function scopesToIssue(ctx: KoaContextWithOIDC, indicator: string, offered: readonly string[]): string[] {
  const params = ctx.oidc.params ?? {};
  const grantType = params.grant_type;
  if (grantType === 'client_credentials') {
    const requested = apiScopes(params.scope);
    const refused = requested.filter((scope) => !offered.includes(scope));
    if (refused.length) throw new errors.InvalidScope('requested scope is not allowed for this client and resource', refused.join(' '));
    return requested;
  }
  if (grantType === 'authorization_code' || grantType === 'refresh_token') {
    const { Grant: grant, AuthorizationCode: code, RefreshToken: refreshToken } = ctx.oidc.entities;
    const source = grantType === 'authorization_code' ? code : refreshToken;
    if (!grant || !source) return [];
    const requested = params.scope ? [...ctx.oidc.requestParamScopes] : [...source.scopes];
    return apiScopes(
      grant.getResourceScopeFiltered(
        indicator,
        requested.filter((scope) => offered.includes(scope)),
      ),
    );
  }
  return apiScopes(params.scope).filter((scope) => offered.includes(scope));
}

/**
 * The one place a Provider is made, fully dressed: start-up and every key swap call it, so
 * nothing attached to one instance can be missing from the next.
 */
export function buildProvider(deps: ProviderDeps, keySet: KeySet): Provider {
  const { config, resources } = deps;
  const secure = config.issuer.startsWith('https:');
  // A signed token must expire before its key leaves the JWKS (KEY_RETAIN after retirement).
  const signedLifetime = (seconds: number) => Math.min(seconds, config.keys.retainSeconds);

  /** The API of the token's audience whose introspector (`resource create --introspector`) is `clientId`, if any. */
  async function introspectedApi(clientId: string, token: { aud?: string | string[] }) {
    for (const audience of [token.aud ?? []].flat()) {
      const resource = await resources.find(audience);
      if (resource?.introspector === clientId) return resource;
    }
    return undefined;
  }

  const richAuthorizationRequests = authorizationDetails(resources, deps.detailsTypes);
  const configuration: Configuration = {
    adapter: deps.Adapter,
    jwks: { keys: keySet.keys.map((key) => ({ ...key })) },
    findAccount: deps.findAccount,
    cookies: {
      keys: deps.cookieKeys,
      long: { signed: true, httpOnly: true, sameSite: 'lax', secure },
      short: { signed: true, httpOnly: true, sameSite: 'lax', secure },
    },
    clientDefaults: {
      grant_types: ['client_credentials'],
      response_types: [],
      id_token_signed_response_alg: 'ES256',
      // JARM and RFC 9701 answers, when asked for (oidc-provider's default, RS256, would invalidate every client)
      authorization_signed_response_alg: 'ES256',
      introspection_signed_response_alg: 'ES256',
      token_endpoint_auth_method: 'client_secret_basic',
      // every known type: which a partner may use is its allow-list's (src/oidc/authorization-details.ts)
      authorization_details_types: Object.keys(richAuthorizationRequests.types),
    },
    // partner_scopes: the allow-list; partner_profile: baseline | fapi2 (features.fapi below)
    extraClientMetadata: { properties: ['partner_scopes', 'partner_profile'] },
    loadExistingGrant: deps.loadExistingGrant,
    // Every login is password + second factor: one acr, and amr/acr/auth_time in every ID token.
    acrValues: [ACR_MFA],
    claims: { openid: ['sub', 'acr', 'amr', 'auth_time'] },
    // Refresh tokens go to every partner allowed the refresh_token grant (authorization_code
    // partners are), without offline_access: oidc-provider drops offline_access unless
    // prompt=consent, which would defeat remembered consent. Each use rotates the token; a
    // used one presented again revokes the whole grant (the adapter's consume marks it).
    rotateRefreshToken: true,
    issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    clientBasedCORS: () => false,
    // Logout ends the browser session and revokes what was issued in it (refresh tokens, opaque
    // access tokens, unused codes), as Keycloak does for online sessions; the consent the person
    // gave (the Grant) survives, as in Keycloak and Hydra: no consent page at the next login.
    // Revoking a refresh token with /token/revocation still ends its grant (oidc-provider's default).
    revokeGrantPolicy(ctx) {
      if (ctx.oidc.route.startsWith('end_session')) return false;
      return !(ctx.oidc.route === 'revocation' && ctx.oidc.entities.AccessToken);
    },
    enabledJWA: {
      authorizationSigningAlgValues: ES256,
      clientAuthSigningAlgValues: PARTNER_ALGS,
      dPoPSigningAlgValues: PARTNER_ALGS,
      idTokenSigningAlgValues: ES256,
      introspectionSigningAlgValues: ES256,
      requestObjectSigningAlgValues: PARTNER_ALGS,
      userinfoSigningAlgValues: ES256,
    },
    responseTypes: ['code'],
    // What is tested and documented, and no more (docs/partner-guide.md, test/integration/discovery.test.ts):
    // secrets in the header or the body, public clients with PKCE, and the partner's own keys.
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'none', 'private_key_jwt'],
    // A client assertion is addressed to this issuer alone (not an endpoint URL: RFC 7523bis), and lives
    // at most CLIENT_ASSERTION_MAX_SECONDS; its jti is remembered until it expires (firstUse below).
    assertJwtClientAuthClaimsAndHeader(_ctx, claims) {
      if (claims.aud !== config.issuer && !(Array.isArray(claims.aud) && claims.aud.length === 1 && claims.aud[0] === config.issuer))
        throw new errors.InvalidClientAuth('the client assertion’s aud must be the issuer identifier');
      const now = Math.floor(Date.now() / 1000);
      const exp = Number(claims.exp);
      const iat = typeof claims.iat === 'number' ? claims.iat : now;
      if (exp - Math.min(iat, now) > CLIENT_ASSERTION_MAX_SECONDS)
        throw new errors.InvalidClientAuth(
          `the client assertion may live at most ${String(CLIENT_ASSERTION_MAX_SECONDS)} seconds (exp − iat)`,
        );
    },
    // a partner's jwks_uri: at most 64 KiB, kept at most 5 minutes (src/oidc/partner-fetch.ts)
    fetchResponseBodyLimits: { jwks_uri: JWKS_URI_MAX_BYTES },
    fetch: (url, options) => partnerFetch(url, options ?? {}),
    // OIDC scopes only: API scopes are the resources' (discovery lists them: src/oidc/discovery.middleware.ts)
    scopes: [...OIDC_SCOPES],
    // the usual path (Keycloak, Hydra, Auth0…); `/me`, this server's first path for it, still answers (app.ts)
    routes: { userinfo: '/userinfo' },
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      richAuthorizationRequests,
      // DPoP (RFC 9449): any partner may bind its tokens; a partner registered with
      // `--token-binding dpop` (every fapi2 partner with private_key_jwt) must. Every proof
      // carries a server nonce (derived, the same on every instance; a client retries once on
      // use_dpop_nonce) and its jti is remembered while the proof could be accepted.
      dPoP: { enabled: true, nonceSecret: deps.dpopNonceSecret, requireNonce: () => true, allowReplay: false },
      // PAR (RFC 9126): open to every partner, required of fapi2 partners (their metadata says so)
      pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: false, allowUnregisteredRedirectUris: false },
      // the FAPI 2.0 Security Profile for partners created or set `--profile fapi2`
      // (oidc-provider may ask before a client is known: no client, no profile)
      fapi: {
        enabled: true,
        profile: (_ctx, client) =>
          (client as { metadata(): Record<string, unknown> } | undefined)?.metadata().partner_profile === 'fapi2' ? '2.0' : undefined,
      },
      // FAPI 2.0 Message Signing. Request objects (JAR, RFC 9101) signed PS256/ES256 with the partner's
      // registered keys, `aud` the issuer, `iss` its client_id: optional for every partner with keys,
      // required of partners registered `--message-signing` (their metadata says so, and requires PAR).
      requestObjects: {
        enabled: true,
        requireSignedRequestObject: false,
        // Every request object, whatever the partner's profile (oidc-provider's default checks only fapi2
        // ones): exp, nbf and aud present, exp at most 60 minutes after nbf. oidc-provider checks aud (the
        // issuer), iss (the client), exp (not passed) and nbf (not ahead), so nbf is at most 60 minutes old
        // too, as FAPI 2.0 Message Signing asks. (The unsigned one it makes of a plain pushed request passes.)
        assertJwtClaimsAndHeader(_ctx, claims) {
          for (const claim of ['exp', 'nbf', 'aud'])
            if (!Object.hasOwn(claims, claim)) throw new errors.InvalidRequestObject(`the request object has no '${claim}' claim`);
          const lifetime = Number(claims.exp) - Number(claims.nbf);
          if (!(lifetime > 0 && lifetime <= REQUEST_OBJECT_MAX_SECONDS))
            throw new errors.InvalidRequestObject("the request object's exp must come after nbf, by at most 60 minutes");
        },
      },
      // JARM: response_mode=jwt (query.jwt, fragment.jwt, form_post.jwt), signed ES256 with the current key;
      // optional for every partner, the only response modes of a message-signing one
      jwtResponseModes: { enabled: true },
      // RFC 9701: a signed introspection answer for an introspector asking with Accept
      // SIGNED_INTROSPECTION; required for APIs registered `--signed-introspection` (allowedPolicy below)
      jwtIntrospection: { enabled: true },
      clientCredentials: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource(ctx, form) {
          const target = URL.parse(textOf(ctx.oidc.params?.post_logout_redirect_uri));
          if (target) ctx.set('Content-Security-Policy', cspAllowingFormTarget(target.origin));
          const client = ctx.oidc.client?.clientName;
          ctx.type = 'html';
          ctx.body = renderPage(ctx, 'Sign out', 'logout', { ...logoutForm(form), client });
        },
        postLogoutSuccessSource(ctx) {
          const client = ctx.oidc.client?.clientName;
          ctx.type = 'html';
          ctx.body = renderPage(ctx, 'Signed out', 'logged-out', { client });
        },
      },
      introspection: {
        enabled: true,
        // A confidential partner introspects its own tokens; a resource server's credential (a
        // partner named by `resource create --introspector`) introspects the tokens issued for its
        // API. A public client authenticates with nothing but its client_id: it may not introspect.
        // A token of a suspended partner or of a disabled person is inactive, whoever asks.
        // An API registered `--signed-introspection` gets signed answers only: its introspector asking
        // for plain JSON about its tokens is refused (a stripped Accept header never yields an unsigned answer).
        async allowedPolicy(ctx, client, token) {
          if (client.clientAuthMethod === 'none') return false;
          const own = token.clientId === client.clientId;
          const api = own ? undefined : await introspectedApi(client.clientId, token as { aud?: string | string[] });
          if (!own && !api) return false;
          if (api?.signedIntrospection && ctx.accepts('json', SIGNED_INTROSPECTION) !== SIGNED_INTROSPECTION)
            throw new errors.InvalidRequest(
              `introspection answers about tokens for ${api.uri} are signed: ask with Accept: ${SIGNED_INTROSPECTION}`,
            );
          // an own token's partner was just read (active) by this request's client authentication
          return deps.tokenOwnerActive(own ? undefined : token.clientId, (token as { accountId?: string }).accountId);
        },
      },
      revocation: {
        enabled: true,
        allowedPolicy: (_ctx, client, token) => token.clientId === client.clientId,
      },
      resourceIndicators: {
        enabled: true,
        useGrantedResource: () => true,
        // The default resource applies to client_credentials and to authorization requests that
        // ask for an API scope. An `openid`-only request gets a token for /userinfo, and at the
        // token endpoint the resource granted with the code / refresh token is the one used.
        async defaultResource(ctx) {
          const params = ctx.oidc.params ?? {};
          if (params.grant_type !== 'client_credentials') {
            const requested = textOf(params.scope).split(' ').filter(Boolean);
            if (!params.response_type || requested.every((scope) => OIDC_SCOPES.has(scope))) return undefined;
          }
          const fallback = await resources.findDefault();
          if (!fallback && ctx.oidc.params?.grant_type === 'client_credentials') {
            throw new errors.InvalidTarget('a resource parameter is required: no default resource is configured');
          }
          return fallback?.uri;
        },
        async getResourceServerInfo(ctx, indicator, client) {
          const resource = await resources.find(indicator);
          if (!resource) throw new errors.InvalidTarget('the resource parameter names no registered API');
          const allowed = partnerScopes(client, resource.uri);
          const offered = resource.scopes.filter((scope) => allowed.has(scope));
          // never a token with this audience and no scope (an API checking only `aud` would take it)
          if (scopesToIssue(ctx, resource.uri, offered).length === 0) {
            const reason = offered.length
              ? `no scope of ${resource.uri} was requested and granted`
              : `this client is allowed no scope of ${resource.uri}`;
            // the error names the scope asked for, if any (as oidc-provider's own invalid_scope does)
            throw Object.assign(new errors.InvalidScope(reason, ''), { scope: ctx.oidc.params?.scope || undefined });
          }
          return {
            scope: offered.join(' '),
            audience: resource.uri,
            accessTokenTTL: resource.accessTokenTtl,
            // opaque tokens are stored (hashed): introspectable and revocable at every instance
            accessTokenFormat: resource.tokenFormat,
            jwt: { sign: { alg: 'ES256', kid: keySet.signingKid } },
          };
        },
      },
    },
    ttl: {
      AccessToken: (_ctx, token) => signedLifetime(token.resourceServer?.accessTokenTTL ?? 600),
      ClientCredentials: (_ctx, token) => signedLifetime(token.resourceServer?.accessTokenTTL ?? 600),
      AuthorizationCode: 60,
      IdToken: signedLifetime(ID_TOKEN_TTL),
      // A rotated refresh token of a public client (no secret: an app on a phone or in a
      // browser) keeps the lifetime left on the one it replaces, as oidc-provider's default
      // does for browser apps: a stolen one cannot be kept alive for ever by using it.
      // (no ctx when a token is saved outside a request: oidc-provider reads it from its AsyncLocalStorage)
      RefreshToken: (ctx: KoaContextWithOIDC | undefined, _token, client) => {
        const rotated = ctx?.oidc.entities.RotatedRefreshToken;
        if (rotated && client.clientAuthMethod === 'none') return Math.max(1, rotated.remainingTTL);
        return REFRESH_TOKEN_TTL;
      },
      Interaction: 600,
      Session: 24 * 3600,
      Grant: 14 * 24 * 3600,
      DeviceCode: 600,
      BackchannelAuthenticationRequest: 600,
    },
    renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = renderPage(ctx, 'Something went wrong', 'error', {
        message: out.error_description ?? 'The request could not be completed.',
        code: out.error,
      });
    },
  };

  const provider = new Provider(config.issuer, withMtls(configuration, config.tls, config.trustProxy));
  provider.proxy = config.trustProxy;

  // The replay cache as one atomic statement (oidc-provider's finds, then saves), keyed as the
  // library keys it: issuer and jti (the store keeps their SHA-256).
  Object.defineProperty(provider.ReplayDetection, 'unique', {
    value: async (iss: string, jti: string, exp: number) => deps.firstUse(`${iss}${jti}`, exp - Math.floor(Date.now() / 1000)),
  });

  // Partner secrets are stored hashed: compare the hash of what was presented.
  provider.Client.prototype.compareClientSecret = function compareClientSecret(this: { clientSecret?: string }, actual: string) {
    return typeof this.clientSecret === 'string' && secretMatches(actual, this.clientSecret);
  };

  // the reason oidc-provider withholds from a refused partner, for oauthErrorText to tell it
  for (const event of ['grant.error', 'pushed_authorization_request.error', 'introspection.error', 'revocation.error'] as const) {
    (provider as unknown as NodeJS.EventEmitter).on(event, (ctx: KoaContextWithOIDC, error: Error & { error_detail?: unknown }) => {
      if (typeof error.error_detail === 'string') (ctx.state as Record<symbol, unknown>)[ERROR_DETAIL] = error.error_detail;
    });
  }
  for (const event of [
    'server_error',
    'grant.error',
    'introspection.error',
    'revocation.error',
    'jwks.error',
    'discovery.error',
  ] as const) {
    (provider as unknown as NodeJS.EventEmitter).on(event, (ctx: KoaContextWithOIDC, error: Error) => deps.onError(event, ctx, error));
  }
  if (deps.onTokenIssued) {
    const onTokenIssued = deps.onTokenIssued;
    (provider as unknown as NodeJS.EventEmitter).on('grant.success', (ctx: KoaContextWithOIDC) => {
      onTokenIssued(textOf(ctx.oidc.params?.grant_type) || 'unknown', ctx.oidc.client?.clientId ?? 'unknown');
    });
  }
  for (const middleware of deps.middleware) provider.use(middleware);
  // `/me` was this server's userinfo path before `/userinfo`: partners that wrote it down keep working
  provider.use(async (ctx, next) => {
    if (ctx.path === LEGACY_USERINFO_PATH) ctx.path = '/userinfo';
    await next();
  });
  return provider;
}
