import { BY_CLI, appendAudit, rowHash, verifyChain } from '../../src/audit/audit.service.ts';
import { createDb, type Db } from '../../src/db/knex.ts';
import { migrate } from '../../src/db/migrate.ts';
import { cli, freshDatabaseUrl, instanceEnv, tempDir, TEST_PG_URL } from '../support/harness.ts';
import { openLogin } from '../support/http-login.ts';
import { LOGIN_LIMITS_OFF, startInProcess, type InProcessServer } from '../support/in-process.ts';
import { codeFor, createUser, secretOf } from '../support/login.ts';
import { PASSWORD, REDIRECT, registerApp, signInAs, tokenCall, type App } from '../support/person-flow.ts';

// The audit log (issue 12) on the engine of the run: CLI changes, sign-ins, consents and token
// reuse are rows; `audit verify` names a changed, a deleted and a reordered row; three pools
// appending at once leave one gapless chain; no secret of the run reaches the table.

const ENGINE = TEST_PG_URL ? 'postgres' : 'sqlite';

type Row = {
  seq: number;
  at: string;
  actor: string;
  action: string;
  target: string | null;
  source_ip: string | null;
  request_id: string | null;
  details: Record<string, unknown>;
  prev_hash: string;
  hash: string;
};

let server: InProcessServer;
let env: Record<string, string>;
/** every secret this run handled: none may be in the audit table */
const secrets: string[] = [PASSWORD];

beforeAll(async () => {
  const dir = tempDir();
  server = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir), { ...LOGIN_LIMITS_OFF, LOG_LEVEL: 'warn' }));
  env = server.env;
  const resource = await cli(env, 'resource', 'create', '--uri', 'https://api.bank.test/payments', '--scope', 'payments:read', '--default');
  expect(resource.code).toBe(0);
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

async function exported(...flags: string[]): Promise<Row[]> {
  const result = await cli(env, 'audit', 'export', ...flags);
  expect(result.code).toBe(0);
  return result.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Row);
}

/** The rows of `action` once there are `count` (token reuse is recorded after the answer is sent). */
async function rowsOf(action: string, count = 1): Promise<Row[]> {
  for (let i = 0; i < 200; i += 1) {
    const rows = (await exported()).filter((row) => row.action === action);
    if (rows.length >= count) return rows;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`no ${action} row`);
}

