import { DEFAULT_LOCK_POLICY } from '../../src/accounts/lockout.policy.ts';
import { freshDatabaseUrl, instanceEnv, seedPartner, tempDir } from '../support/harness.ts';
import { openLogin } from '../support/http-login.ts';
import { LOGIN_LIMITS_OFF, startInProcess, type InProcessServer } from '../support/in-process.ts';
import { codeFor, createUser, secretOf } from '../support/login.ts';
import { PASSWORD, REDIRECT, registerApp } from '../support/person-flow.ts';

// The login log lines an operator reads after a complaint or an attack: each says which request
// (its id, as in the request's own line), from where (the client address our proxy saw, with
// TRUST_PROXY=1), for which partner, and whether a refusal was a lock.
const PROXY_HOPS = '198.51.100.7, 203.0.113.9'; // the client wrote the first; our proxy appended the last

let server: InProcessServer;
let base: string;
let clientId: string;

beforeAll(async () => {
  const dir = tempDir();
  server = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir), { ...LOGIN_LIMITS_OFF, TRUST_PROXY: '1' }));
  base = server.local;
  await seedPartner(server.env);
  clientId = (await registerApp(server.env)).clientId;
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

const linesOf = (msg: string, requestId: string) => server.log.lines().filter((line) => line.msg === msg && line.request_id === requestId);

test('refusals carry request id, client address, partner and locked; the lock and the refusals of a locked account say locked: true', async () => {
  const created = await createUser(server.env, 'vera', PASSWORD, '--with-totp');
  const accountId = created.json.id as string;
  const login = await openLogin(base, clientId, REDIRECT);
  const attempt = async (n: number, password: string) => {
    const requestId = `vera-${n}`;
    const answer = await login.browser.post(
      `/interaction/${login.uid}/login`,
      { csrf: login.csrf, username: 'vera', password },
      {
        'X-Forwarded-For': PROXY_HOPS,
        'X-Request-Id': requestId,
      },
    );
    expect(answer.res.status).toBe(401);
    return linesOf('login refused', requestId);
  };
  const expected = (n: number, locked: boolean) => [
    expect.objectContaining({
      request_id: `vera-${n}`,
      client_ip: '203.0.113.9',
      client_id: clientId,
      account: accountId,
      step: 'password',
      locked,
    }),
  ];
  for (let n = 1; n < DEFAULT_LOCK_POLICY.threshold; n += 1) expect(await attempt(n, 'wrong password')).toEqual(expected(n, false));
  // the failure that reaches the threshold locks: its refusal, and the lock's own line, say so
  const last = DEFAULT_LOCK_POLICY.threshold;
  expect(await attempt(last, 'wrong password')).toEqual(expected(last, true));
  expect(linesOf('account locked', `vera-${last}`)).toEqual([
    expect.objectContaining({ client_ip: '203.0.113.9', client_id: clientId, locked: true }),
  ]);
  // locked: the right password is refused too, and the log (never the page) says why
  expect(await attempt(last + 1, PASSWORD)).toEqual(expected(last + 1, true));
  expect(await attempt(last + 2, 'wrong password')).toEqual(expected(last + 2, true));
});

test('a successful login carries request id, client address and partner', async () => {
  const created = await createUser(server.env, 'walt', PASSWORD, '--with-totp');
  const login = await openLogin(base, clientId, REDIRECT);
  const headers = { 'X-Forwarded-For': PROXY_HOPS };
  const password = await login.browser.post(
    `/interaction/${login.uid}/login`,
    { csrf: login.csrf, username: 'walt', password: PASSWORD },
    headers,
  );
  expect(password.res.status).toBe(303);
  const code = codeFor(secretOf(created.json.totp_uri));
  const otp = await login.browser.post(
    `/interaction/${login.uid}/otp`,
    { csrf: login.csrf, code },
    { ...headers, 'X-Request-Id': 'walt-otp' },
  );
  expect(otp.res.status).toBe(303);
  expect(linesOf('login', 'walt-otp')).toEqual([
    expect.objectContaining({ client_ip: '203.0.113.9', client_id: clientId, account: created.json.id }),
  ]);
});
