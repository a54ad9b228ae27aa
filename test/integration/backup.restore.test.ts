import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import knex from 'knex';
import { cli, freePort, freshDatabaseUrl, instanceEnv, seedPartner, TEST_PG_URL, tempDir } from '../support/harness.ts';
import { startInProcess, startupRefusal, type InProcessServer } from '../support/in-process.ts';
import { codeFor, createUser, secretOf } from '../support/login.ts';
import { PASSWORD, REDIRECT, registerApp, signInAs, registerService, tokenCall, introspectAs, type App } from '../support/person-flow.ts';
import { requestToken } from '../support/keys.support.ts';

// The backup and restore procedure of docs/operator-guide.md ("Backup and restore"), performed
// as written: the database copied while the server runs (SQLite `VACUUM INTO` with the sqlite3
// command; PostgreSQL `pg_dump`, restored with `psql` into a new database), the KEK copied apart,
// then both put in place in a fresh directory and a new server started there. Everything issued
// before the backup must still hold. SQLite in the SQLite suite, PostgreSQL in the PostgreSQL one.

const ENGINE = TEST_PG_URL ? 'postgres' : 'sqlite';
const REPORTS = 'https://api.bank.test/reports';

type Backup = Readonly<{ database: string; kek: string }>;

/** The documented backup: the database (online) and, apart, the KEK file. */
function backUp(env: Record<string, string>, into: string): Backup {
  fs.mkdirSync(path.join(into, 'database'), { recursive: true });
  fs.mkdirSync(path.join(into, 'kek'), { recursive: true });
  const kek = path.join(into, 'kek', 'kek');
  fs.copyFileSync(path.join(env.KEYS_DIR, 'kek'), kek);
  if (ENGINE === 'sqlite') {
    const database = path.join(into, 'database', 'portcullis.sqlite');
    const live = env.DATABASE_URL.slice('sqlite:'.length);
    execFileSync('sqlite3', [live, `VACUUM INTO '${database}'`]);
    return { database, kek };
  }
  const url = new URL(env.DATABASE_URL);
  const schema = url.searchParams.get('schema')!;
  url.search = '';
  const database = path.join(into, 'database', 'portcullis.sql');
  execFileSync('pg_dump', ['--no-owner', '--no-privileges', `--schema=${schema}`, `--file=${database}`, url.toString()]);
  return { database, kek };
}