describe(`audit log (${ENGINE})`, () => {
  test('CLI changes are rows with actor cli, chained, and `audit verify` says valid', async () => {
    const partner = await cli(env, 'partner', 'create', '--name', 'Audit Bank', '--scope', 'payments:read');
    const clientId = partner.json.client_id as string;
    secrets.push(partner.json.client_secret as string);
    const rotated = await cli(env, 'partner', 'rotate-secret', clientId);
    secrets.push(rotated.json.client_secret as string);
    expect((await cli(env, 'partner', 'suspend', clientId)).code).toBe(0);
    expect((await cli(env, 'partner', 'resume', clientId)).code).toBe(0);
    const rows = await exported();
    expect(rows.filter((row) => row.target === clientId).map((row) => [row.actor, row.action])).toEqual([
      ['cli', 'partner.create'],
      ['cli', 'partner.rotate_secret'],
      ['cli', 'partner.suspend'],
      ['cli', 'partner.resume'],
    ]);
    // the first row: the first signing key, made by the server at its first start
    expect(rows[0]).toMatchObject({
      seq: 1,
      actor: 'system',
      action: 'keys.create',
      prev_hash: '0'.repeat(64),
      source_ip: null,
      request_id: null,
    });
    expect(rows.find((row) => row.action === 'resource.create')).toMatchObject({ actor: 'cli', source_ip: null, request_id: null });
    rows.slice(1).forEach((row, i) => expect(row.prev_hash).toBe(rows[i].hash));
    const verified = await cli(env, 'audit', 'verify');
    expect(verified.code).toBe(0);
    expect(verified.json).toEqual({ valid: true, rows: rows.length, head: rows.at(-1)!.hash });
  });

  test('sign-ins: failure, lock and success with source IP and request id; consent given; refresh token reuse', async () => {
    const app: App = await registerApp(env);
    secrets.push(app.clientSecret!);
    const created = await createUser(env, 'audrey', PASSWORD, '--with-totp');
    const totp = secretOf(created.json.totp_uri);
    secrets.push(totp, created.json.totp_uri as string);
    const accountId = created.json.id as string;

    const login = await openLogin(server.local, app.clientId, REDIRECT);
    const requestIds: string[] = [];
    for (let i = 0; i < 5; i += 1) {
      const wrong = `wrong password number ${i}`;
      secrets.push(wrong);
      const answer = await login.post('login', { username: 'audrey', password: wrong });
      expect(answer.res.status).toBe(401);
      requestIds.push(answer.res.headers.get('x-request-id')!);
    }
    const failures = (await exported()).filter((row) => row.action.startsWith('signin.'));
    expect(failures.map((row) => row.action)).toEqual([...Array<string>(4).fill('signin.failure'), 'signin.locked']);
    for (const [i, row] of failures.entries())
      expect(row).toMatchObject({
        actor: `person:${accountId}`,
        target: accountId,
        source_ip: '127.0.0.1',
        request_id: requestIds[i],
        details: { step: 'password', client_id: app.clientId },
      });
    expect((await cli(env, 'user', 'unlock', 'audrey')).code).toBe(0);

    const code = codeFor(totp);
    secrets.push(code);
    const signedIn = await signInAs(server.url, app, 'audrey', () => code);
    secrets.push(signedIn.code, signedIn.verifier);
    const success = (await exported()).filter((row) => row.action === 'signin.success');
    expect(success).toEqual([
      expect.objectContaining({ actor: `person:${accountId}`, target: accountId, source_ip: '127.0.0.1', request_id: expect.any(String) }),
    ]);
    const consent = (await exported()).filter((row) => row.action === 'consent.give');
    expect(consent).toEqual([expect.objectContaining({ actor: `person:${accountId}`, details: { client_id: app.clientId } })]);

    const tokens = await tokenCall(server.url, app, {
      grant_type: 'authorization_code',
      code: signedIn.code,
      redirect_uri: REDIRECT,
      code_verifier: signedIn.verifier,
    });
    expect(tokens.status).toBe(200);
    const refresh = tokens.body.refresh_token as string;
    secrets.push(refresh, tokens.body.access_token as string, tokens.body.id_token as string);
    const rotated = await tokenCall(server.url, app, { grant_type: 'refresh_token', refresh_token: refresh });
    expect(rotated.status).toBe(200);
    secrets.push(rotated.body.refresh_token as string, rotated.body.access_token as string);
    const reused = await tokenCall(server.url, app, { grant_type: 'refresh_token', refresh_token: refresh });
    expect(reused.status).toBe(400);
    const [reuse] = await rowsOf('token.reuse');
    expect(reuse).toMatchObject({
      actor: `partner:${app.clientId}`,
      target: consent[0].target,
      source_ip: '127.0.0.1',
      details: { token: 'refresh token', account_id: accountId, grant_revoked: true },
    });

    // the client-credentials path writes nothing
    const before = (await exported()).length;
    const service = await cli(env, 'partner', 'create', '--name', 'Machine', '--scope', 'payments:read');
    secrets.push(service.json.client_secret as string);
    for (let i = 0; i < 3; i += 1) {
      const issued = await tokenCall(
        server.url,
        { clientId: service.json.client_id as string, clientSecret: service.json.client_secret as string },
        {
          grant_type: 'client_credentials',
          scope: 'payments:read',
        },
      );
      expect([issued.status, issued.body.error]).toEqual([200, undefined]);
      secrets.push(issued.body.access_token as string);
    }
    expect((await exported()).length).toBe(before + 1); // the partner.create only
  }, 60_000);

  test('no secret of the run is in the audit table', async () => {
    const table = JSON.stringify(await server.db('audit_log').select('*'));
    for (const secret of secrets.filter((value) => value.length >= 6)) expect(table).not.toContain(secret);
    expect((await cli(env, 'audit', 'verify')).code).toBe(0);
  });

  test('export --since: an ISO time or a duration', async () => {
    const all = await exported();
    const middle = all[Math.floor(all.length / 2)];
    const since = await exported('--since', middle.at);
    expect(since.length).toBeGreaterThan(0);
    expect(since.every((row) => row.at >= middle.at)).toBe(true);
    expect(since.length).toBeLessThan(all.length + 1);
    expect(await exported('--since', '1h')).toEqual(all);
    expect(await exported('--since', new Date(Date.now() + 60_000).toISOString())).toEqual([]);
    const bad = await cli(env, 'audit', 'export', '--since', 'yesterday');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/neither an ISO 8601 time .* nor a duration/);
  });
});

