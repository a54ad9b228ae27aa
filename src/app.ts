import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { findActiveUser } from './accounts/user.service.ts';
import type { Config } from './config/config.ts';
import { workerMetricsRenderer } from './cluster/cluster-metrics.ipc.ts';
import { isUnavailableAnswer, RETRY_AFTER_SECONDS, watchAvailability } from './db/availability.ts';
import { adminApiRoutes } from './admin/admin-api.routes.ts';
import type { ChangeFeed } from './db/change-feed.ts';
import { ping, poolUse, type Db } from './db/knex.ts';
import { healthRoutes } from './http/health.routes.ts';
import { homeRoutes } from './http/home.routes.ts';
import { oauthErrorText } from './http/oauth-error-text.ts';
import { pageAssets } from './http/page-assets.routes.ts';
import { answerOutages } from './http/outage.middleware.ts';
import { createMetrics } from './http/metrics.registry.ts';
import { metricsRoute } from './http/metrics.routes.ts';
import { requestIdOf, requestLog } from './http/request-log.middleware.ts';
import { clientAddress } from './limits/source-address.ts';
import { appendAudit } from './audit/audit.service.ts';
import { secureTransport } from './http/secure-transport.middleware.ts';
import { securityHeaders } from './http/security-headers.ts';
import { createBrowserBinding } from './interactions/browser.binding.ts';
import { createGrantLoader } from './interactions/consent.service.ts';
import { loginRoutes } from './interactions/login.routes.ts';
import { jwksCacheControl } from './keys/jwks-cache.middleware.ts';
import { deriveKey, deriveKeys, type Keyring } from './keys/kek.ts';
import { attemptThrottles, endpointThrottles } from './limits/throttle.middleware.ts';
import { createLimits } from './limits/throttle.service.ts';
import { loadKeySet, rotationPolicy, type KeySet } from './keys/signing-key.service.ts';
import type { Logger } from './log/logger.ts';
import { safeError } from './log/safe-error.ts';
import { createViews } from './shared/views.ts';
import { discoveryDetailsTypes, discoveryScopes } from './oidc/discovery.middleware.ts';
import { jwtTokenTypeGuard } from './oidc/jwt-token-type.ts';
import { mtlsEndpointAliases } from './oidc/mtls.ts';
import { createAdapterClass, createReplayGuard } from './oidc/payload.store.ts';
import { buildProvider } from './oidc/provider.factory.ts';
import { createProviderHolder } from './oidc/provider.holder.ts';
import { outageAware, outageAwareAdapter } from './oidc/temporarily-unavailable.ts';
import { createClientDirectory } from './partners/partner.service.ts';
import { adminApiUri, createResourceDirectory } from './resources/resource.service.ts';
import { accountPages } from './account/account.routes.ts';
import { adminConsole } from './admin/console.routes.ts';
import { CONSOLE_CLIENT_ID, consoleClientMetadata, consoleSignIn, withConsoleGrant } from './http/console-session.ts';

export type AppDeps = Readonly<{
  config: Config;
  db: Db;
  log: Logger;
  keyring: Keyring;
  /** oidc-provider cookie-signing keys, shared by every instance (src/keys/cookie-key.service.ts). */
  cookieKeys: string[];
  now?: () => number;
  /** A node:cluster worker: /metrics then answers for every worker on the machine. */
  clusterWorker?: boolean;
  /** The `authorization_details` types registered at start (src/oidc/authorization-details.ts). */
  detailsTypes?: readonly string[];
  /** Tells when partners, APIs and stored tokens change, so they can be kept in memory (src/db/change-feed.ts). */
  changes: ChangeFeed;
}>;

/**
 * Wires the pieces: adapter, resource directory, the middleware every Provider carries, and
 * the holder that lets a new Provider (new keys) take over without a restart.
 */
