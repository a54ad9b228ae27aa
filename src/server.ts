import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { createApp, type App } from './app.ts';
import type { Config } from './config/config.ts';
import type { Db } from './db/knex.ts';
import { startChangeFeed, type ChangeFeed } from './db/change-feed.ts';
import { startPurgeJob } from './db/purge.job.ts';
import { watchCookieKeys } from './keys/cookie-key.job.ts';
import { startKeyRotationJob } from './keys/key-rotation.job.ts';
import { watchDetailsTypes } from './resources/details-type.job.ts';
import { listDetailsTypeNames } from './resources/resource.service.ts';
import { purgeEndedWindows } from './limits/rate-limit.store.ts';
import { PLAIN_HTTP_WARNING } from './http/secure-transport.middleware.ts';
import type { Logger } from './log/logger.ts';
import { purgeExpired } from './oidc/payload.store.ts';
import { listResources } from './resources/resource.store.ts';
import { ID_TOKEN_TTL } from './shared/auth-context.ts';
import { prepareStorage, type Created } from './storage.ts';

/** KEY_RETAIN caps token lifetimes (see config): say so when that shortens a configured one. Returns how many APIs exist (not counting the built-in admin API). */
async function warnIfRetainCapsTokens(db: Db, config: Config, log: Logger): Promise<number> {
  const resources = await listResources(db);
  const lifetimes = [ID_TOKEN_TTL, ...resources.map((resource) => resource.accessTokenTtl)];
  const longest = Math.max(...lifetimes);
  if (longest > config.keys.retainSeconds) {
    log.warn('KEY_RETAIN is shorter than the longest token lifetime: tokens are capped to it', {
      key_retain_seconds: config.keys.retainSeconds,
      longest_lifetime_seconds: longest,
    });
  }
  return resources.filter((resource) => !resource.builtIn).length;
}

/** What start-up did, for the person who started it (see `reportStartup`). */
export type StartupReport = Readonly<{ issuer: string; created: Created; apisRegistered: boolean }>;

const NEXT_COMMANDS = [
  'npx portcullis resource create --uri https://api.example.com/payments --scope "payments:read payments:write" --default',
  'npx portcullis partner create --name "Acme Bank" --scope "payments:read"',
];
const KEK_ADVICE = 'back it up apart from the database: without it the signing keys cannot be read';

/** The block a person at a terminal reads: what was made, where to go, what to run next. */
function startupText(report: StartupReport): string {
  const { created } = report;
  const lines = [`Portcullis is running at ${report.issuer}`];
  if (created.database) lines.push(`  database created: ${created.database}`);
  if (created.kek) lines.push(`  key-encryption key created: ${created.kek} (${KEK_ADVICE})`);
  if (created.signingKid) lines.push(`  signing key created: ${created.signingKid} (ES256, rotates by itself)`);
  lines.push(`  discovery: ${report.issuer}/.well-known/openid-configuration`);
  if (!report.apisRegistered)
    lines.push('Next, in another terminal: register an API and a partner (README, Quick start)', ...NEXT_COMMANDS.map((c) => `  ${c}`));
  return `${lines.join('\n')}\n`;
}

/**
 * Says what start-up made and what to do next: `terminal` (stdout is a TTY) gets the block of
 * `startupText`; otherwise the same facts are JSON log lines (nothing when nothing was made and
 * APIs exist: the `listening` line says the rest).
 */
export function reportStartup(report: StartupReport, out: { log: Logger; terminal?: (text: string) => void }): void {
  if (out.terminal) {
    out.terminal(startupText(report));
    return;
  }
  const { created } = report;
  if (created.database) out.log.info('database created', { database: created.database });
  if (created.kek) out.log.warn(`key-encryption key created: ${KEK_ADVICE}`, { path: created.kek });
  if (created.signingKid) out.log.info('signing key created', { kid: created.signingKid });
  if (!report.apisRegistered) out.log.info('no API registered yet: register one and a partner', { next: NEXT_COMMANDS });
}

export type RunningServer = Readonly<{
  app: App;
  db: Db;
  url: string;
  startup: StartupReport;
  /** Resolves once every change to partners and APIs committed before the call is applied here. */
  settle(): Promise<void>;
  close(): Promise<void>;
}>;

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
  const { db, keyring, policy, keySet, cookieKeys, created } = await prepareStorage(config, log);
  let changes: ChangeFeed | undefined;
  try {
    const apis = await warnIfRetainCapsTokens(db, config, log);
    if (config.issuer.startsWith('https:') && !config.trustProxy && !config.tls.listener)
      log.warn(PLAIN_HTTP_WARNING, { issuer: config.issuer, setting: 'TRUST_PROXY' });
    const detailsTypes = await listDetailsTypeNames(db);
    // before the app: nothing is cached before every change reaches this instance
    changes = await startChangeFeed(db, { databaseUrl: config.databaseUrl, log });
    const app = createApp(
      { config, db, log, keyring, cookieKeys, detailsTypes, clusterWorker: options.clusterWorker, now: options.now, changes },
      keySet,
    );
    const stopPurge = startPurgeJob(
      { count: (now) => purgeExpired(db, now), rate_limit_windows: (now) => purgeEndedWindows(db, now) },
      config.purgeIntervalSeconds,
      log,
    );

    // While draining, every response still to be sent says `Connection: close`: the client
    // learns to reconnect (to another instance) instead of reusing a connection about to go.
    let draining = false;
    const inFlight = new Set<http.ServerResponse>();
    const handle = (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (draining) res.setHeader('Connection', 'close');
      inFlight.add(res);
      res.once('close', () => inFlight.delete(res));
      app.holder.handle(req, res);
    };
    const { listener } = config.tls;
    // Native TLS asks every client for a certificate and requires none (browsers, partners with
    // secrets or private_key_jwt go on without one); what a certificate is worth is decided per
    // request (src/oidc/mtls.ts), never by the handshake. The client CAs are named in the request
    // so that a partner's TLS stack picks the right certificate.
    const server = listener
      ? https.createServer(
          {
            cert: listener.cert.pem,
            key: listener.key,
            ca: config.tls.clientCa?.pem,
            requestCert: true,
            rejectUnauthorized: false,
            minVersion: 'TLSv1.2',
          },
          handle,
        )
      : http.createServer(handle);
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
    const detailsTypeWatch = watchDetailsTypes({
      db,
      pollMs: config.keys.pollIntervalSeconds * 1000,
      log,
      current: () => app.detailsTypes,
      use: (next) => app.useDetailsTypes(next),
    });
    log.notice('listening', {
      port,
      issuer: config.issuer,
      tls: listener ? 'native' : config.tls.clientCertHeader ? 'proxy' : 'none',
      database: config.databaseUrl.startsWith('sqlite:') ? 'sqlite' : 'postgres',
      signing_kid: keySet.signingKid,
    });

    const feed = changes;
    let closing: Promise<void> | undefined;
    return {
      app,
      db,
      url: `${listener ? 'https' : 'http'}://127.0.0.1:${port}`,
      startup: { issuer: config.issuer, created, apisRegistered: apis > 0 },
      settle: () => feed.settle(),
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
          await detailsTypeWatch.stop();
          await feed.stop();
          await db.destroy();
        })();
        return closing;
      },
    };
  } catch (error) {
    await changes?.stop();
    await db.destroy();
    throw error;
  }
}
