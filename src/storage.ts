import fs from 'node:fs';
import path from 'node:path';
import type { Config } from './config/config.ts';
import { recordChange, type AuditBy } from './audit/audit.service.ts';
import { createDb, type Db } from './db/knex.ts';
import { migrate } from './db/migrate.ts';
import { dropOfferedSecretsNotSealedWith } from './accounts/login-state.store.ts';
import { rewrapTotpSecrets } from './accounts/user.service.ts';
import { loadCookieKeys, rewrapSharedSecrets } from './keys/cookie-key.service.ts';
import { createKeyring, KEK_FILE, loadKekTexts, type Keyring } from './keys/kek.ts';
import { signerAt } from './keys/signing-key.lifecycle.ts';
import { checkKeyring, maintainKeys, rewrapKeys, rotationPolicy, toKeySet, type KeySet } from './keys/signing-key.service.ts';
import { countKeys, listKeys, type SigningKeyRow } from './keys/signing-key.store.ts';
import { createLogger, type Logger } from './log/logger.ts';
import { ensureAdminApi } from './resources/resource.service.ts';

/** Where knex's own warnings go when no logger is given (the CLI): JSON on stderr, stdout stays the command's answer. */
const stderrLog = (): Logger => createLogger('warn', (line) => process.stderr.write(line));

/** What opening storage made for the first time (start-up says so). */
export type Created = { database?: string; kek?: string; signingKid?: string };

/** The SQLite file DATABASE_URL names, when it does not exist yet. */
function newSqliteFile(databaseUrl: string): string | undefined {
  if (!databaseUrl.startsWith('sqlite:')) return undefined;
  const file = databaseUrl.slice('sqlite:'.length);
  return file !== ':memory:' && !fs.existsSync(file) ? path.resolve(file) : undefined;
}

/** Database, migrations and the key-encryption key: what both the server and the CLI need. */
/** `server`: opened by a serving process, whose ISSUER the built-in admin API follows (ensureAdminApi). */
export async function openStorage(
  config: Config,
  log: Logger = stderrLog(),
  options: { server?: boolean } = {},
): Promise<{ db: Db; keyring: Keyring; created: Created }> {
  const newFile = newSqliteFile(config.databaseUrl);
  const db = createDb(config.databaseUrl, { ...config.database, log });
  try {
    if (config.databaseUrl.startsWith('sqlite:')) {
      await migrate(db);
    } else {
      // migrations (and the wait for another instance's) are exempt from DATABASE_STATEMENT_TIMEOUT
      const migrator = createDb(config.databaseUrl, { poolMax: 2, statementTimeoutMs: 0, log });
      try {
        await migrate(migrator);
      } finally {
        await migrator.destroy();
      }
    }
    // the admin API is a built-in API: partners' allow-lists name it (partner create --scope admin:read)
    await ensureAdminApi(db, config.issuer, { move: options.server ?? false });
    const sealed = await countKeys(db);
    const { texts, created } = loadKekTexts({ kekList: config.kekList, keysDir: config.keysDir, mayCreate: sealed === 0 });
    const keyring = createKeyring(texts);
    await upgradeLegacySealing(db, keyring);
    const database = newFile ?? (sealed === 0 && !config.databaseUrl.startsWith('sqlite:') ? 'PostgreSQL (tables made)' : undefined);
    return { db, keyring, created: { database, kek: created ? path.join(config.keysDir, KEK_FILE) : undefined } };
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
export async function rewrapAll(db: Db, keyring: Keyring, by: AuditBy) {
  const keys = await rewrapKeys(db, keyring);
  const result = {
    ...keys,
    shared_secrets: await rewrapSharedSecrets(db, keyring),
    totp_secrets: await rewrapTotpSecrets(db, keyring),
    enrolments_restarted: await dropOfferedSecretsNotSealedWith(db, `v2.${keyring.keks[0].id}.`),
  };
  await recordChange(db, by, { action: 'keys.rewrap', target: keys.kek, details: result });
  return result;
}

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

/**
 * Everything a serving process needs from storage: migrations, the KEK check, the signing keys
 * (made if due) and the shared cookie keys (made on first start). Idempotent and safe to race:
 * with WORKERS>1 the primary runs it once before forking, then each worker again (a no-op).
 */
export async function prepareStorage(config: Config, log?: Logger) {
  const { db, keyring, created } = await openStorage(config, log, { server: true });
  try {
    // a wrong KEK stops start-up here, before a key could be created under it
    const before = await listKeys(db);
    checkKeyring(before, keyring);
    const policy = rotationPolicy(config.keys);
    const startedAt = Date.now();
    const keySet = await currentKeySet(await maintainKeys(db, keyring, policy, startedAt), keyring);
    const cookieKeys = await loadCookieKeys(db, keyring, startedAt);
    if (before.length === 0) created.signingKid = keySet.signingKid;
    return { db, keyring, policy, keySet, cookieKeys, created };
  } catch (error) {
    await db.destroy();
    throw error;
  }
}