export function createApp(deps: AppDeps, initialKeys: KeySet) {
  const { config, db, log } = deps;
  let keySet = initialKeys;
  let cookieKeys = deps.cookieKeys;
  let detailsTypes = deps.detailsTypes ?? [];

  const secure = config.issuer.startsWith('https:');
  // what touches the database answers 503 + Retry-After while it is away, never 500
  const availability = watchAvailability(db, log);
  const accounts = { db, keyring: deps.keyring, now: deps.now ?? Date.now, totpIssuer: config.brand.name };
  const metrics = createMetrics({
    signingKeyAgeSeconds: () => Math.max(0, (Date.now() - keySet.signingSince) / 1000),
    pool: () => poolUse(db),
  });
  const metricsEndpoint = metricsRoute({
    token: config.metricsToken,
    contentType: metrics.registry.contentType,
    render: deps.clusterWorker ? workerMetricsRenderer(metrics.registry) : () => metrics.registry.metrics(),
  });
  const logRequests = requestLog(log, metrics);
  const pages = pageAssets(createViews(config.brand));
  const limits = createLimits({ db, config: config.limits, usernameSecret: deriveKey(deps.keyring, 'rate limit usernames') });
  metrics.watchQueue('password', limits.passwordQueue);
  const throttleOptions = { trustProxy: config.trustProxy, onRefused: metrics.throttled };
  const login = loginRoutes({
    accounts,
    log,
    metrics: metrics.login,
    binding: createBrowserBinding({ keys: deriveKeys(deps.keyring, 'login form binding'), secure }),
    attempts: attemptThrottles(limits, throttleOptions),
    trustProxy: config.trustProxy,
  });
  const throttleEndpoints = endpointThrottles(limits, throttleOptions);
  const now = deps.now ?? Date.now;
  const adminApi = adminApiRoutes({
    token: {
      provider: () => holder.current(),
      audience: adminApiUri(config.issuer),
      partnerActive: (clientId) => partners.isActive(clientId),
      personIsAdmin: async (accountId) => (await findActiveUser(db, accountId))?.isAdmin === true,
    },
    operations: { db, keyring: deps.keyring, accounts, policy: rotationPolicy(config.keys), defaultProfile: config.defaultProfile, now },
    issuer: config.issuer,
    version: '1',
    trustProxy: config.trustProxy,
    log,
    unavailable: (error) => isUnavailableAnswer(error) || availability.failed(error),
    retryAfterSeconds: RETRY_AFTER_SECONDS,
  });
  const loadExistingGrant = outageAware(availability, withConsoleGrant(createGrantLoader(db)));
  const findAccount = outageAware(availability, async (_ctx: unknown, id: string) => {
    const user = await findActiveUser(db, id);
    return user ? { accountId: user.id, claims: () => ({ sub: user.id }) } : undefined;
  });
  const directory = createResourceDirectory(db, deps.changes, deps.now);
  const partners = createClientDirectory(db, deps.changes, deps.now);
  // the consoles' own client (src/http/console-session.ts) is built in, every other client is a partner
  const consoleClient = consoleClientMetadata(config.issuer, config.brand.name);
  const findClient = (clientId: string) =>
    clientId === CONSOLE_CLIENT_ID ? Promise.resolve({ ...consoleClient }) : partners.metadata(clientId);
  const clientActive = (clientId: string) => (clientId === CONSOLE_CLIENT_ID ? Promise.resolve(true) : partners.isActive(clientId));
  const signInDeps = {
    issuer: config.issuer,
    sessionTtlSeconds: config.consoles.sessionTtlSeconds,
    adminAuthMaxAgeSeconds: config.consoles.adminAuthMaxAgeSeconds,
    keys: deriveKeys(deps.keyring, 'console sessions'),
    secure,
    trustProxy: config.trustProxy,
    log,
    findActiveUser: (id: string) => findActiveUser(db, id),
    // the code is redeemed at this server's own token endpoint: whichever Provider serves now
    dispatch: (req: IncomingMessage, res: ServerResponse) => {
      holder.handle(req, res);
    },
    now: deps.now,
  };
  const consoles = [
    adminConsole({
      signIn: consoleSignIn('/admin', signInDeps),
      accounts,
      db,
      keyring: deps.keyring,
      policy: rotationPolicy(config.keys),
      defaultProfile: config.defaultProfile,
      issuer: config.issuer,
      lastHour: metrics.lastHour,
      // a key rotated or revoked in the console: this instance serves it now, not at its next poll
      keysChanged: async () => {
        const next = await loadKeySet(db, deps.keyring);
        if (next.version !== keySet.version) useKeys(next);
      },
      revealKeys: deriveKeys(deps.keyring, 'console one-time secrets'),
    }),
    accountPages({ signIn: consoleSignIn('/account', signInDeps), accounts, attempts: attemptThrottles(limits, throttleOptions), log }),
  ];
  const resources = {
    find: outageAware(availability, directory.find),
    findDefault: outageAware(availability, directory.findDefault),
    scopes: outageAware(availability, directory.scopes),
    detailsType: outageAware(availability, directory.detailsType),
    detailsTypeNames: outageAware(availability, directory.detailsTypeNames),
  };

  const Adapter = outageAwareAdapter(availability, createAdapterClass(db, findClient, undefined, deps.changes));

  const readiness = async () => {
    const checks: Record<string, string> = {};
    try {
      await ping(db);
      checks.database = 'ok';
    } catch (error) {
      checks.database = `unavailable (${safeError(error).message})`;
      log.warn('readiness: database unavailable', { err: error });
    }
    checks.signing_key = keySet.signingKid ? `ok (${keySet.signingKid})` : 'missing';
    return { ok: checks.database === 'ok' && Boolean(keySet.signingKid), checks };
  };

  const build = (keys: KeySet): Provider =>
    buildProvider(
      {
        config,
        Adapter,
        cookieKeys,
        resources,
        detailsTypes,
        findAccount,
        loadExistingGrant,
        firstUse: outageAware(availability, createReplayGuard(db)),
        dpopNonceSecret: Buffer.from(deriveKey(deps.keyring, 'dpop nonces'), 'base64url'),
        middleware: [
          logRequests,
          pages,
          answerOutages(availability),
          metricsEndpoint,
          securityHeaders({ https: secure }),
          healthRoutes(readiness),
          homeRoutes({ issuer: config.issuer }),
          secureTransport({ issuer: config.issuer, trustProxy: config.trustProxy }),
          throttleEndpoints,
          jwksCacheControl('/jwks', config.keys.jwksMaxAgeSeconds),
          oauthErrorText(),
          discoveryScopes(() => resources.scopes()),
          discoveryDetailsTypes(() => resources.detailsTypeNames()),
          mtlsEndpointAliases(config.tls, config.trustProxy),
          jwtTokenTypeGuard({ introspection: '/token/introspection', revocation: '/token/revocation' }),
          login,
          adminApi,
          ...consoles,
        ],
        onError(event, ctx: KoaContextWithOIDC | undefined, error) {
          const fields = { event, path: ctx?.path, client_id: ctx?.oidc.client?.clientId, request_id: ctx && requestIdOf(ctx) };
          // a refusal is the client's doing (its message is enough); a server error gets the stack
          if (event === 'server_error') log.error('provider error', { ...fields, err: error });
          else log.info('request refused', { ...fields, error: safeError(error).message });
          if (event === 'grant.error' && ctx) recordReuse(ctx, error);
        },
        onTokenIssued: metrics.tokenIssued,
        tokenOwnerActive: outageAware(availability, async (clientId: string | undefined, accountId: string | undefined) => {
          const [partner, person] = await Promise.all([
            clientId === undefined || clientActive(clientId),
            accountId === undefined || findActiveUser(db, accountId),
          ]);
          return partner && Boolean(person);
        }),
      },
      keys,
    );

  /**
   * A used refresh token (or code) presented again: oidc-provider (or the adapter's consume, for
   * one that lost a race) revoked its grant and answers invalid_grant "… already used". The audit
   * log gets a `token.reuse` row, with the grant id (never the token). This is on the refusal
   * path only; an append that fails is logged as an error (the refusal and revocation stand).
   */
  const recordReuse = (ctx: KoaContextWithOIDC, error: Error & { error_detail?: unknown }) => {
    const detail = typeof error.error_detail === 'string' ? error.error_detail : '';
    if (!/^(refresh token|authorization code) already used$/.test(detail)) return;
    const { RefreshToken: refreshToken, AuthorizationCode: code } = ctx.oidc.entities;
    const clientId = ctx.oidc.client?.clientId;
    const by = {
      actor: clientId ? ({ type: 'partner', id: clientId } as const) : ({ type: 'anonymous' } as const),
      sourceIp: clientAddress(ctx, config.trustProxy),
      requestId: requestIdOf(ctx),
    };
    const grantId = (refreshToken ?? code)?.grantId ?? null;
    const details = { token: detail.replace(/ already used$/, ''), account_id: (refreshToken ?? code)?.accountId, grant_revoked: true };
    appendAudit(db, by, { action: 'token.reuse', target: grantId, details }).catch((failure: unknown) => {
      log.error('audit log: a token reuse was not recorded', { request_id: by.requestId, client_id: clientId, err: failure });
    });
  };

  const holder = createProviderHolder(build(keySet));
  function useKeys(next: KeySet): void {
    holder.swap(build(next));
    keySet = next;
  }

  return {
    holder,
    metrics,
    get keySet(): KeySet {
      return keySet;
    },
    get cookieKeys(): readonly string[] {
      return cookieKeys;
    },
    /** Builds a Provider with these keys and swaps it in. */
    useKeys,
    /** Builds a Provider that signs cookies with these keys (first signs, all verify) and swaps it in. */
    useCookieKeys(next: string[]): void {
      cookieKeys = next;
      holder.swap(build(keySet));
    },
    get detailsTypes(): readonly string[] {
      return detailsTypes;
    },
    /** Builds a Provider that knows these `authorization_details` type names and swaps it in. */
    useDetailsTypes(next: string[]): void {
      detailsTypes = next;
      holder.swap(build(keySet));
    },
  };
}

export type App = ReturnType<typeof createApp>;
