import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp, type App } from './app.ts';
import type { Config } from './config/config.ts';
import type { Db } from './db/knex.ts';
import { startPurgeJob } from './db/purge.job.ts';
import { watchCookieKeys } from './keys/cookie-key.job.ts';
import { startKeyRotationJob } from './keys/key-rotation.job.ts';
import { purgeEndedWindows } from './limits/rate-limit.store.ts';
import { PLAIN_HTTP_WARNING } from './http/secure-transport.middleware.ts';
import type { Logger } from './log/logger.ts';
import { purgeExpired } from './oidc/payload.store.ts';
import { listResources } from './resources/resource.store.ts';
import { ID_TOKEN_TTL } from './shared/auth-context.ts';
import { prepareStorage } from './storage.ts';

/** KEY_RETAIN caps token lifetimes (see config): say so when that shortens a configured one. */
async function warnIfRetainCapsTokens(db: Db, config: Config, log: Logger): Promise<void> {
  const lifetimes = [ID_TOKEN_TTL, ...(await listResources(db)).map((resource) => resource.accessTokenTtl)];
  const longest = Math.max(...lifetimes);
  if (longest > config.keys.retainSeconds) {
    log.warn('KEY_RETAIN is shorter than the longest token lifetime: tokens are capped to it', {
      key_retain_seconds: config.keys.retainSeconds,
      longest_lifetime_seconds: longest,
    });
  }
}

export type RunningServer = Readonly<{ app: App; db: Db; url: string; close(): Promise<void> }>;

/**
 * config → db → migrate → keys → app → listen. `close` stops accepting, lets in-flight requests
 * finish (keep-alive connections are closed once idle), stops the jobs, then closes the pool.
 * `now` is the clock of the app's caches and account rules (a test moves it instead of waiting).
 */
export async function startServer(
  config: Config,
  log: Logger,
  options: { clusterWorker?: boolean; now?: () => number } = {},
): Promise<RunningServer> {
  const { db, keyring, policy, keySet, cookieKeys } = await prepareStorage(config);
  try {
    await warnIfRetainCapsTokens(db, config, log);
    if (config.issuer.startsWith('https:') && !config.trustProxy)
      log.warn(PLAIN_HTTP_WARNING, { issuer: config.issuer, setting: 'TRUST_PROXY' });
    const app = createApp({ config, db, log, keyring, cookieKeys, clusterWorker: options.clusterWorker, now: options.now }, keySet);
    const stopPurge = startPurgeJob(
      { count: (now) => purgeExpired(db, now), rate_limit_windows: (now) => purgeEndedWindows(db, now) },
      config.purgeIntervalSeconds,
      log,
    );

    // While draining, every response still to be sent says `Connection: close`: the client
    // learns to reconnect (to another instance) instead of reusing a connection about to go.
    let draining = false;
    const inFlight = new Set<http.ServerResponse>();
    const server = http.createServer((req, res) => {
      if (draining) res.setHeader('Connection', 'close');
      inFlight.add(res);
      res.once('close', () => inFlight.delete(res));
      app.holder.handle(req, res);
    });
    server.keepAliveTimeout = 5000;
    server.headersTimeout = 10000;
    server.requestTimeout = 30000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const rotation = startKeyRotationJob({
      db,
      keyring,
      policy,
      pollMs: config.keys.pollIntervalSeconds * 1000,
      log,
      current: () => app.keySet,
      use: (next) => app.useKeys(next),
    });
    const cookieKeyWatch = watchCookieKeys({
      db,
      keyring,
      pollMs: config.keys.pollIntervalSeconds * 1000,
      log,
      current: () => app.cookieKeys,
      use: (next) => app.useCookieKeys(next),
    });
    log.info('listening', {
      port,
      issuer: config.issuer,
      database: config.databaseUrl.startsWith('sqlite:') ? 'sqlite' : 'postgres',
      signing_kid: keySet.signingKid,
    });

    let closing: Promise<void> | undefined;
    return {
      app,
      db,
      url: `http://127.0.0.1:${port}`,
      close() {
        closing ??= (async () => {
          draining = true;
          for (const res of inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
          stopPurge();
          await new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeIdleConnections();
            // connections that were busy become idle as their responses end: close them then
            const sweep = setInterval(() => server.closeIdleConnections(), 100);
            server.once('close', () => clearInterval(sweep));
          });
          await rotation.stop();
          await cookieKeyWatch.stop();
          await db.destroy();
        })();
        return closing;
      },
    };
  } catch (error) {
    await db.destroy();
    throw error;
  }
}
