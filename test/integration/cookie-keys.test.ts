import { createHmac } from 'node:crypto';
import { cli, createCodePartner, freshDatabaseUrl, instanceEnv, tempDir } from '../support/harness.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import { openLogin } from '../support/http-login.ts';

const REDIRECT = 'http://127.0.0.1:9/callback'; // never reached

let server: InProcessServer;
let env: Record<string, string>;
let clientId: string;

beforeAll(async () => {
  const dir = tempDir();
  env = instanceEnv(dir, freshDatabaseUrl(dir), { KEY_POLL_INTERVAL: '1s' });
  server = await startInProcess(env);
  await cli(env, 'resource', 'create', '--uri', 'https://api.bank.test/payments', '--scope', 'payments:read', '--default');
  clientId = (await createCodePartner(env, REDIRECT, { name: 'Acme' })).clientId;
});

afterAll(async () => {
  await server?.stop();
});

/** A fresh browser at the sign-in page of a new authorization; its interaction's path. */
async function beginLogin() {
  const login = await openLogin(server.local, clientId, REDIRECT);
  return { browser: login.browser, path: `/interaction/${login.uid}` };
}

/** keygrip's signature of a Koa signed cookie. */
function cookieSignature(key: string, name: string, value: string): string {
  return createHmac('sha1', key)
    .update(`${name}=${value}`)
    .digest('base64')
    .replace(/\/|\+|=/g, (c) => ({ '/': '_', '+': '-', '=': '' })[c]!);
}

async function rotateAndWait(): Promise<string[]> {
  const before = server.app.cookieKeys.join();
  const rotated = await cli(env, 'keys', 'rotate-cookie-keys');
  expect(rotated.code).toBe(0);
  expect(rotated.stdout).not.toMatch(/[A-Za-z0-9_-]{43}/); // no key is printed
  // the server's next poll swaps the keys in, and says so
  await server.log.until(() => server.app.cookieKeys.join() !== before);
  return [...server.app.cookieKeys];
}

test('rotating the cookie keys keeps logins half done, signs with the new key, and drops the oldest', async () => {
  const started = await beginLogin();
  const dormant = await beginLogin();
  const original = server.app.cookieKeys[0];

  const keys = await rotateAndWait();
  expect(keys).toHaveLength(2);
  expect(keys[1]).toBe(original);

  // a login begun before the rotation goes on: its cookie verifies with the previous key (and
  // comes back signed with the new one)
  const page = await started.browser.get(started.path);
  expect(page.res.status).toBe(200);
  expect(page.text).toContain('name="password"');
  expect(started.browser.jar.get('_interaction.sig')).toBe(
    cookieSignature(keys[0], '_interaction', started.browser.jar.get('_interaction')!),
  );

  // cookies made now are signed with the new key
  const fresh = await beginLogin();
  const value = fresh.browser.jar.get('_interaction')!;
  expect(fresh.browser.jar.get('_interaction.sig')).toBe(cookieSignature(keys[0], '_interaction', value));

  // after two more rotations the original key has dropped off: a cookie only it signed is refused
  await rotateAndWait();
  expect(await rotateAndWait()).not.toContain(original);
  const expired = await dormant.browser.get(dormant.path);
  expect(expired.res.status).toBe(400);
  expect(expired.text).toContain('expired');
  expect((await started.browser.get(started.path)).res.status).toBe(200);
  expect((await fresh.browser.get(fresh.path)).res.status).toBe(200);
});

test('racing rotations all land', async () => {
  const before = server.app.cookieKeys;
  const results = await Promise.all([1, 2, 3].map(() => cli(env, 'keys', 'rotate-cookie-keys')));
  expect(results.map((r) => r.code)).toEqual([0, 0, 0]);
  // each swap is logged; the last one (at the latest the poll after the last rotation) has all three
  await server.log.until(() => server.app.cookieKeys.every((key) => !before.includes(key)));
  // three new keys: none of the keys served before is left
  expect(server.app.cookieKeys.filter((key) => before.includes(key))).toEqual([]);
});
