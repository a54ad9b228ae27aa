import { createCipheriv, randomBytes } from 'node:crypto';
import { createDb } from '../../src/db/knex.ts';
import { createKeyring, type Keyring, type SealContext } from '../../src/keys/kek.ts';
import { cli, freshDatabaseUrl, instanceEnv, seedPartner, tempDir } from '../support/harness.ts';
import { httpLogin, openLogin } from '../support/http-login.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import { codeFor, createUser, secretOf } from '../support/login.ts';
import { PASSWORD, REDIRECT, registerApp } from '../support/person-flow.ts';

/**
 * Sealed values are bound to their row, and values sealed the old way (v1: only the KEK id as
 * additional data) are re-sealed when the database is first opened. Real server in process, real
 * database (SQLite, or PostgreSQL with PORTCULLIS_TEST_PG).
 */
const newKek = () => randomBytes(32).toString('base64url');

/** A value as the previous release sealed it. */
function sealV1(keyring: Keyring, plain: string): string {
  const kek = keyring.keks[0];
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', kek.key, iv);
  cipher.setAAD(Buffer.from(kek.id));
  const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return ['v1', kek.id, iv.toString('base64url'), body.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
}

const TOTP = (id: string): SealContext => ({ purpose: 'totp secret', table: 'users', row: id });

async function personWithTotp(env: Record<string, string>, username: string) {
  const created = await createUser(env, username, PASSWORD, '--with-totp');
  if (created.code !== 0) throw new Error(created.stderr);
  return { id: created.json.id as string, totp: secretOf(created.json.totp_uri) };
}

/** A whole login; `step` picks the authenticator's code that many periods ahead (one step is never used twice). */
async function signIn(server: InProcessServer, clientId: string, username: string, totp: string, step = 0) {
  const authorizationUrl = new URL(
    `${server.url}/auth?${new URLSearchParams({
      client_id: clientId,
      response_type: 'code',
      redirect_uri: REDIRECT,
      scope: 'openid payments:read',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
    })}`,
  );
  return httpLogin({ authorizationUrl, redirectUri: REDIRECT, username, password: PASSWORD, code: () => codeFor(totp, step) });
}

test("a TOTP secret copied into another person's row does not open there: that login is refused, not a 500", async () => {
  const dir = tempDir();
  const server = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir)));
  try {
    await seedPartner(server.env); // the API
    const app = await registerApp(server.env);
    const alice = await personWithTotp(server.env, 'alice');
    const mallory = await personWithTotp(server.env, 'mallory');
    // someone with write access to the table gives mallory alice's sealed secret
    const sealed = (await server.db('users').where({ id: alice.id }).first()).totp_secret;
    await server.db('users').where({ id: mallory.id }).update({ totp_secret: sealed, totp_last_step: null });

    const login = await openLogin(`http://127.0.0.1:${server.env.PORT}`, app.clientId, REDIRECT);
    expect((await login.post('login', { username: 'mallory', password: PASSWORD })).res.status).toBe(303);
    const refused = await login.post('otp', { code: codeFor(alice.totp) });
    expect(refused.res.status).toBe(401);
    expect(refused.text).toContain('That code is not valid');
    expect(server.logs()).toContain('the stored TOTP secret does not open for this account');
    // alice herself still signs in
    expect((await signIn(server, app.clientId, 'alice', alice.totp)).callback.searchParams.get('code')).toBeTruthy();
  } finally {
    await server.stop();
  }
});

test('values sealed the old way are re-sealed at start-up, bound to their rows; keys rewrap moves TOTP secrets to a new KEK', async () => {
  const dir = tempDir();
  const url = freshDatabaseUrl(dir);
  const kekA = newKek();
  const kekB = newKek();
  const ringA = createKeyring([kekA]);
  const env = instanceEnv(dir, url, { PORTCULLIS_KEK: kekA });

  // a database as the previous release left it: every sealed value in format v1
  let server = await startInProcess(env);
  let app: Awaited<ReturnType<typeof registerApp>>;
  let person: Awaited<ReturnType<typeof personWithTotp>>;
  try {
    await seedPartner(server.env);
    app = await registerApp(server.env);
    person = await personWithTotp(server.env, 'olga');
  } finally {
    await server.stop();
  }
  const db = createDb(url);
  try {
    for (const row of await db('signing_keys').select('kid', 'private_jwk')) {
      const plain = ringA.open(row.private_jwk, { purpose: 'signing key', table: 'signing_keys', row: row.kid });
      await db('signing_keys')
        .where({ kid: row.kid })
        .update({ private_jwk: sealV1(ringA, plain) });
    }
    for (const row of await db('shared_secrets').select('name', 'sealed')) {
      const plain = ringA.open(row.sealed, { purpose: row.name, table: 'shared_secrets', row: row.name });
      await db('shared_secrets')
        .where({ name: row.name })
        .update({ sealed: sealV1(ringA, plain) });
    }
    await db('users')
      .where({ id: person.id })
      .update({ totp_secret: sealV1(ringA, person.totp) });
    const sealedColumns = async () =>
      [
        ...(await db('signing_keys').pluck('private_jwk')),
        ...(await db('shared_secrets').pluck('sealed')),
        ...(await db('users').whereNotNull('totp_secret').pluck('totp_secret')),
      ] as string[];
    expect((await sealedColumns()).every((value) => value.startsWith('v1.'))).toBe(true);

    // the next start re-seals them all (here three commands and a server racing to do it), and
    // everything works as before
    const racing = await Promise.all([1, 2, 3].map(() => cli(env, 'keys', 'list')));
    expect(racing.map((result) => result.code)).toEqual([0, 0, 0]);
    server = await startInProcess(env);
    expect((await sealedColumns()).every((value) => value.startsWith(`v2.${ringA.keks[0].id}.`))).toBe(true);
    expect(ringA.open((await db('users').where({ id: person.id }).first()).totp_secret, TOTP(person.id))).toBe(person.totp);
    expect((await signIn(server, app.clientId, 'olga', person.totp)).callback.searchParams.get('code')).toBeTruthy();
    await server.stop();

    // KEK rotation: rewrap under [B, A], then B alone opens everything
    const rewrap = await cli({ ...env, PORTCULLIS_KEK: `${kekB},${kekA}` }, 'keys', 'rewrap');
    expect(rewrap.code).toBe(0);
    expect(rewrap.json).toEqual(expect.objectContaining({ totp_secrets: 1, shared_secrets: 1 }));
    expect((await sealedColumns()).every((value) => value.startsWith(`v2.${createKeyring([kekB]).keks[0].id}.`))).toBe(true);
    server = await startInProcess({ ...env, PORTCULLIS_KEK: kekB });
    expect((await signIn(server, app.clientId, 'olga', person.totp, 1)).callback.searchParams.get('code')).toBeTruthy();
    await server.stop();
  } finally {
    await db.destroy();
  }
}, 60_000);
