import { hashId } from '../../src/oidc/payload.store.ts';
import { cli, freshDatabaseUrl, instanceEnv, TEST_PG_URL, tempDir } from '../support/harness.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import {
  authorize,
  introspectAs,
  personTokens,
  REDIRECT,
  registerApp,
  tokenCall,
  type App,
  type TokenAnswer,
} from '../support/person-flow.ts';

// Codes and refresh tokens are single use under concurrency (issue 8, item 3): of many requests
// presenting one value at once exactly one wins; every other gets invalid_grant and the whole
// grant is revoked, including what the winner was given. Access tokens here are opaque, so
// "dead" can be checked by introspection (JWT access tokens cannot be recalled: README).

const ENGINE = TEST_PG_URL ? 'postgres' : 'sqlite';
const PARALLEL = 20;

let server: InProcessServer;
let env: Record<string, string>;
let app: App;

beforeAll(async () => {
  const dir = tempDir();
  server = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir), { LOG_LEVEL: 'warn' }));
  env = server.env;
  await cli(
    env,
    'resource',
    'create',
    '--uri',
    'https://api.bank.test/payments',
    '--scope',
    'payments:read payments:write',
    '--format',
    'opaque',
    '--default',
  );
  app = await registerApp(env);
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

function tally(answers: TokenAnswer[]) {
  const winners = answers.filter((answer) => answer.status === 200);
  const errors = answers.filter((answer) => answer.status !== 200).map((answer) => `${answer.status} ${answer.body.error}`);
  return { winners, errors };
}

async function expectGrantDead(winner: TokenAnswer, ...moreAccessTokens: string[]) {
  const again = await tokenCall(server.url, app, { grant_type: 'refresh_token', refresh_token: winner.body.refresh_token });
  expect(again.status).toBe(400);
  expect(again.body.error).toBe('invalid_grant');
  for (const token of [winner.body.access_token as string, ...moreAccessTokens]) {
    expect(await introspectAs(server.url, app, token)).toEqual({ active: false });
  }
}

describe(`single use under concurrency (${ENGINE})`, () => {
  test(`${PARALLEL} parallel refreshes with one refresh token: one 200, the rest invalid_grant, and the grant is dead`, async () => {
    const first = await personTokens(server.url, env, app);
    expect(await introspectAs(server.url, app, first.access_token)).toEqual(expect.objectContaining({ active: true }));
    const answers = await Promise.all(
      Array.from({ length: PARALLEL }, () =>
        tokenCall(server.url, app, { grant_type: 'refresh_token', refresh_token: first.refresh_token }),
      ),
    );
    const { winners, errors } = tally(answers);
    expect(winners.length).toBe(1);
    expect(errors).toEqual(Array(PARALLEL - 1).fill('400 invalid_grant'));
    await expectGrantDead(winners[0], first.access_token);
  });

  test(`${PARALLEL} parallel redemptions of one code: one 200, the rest invalid_grant, and what the winner got is revoked`, async () => {
    const { code, verifier } = await authorize(server.url, env, app);
    const answers = await Promise.all(
      Array.from({ length: PARALLEL }, () =>
        tokenCall(server.url, app, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier }),
      ),
    );
    const { winners, errors } = tally(answers);
    expect(winners.length).toBe(1);
    expect(errors).toEqual(Array(PARALLEL - 1).fill('400 invalid_grant'));
    await expectGrantDead(winners[0]);
  });

  test('a code redeemed a second time, later, revokes what the first redemption issued (RFC 6749 §4.1.2)', async () => {
    const { code, verifier } = await authorize(server.url, env, app);
    const exchange = { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier };
    const first = await tokenCall(server.url, app, exchange);
    expect(first.status).toBe(200);
    expect(await introspectAs(server.url, app, first.body.access_token)).toEqual(expect.objectContaining({ active: true }));
    const second = await tokenCall(server.url, app, exchange);
    expect(second.body.error).toBe('invalid_grant');
    await expectGrantDead(first);
  });

  test('a refresh token used again after rotation revokes the grant, the rotated token included', async () => {
    const first = await personTokens(server.url, env, app);
    const rotated = await tokenCall(server.url, app, { grant_type: 'refresh_token', refresh_token: first.refresh_token });
    expect(rotated.status).toBe(200);
    const reused = await tokenCall(server.url, app, { grant_type: 'refresh_token', refresh_token: first.refresh_token });
    expect(reused.body.error).toBe('invalid_grant');
    await expectGrantDead(rotated);
  });

  test('tokens written after the revocation are dead too: with only the Grant row gone, oidc-provider refuses the refresh token and the access token introspects inactive', async () => {
    // what a winner's new tokens look like when a loser revoked the grant before they were saved
    const tokens = await personTokens(server.url, env, app);
    const row = await server
      .db('oidc_payloads')
      .where({ model: 'RefreshToken', id: hashId(tokens.refresh_token) })
      .first();
    const grantId = JSON.parse(row.payload).grantId as string;
    expect(
      await server
        .db('oidc_payloads')
        .where({ model: 'Grant', id: hashId(grantId) })
        .delete(),
    ).toBe(1);
    // the token rows themselves are still there (access token, refresh token, code)
    expect(Number((await server.db('oidc_payloads').where({ grant_id: grantId }).count({ n: '*' }))[0].n)).toBeGreaterThanOrEqual(2);
    expect(await introspectAs(server.url, app, tokens.access_token)).toEqual({ active: false });
    expect(await introspectAs(server.url, app, tokens.refresh_token)).toEqual({ active: false });
    const refused = await tokenCall(server.url, app, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
    expect(refused.body.error).toBe('invalid_grant');
  });

  test('sequential refreshes, each with the newest token, keep working (no false reuse alarm)', async () => {
    let refreshToken = (await personTokens(server.url, env, app)).refresh_token;
    for (let round = 0; round < 3; round += 1) {
      const next = await tokenCall(server.url, app, { grant_type: 'refresh_token', refresh_token: refreshToken });
      expect(next.status).toBe(200);
      expect(await introspectAs(server.url, app, next.body.access_token)).toEqual(
        expect.objectContaining({ active: true, scope: 'payments:read' }),
      );
      refreshToken = next.body.refresh_token;
    }
  });
});