/** The documented restore, into `dir` (a fresh machine): returns the environment to start a server with. */
async function restore(
  backup: Backup,
  dir: string,
  like: Record<string, string>,
): Promise<{ env: Record<string, string>; drop(): Promise<void> }> {
  const keysDir = path.join(dir, 'keys');
  fs.mkdirSync(keysDir, { mode: 0o700 });
  fs.copyFileSync(backup.kek, path.join(keysDir, 'kek'));
  fs.chmodSync(path.join(keysDir, 'kek'), 0o600);
  const base = { ...like, KEYS_DIR: keysDir };
  if (ENGINE === 'sqlite') {
    const file = path.join(dir, 'portcullis.sqlite');
    fs.copyFileSync(backup.database, file);
    return { env: { ...base, DATABASE_URL: `sqlite:${file}` }, drop: () => Promise.resolve() };
  }
  // a new, empty database on the server: the "fresh machine"
  const name = `restore_${randomBytes(6).toString('hex')}`;
  const admin = knex({ client: 'pg', connection: TEST_PG_URL });
  await admin.raw(`CREATE DATABASE ${name}`);
  const target = new URL(TEST_PG_URL!);
  target.pathname = `/${name}`;
  execFileSync('psql', ['--quiet', '--no-psqlrc', '-v', 'ON_ERROR_STOP=1', `--file=${backup.database}`, target.toString()], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  target.searchParams.set('schema', new URL(like.DATABASE_URL).searchParams.get('schema')!);
  return {
    env: { ...base, DATABASE_URL: target.toString() },
    async drop() {
      await admin.raw(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.destroy();
    },
  };
}

describe(`backup and restore (${ENGINE})`, () => {
  let original: InProcessServer | undefined;
  let restored: InProcessServer | undefined;
  let dropRestored = () => Promise.resolve();

  afterAll(async () => {
    await original?.stop();
    await restored?.stop();
    await dropRestored();
  });

  test('a server restored on a fresh directory from the database backup and the KEK honours what was issued before the backup', async () => {
    const dir = tempDir('portcullis-backup-');
    const issuer = `http://localhost:${await freePort()}`;
    original = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir), { ISSUER: issuer }));
    const env = original.env;

    // before the backup: a JWT for a partner, an opaque token, a person's tokens and login
    const jwtPartner = await seedPartner(env);
    const jwt = await requestToken(original.local, jwtPartner);
    expect(jwt.status).toBe(200);
    expect((await cli(env, 'resource', 'create', '--uri', REPORTS, '--scope', 'reports:read', '--format', 'opaque')).code).toBe(0);
    const reporter: App = await registerService(env, 'Reports Reader', 'reports:read');
    const opaque = await tokenCall(original.local, reporter, {
      grant_type: 'client_credentials',
      scope: 'reports:read',
      resource: REPORTS,
    });
    expect(opaque.status).toBe(200);
    const app = await registerApp(env);
    const created = await createUser(env, 'alice', PASSWORD, '--with-totp');
    expect(created.code).toBe(0);
    const totpSecret = secretOf(created.json.totp_uri as string);
    const personTokens = await exchange(original.local, app, await signInAs(original.local, app, 'alice', () => codeFor(totpSecret)));
    expect(personTokens.status).toBe(200);

    const backup = backUp(env, path.join(dir, 'backups'));
    await original.stop();
    original = undefined;

    // the fresh machine: without the KEK the backup is refused, never served with new keys
    const bare = tempDir('portcullis-restore-');
    const withoutKek = await restore(backup, bare, env);
    fs.rmSync(path.join(bare, 'keys', 'kek'));
    expect(await startupRefusal(withoutKek.env)).toMatch(/kek is missing but the database holds keys sealed under a KEK/);
    await withoutKek.drop();

    const fresh = await restore(backup, tempDir('portcullis-restore-'), env);
    dropRestored = () => fresh.drop();
    restored = await startInProcess({ ...fresh.env, ISSUER: issuer });

    // JWTs verify against the restored server's JWKS
    const jwks = createLocalJWKSet((await (await fetch(`${restored.local}/jwks`)).json()) as JSONWebKeySet);
    await expect(jwtVerify(jwt.token!, jwks, { issuer, audience: jwtPartner.uri })).resolves.toBeDefined();
    await expect(jwtVerify(personTokens.body.access_token as string, jwks, { issuer })).resolves.toBeDefined();
    await expect(jwtVerify(personTokens.body.id_token as string, jwks, { issuer, audience: app.clientId })).resolves.toBeDefined();
    // the opaque token introspects active; the refresh token still refreshes
    expect(await introspectAs(restored.local, reporter, opaque.body.access_token as string)).toMatchObject({ active: true, aud: REPORTS });
    const refreshed = await tokenCall(restored.local, app, {
      grant_type: 'refresh_token',
      refresh_token: personTokens.body.refresh_token as string,
    });
    expect(refreshed.status).toBe(200);
    // the person logs in again: password hash, sealed TOTP secret and consent all came back
    // (the code of the next period: the one used before the backup is spent, and the restored database knows it)
    const again = await exchange(restored.local, app, await signInAs(restored.local, app, 'alice', () => codeFor(totpSecret, 1)));
    expect(again.status).toBe(200);
    // and new tokens are signed by a key the restored JWKS publishes
    const after = await requestToken(restored.local, jwtPartner);
    await expect(jwtVerify(after.token!, jwks, { issuer })).resolves.toBeDefined();
  }, 60_000);
});

/** The partner redeems a login's code. */
function exchange(base: string, app: App, login: { code: string; verifier: string }) {
  return tokenCall(base, app, {
    grant_type: 'authorization_code',
    code: login.code,
    redirect_uri: REDIRECT,
    code_verifier: login.verifier,
  });
}