describe(`audit chain (${ENGINE}): concurrency and tampering`, () => {
  const PER_POOL = 15;
  let url: string;
  let pools: Db[];

  beforeAll(async () => {
    url = freshDatabaseUrl(tempDir());
    pools = [createDb(url), createDb(url), createDb(url)];
    await migrate(pools[0]);
  });

  afterAll(async () => {
    await Promise.all(pools.map((db) => db.destroy()));
  });

  test('three instances appending at once leave one valid, gapless chain', async () => {
    await Promise.all(
      pools.flatMap((db, instance) =>
        Array.from({ length: PER_POOL }, (_, i) =>
          appendAudit(db, BY_CLI, { action: 'test.append', target: `instance-${instance}`, details: { i } }),
        ),
      ),
    );
    expect(await verifyChain(pools[1])).toMatchObject({ valid: true, rows: 3 * PER_POOL });
    const seqs = (await pools[2]('audit_log').select('seq').orderBy('seq')).map((row: { seq: unknown }) => Number(row.seq));
    expect(seqs).toEqual(Array.from({ length: 3 * PER_POOL }, (_, i) => i + 1));
  }, 60_000);

  /** Applies `tamper`, checks what verify says (also through the CLI for the first case), then puts the rows back. */
  async function tampered(tamper: (db: Db) => Promise<unknown>) {
    const db = pools[0];
    const original = await db('audit_log').select('*').orderBy('seq');
    await tamper(db);
    const verdict = await verifyChain(db);
    const command = await cli({ ...env, DATABASE_URL: url }, 'audit', 'verify');
    await db('audit_log').delete();
    for (let i = 0; i < original.length; i += 100) await db('audit_log').insert(original.slice(i, i + 100));
    expect(await verifyChain(db)).toMatchObject({ valid: true });
    return { verdict, command };
  }

  test('a changed row is named', async () => {
    const { verdict, command } = await tampered((db) => db('audit_log').where({ seq: 7 }).update({ details: '{"i":99}' }));
    expect(verdict).toMatchObject({ valid: false, seq: 7, problem: 'changed content', rows: 6 });
    expect(command.code).toBe(1);
    expect(command.stderr).toMatch(/^portcullis audit verify: seq 7: changed content/);
  });

  test('a changed row whose own hash was recomputed breaks the link of the next', async () => {
    const { verdict } = await tampered(async (db) => {
      const row = (await db('audit_log').where({ seq: 7 }).first()) as Record<string, unknown>;
      const forged = { ...row, seq: 7, at: Number(row.at), actor: 'cli', details: '{"i":99}' } as Parameters<typeof rowHash>[0];
      await db('audit_log')
        .where({ seq: 7 })
        .update({ details: '{"i":99}', hash: rowHash(forged) });
    });
    expect(verdict).toMatchObject({ valid: false, seq: 8, problem: 'broken link' });
  });

  test('a deleted row is named', async () => {
    const { verdict, command } = await tampered((db) => db('audit_log').where({ seq: 12 }).delete());
    expect(verdict).toMatchObject({ valid: false, seq: 12, problem: 'missing seq' });
    expect(command.stderr).toMatch(/seq 12: missing seq/);
  });

  test('a reordered row is named', async () => {
    const { verdict, command } = await tampered(async (db) => {
      await db('audit_log').where({ seq: 20 }).update({ seq: -20 });
      await db('audit_log').where({ seq: 21 }).update({ seq: 20 });
      await db('audit_log').where({ seq: -20 }).update({ seq: 21 });
    });
    expect(verdict).toMatchObject({ valid: false, seq: 20, problem: 'out of order' });
    expect(command.stderr).toMatch(/seq 20: out of order/);
  });
});
