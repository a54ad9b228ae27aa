import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp, type App } from './app.ts';
import type { Config } from './config/config.ts';
import { createDb, type Db } from './db/knex.ts';
import { migrate } from './db/migrate.ts';
import { startPurgeJob } from './db/purge.job.ts';
import { watchCookieKeys } from './keys/cookie-key.job.ts';
import { loadCookieKeys, rewrapSharedSecrets } from './keys/cookie-key.service.ts';
import { rewrapTotpSecrets } from './accounts/user.service.ts';
import { dropOfferedSecretsNotSealedWith } from './interactions/login-state.store.ts';
import { createKeyring, loadKekTexts, type Keyring } from './keys/kek.ts';
import { startKeyRotationJob } from './keys/key-rotation.job.ts';
import { signerAt } from './keys/signing-key.lifecycle.ts';
import { checkKeyring, maintainKeys, rewrapKeys, rotationPolicy, toKeySet, type KeySet } from './keys/signing-key.service.ts';
import { countKeys, listKeys, type SigningKeyRow } from './keys/signing-key.store.ts';
import { ID_TOKEN_TTL } from './oidc/provider.factory.ts';
import { listResources } from './resources/resource.store.ts';
import type { Logger } from './log/logger.ts';

/** Database, migrations and the key-encryption key: what both the server and the CLI need. */
export async function openStorage(config: Config): Promise<{ db: Db; keyring: Keyring }> {
  const db = createDb(config.databaseUrl, config.database);
  try {
    if (config.databaseUrl.startsWith('sqlite:')) {
      await migrate(db);
    } else {
      // migrations (and the wait for another instance's) are exempt from DATABASE_STATEMENT_TIMEOUT
      const migrator = createDb(config.databaseUrl, { poolMax: 2, statementTimeoutMs: 0 });
      try {
        await migrate(migrator);
      } finally {
        await migrator.destroy();
      }
    }
    const sealed = await countKeys(db);
    const { texts } = loadKekTexts({ kekList: config.kekList, keysDir: config.keysDir, mayCreate: sealed === 0 });
    const keyring = createKeyring(texts);
    await upgradeLegacySealing(db, keyring);
    return { db, keyring };
  } catch (error) {
    await db.destroy();
    throw error;
  }
}

/**
 * Values sealed before sealing bound them to their row (format v1) are re-sealed once, by
 * whichever server or command opens the database first after the upgrade; from then on a v1
 * value is refused. Racing instances are safe: each write is a compare-and-swap.
 */
async function upgradeLegacySealing(db: Db, keyring: Keyring): Promise<void> {
  await rewrapKeys(db, keyring, { onlyLegacy: true });
  await rewrapSharedSecrets(db, keyring, { onlyLegacy: true });
  await rewrapTotpSecrets(db, keyring, { onlyLegacy: true });
  await dropOfferedSecretsNotSealedWith(db, 'v2.');
}

/**
 * `keys rewrap`: every sealed value re-sealed under the first KEK (signing keys, shared secrets,
 * TOTP secrets); enrolments under way with a secret sealed otherwise start again.
 */
export async function rewrapAll(db: Db, keyring: Keyring) {
  const keys = await rewrapKeys(db, keyring);
  return {
    ...keys,
    shared_secrets: await rewrapSharedSecrets(db, keyring),
    totp_secrets: await rewrapTotpSecrets(db, keyring),
    enrolments_restarted: await dropOfferedSecretsNotSealedWith(db, `v2.${keyring.keks[0].id}.`),
  };
}

/** KEY_RETAIN caps token lifetimes (see config): say so when that shortens a configured one. */
async function warnIfRetainCapsTokens(db: Db, config: Config, log: Logger): Promise<void> {
  const lifetimes = [ID_TOKEN_TTL, ...(await listResources(db)).map((resource) => resource.accessTokenTtl)];
  const longest = Math.max(...lifetimes);
  if (longest > config.keys.retainSeconds) {
    log.warn('KEY_RETAIN is shorter than the longest token lifetime: tokens are capped to it', { key_retain_seconds: config.keys.retainSeconds, longest_lifetime_seconds: longest });
  }
}

export type RunningServer = Readonly<{ app: App; db: Db; url: string; close(): Promise<void> }>;

/**
 * Everything a serving process needs from storage: migrations, the KEK check, the signing keys
 * (made if due) and the shared cookie keys (made on first start). Idempotent and safe to race:
 * with WORKERS>1 the primary runs it once before forking, then each worker again (a no-op).
 */
/**
 * The key set to start with. Instances starting together race for the first key; the winner
 * stamped it with its own clock, which may be a moment ahead of the instant a loser started
 * at (or, across machines, of its clock): read the rows at the current time, and wait a little
 * for a key that is about to sign rather than fail.
 */
async function currentKeySet(rows: SigningKeyRow[], keyring: Keyring, maxWaitMs = 30_000): Promise<KeySet> {
  const at = Date.now();
  if (signerAt(rows, at)) return toKeySet(rows, keyring, at);
  const soon = rows.filter((row) => row.revoked_at === null && row.activates_at > at && row.activates_at - at <= maxWaitMs);
  if (soon.length === 0) return toKeySet(rows, keyring, at); // says what is wrong
  const activation = Math.min(...soon.map((row) => row.activates_at));
  await new Promise((resolve) => setTimeout(resolve, activation - at + 1));
  return toKeySet(rows, keyring, Date.now());
}

export async function prepareStorage(config: Config) {
  const { db, keyring } = await openStorage(config);
  try {
    // a wrong KEK stops start-up here, before a key could be created under it
    checkKeyring(await listKeys(db), keyring);
    const policy = rotationPolicy(config.keys);
    const startedAt = Date.now();
    const keySet = await currentKeySet(await maintainKeys(db, keyring, policy, startedAt), keyring);
    const cookieKeys = await loadCookieKeys(db, keyring, startedAt);
    return { db, keyring, policy, keySet, cookieKeys };
  } catch (error) {
    await db.destroy();
    throw error;
  }
}

/**
 * config → db → migrate → keys → app → listen. `close` stops accepting, lets in-flight requests
 * finish (keep-alive connections are closed once idle), stops the jobs, then closes the pool.
 * `now` is the clock of the app's caches and account rules (a test moves it instead of waiting).
 */
export async function startServer(config: Config, log: Logger, options: { clusterWorker?: boolean; now?: () => number } = {}): Promise<RunningServer> {
  const { db, keyring, policy, keySet, cookieKeys } = await prepareStorage(config);
  try {
    await warnIfRetainCapsTokens(db, config, log);
    const app = createApp({ config, db, log, keyring, cookieKeys, clusterWorker: options.clusterWorker, now: options.now }, keySet);
    const stopPurge = startPurgeJob(db, config.purgeIntervalSeconds, log);

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
    log.info('listening', { port, issuer: config.issuer, database: config.databaseUrl.startsWith('sqlite:') ? 'sqlite' : 'postgres', signing_kid: keySet.signingKid });

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
