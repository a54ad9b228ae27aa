import { createHash, randomBytes } from 'node:crypto';
import { cli, createCodePartner, freshDatabaseUrl, instanceEnv, seedPartner, tempDir } from '../support/harness.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import { cookieAgent } from '../support/agent.ts';
import { codeFor, createUser, secretOf } from '../support/login.ts';

const PASSWORD = 'correct horse battery staple';
const REDIRECT = 'http://127.0.0.1:9/callback'; // never reached: these tests stop before the redirect

let env: Record<string, string>;
let server: InProcessServer;
let clientId: string;
let secret: string;

beforeAll(async () => {
  const dir = tempDir();
  server = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir)));
  env = server.env;
  await seedPartner(env);
  const partner = await createCodePartner(env, REDIRECT, { name: 'Acme <Budgeting>' });
  clientId = partner.clientId;
  secret = secretOf((await createUser(env, 'ivan', PASSWORD, '--with-totp')).json.totp_uri);
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

function agent() {
  return cookieAgent(() => server.url);
}

/** Starts an authorization and opens its login page; returns the uid and the form's CSRF token. */
async function begin(browser = agent()) {
  const verifier = randomBytes(32).toString('base64url');
  const params = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    redirect_uri: REDIRECT,
    scope: 'openid payments:read',
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  });
  const auth = await browser.get(`/auth?${params}`);
  expect(auth.res.status).toBe(303);
  const location = auth.res.headers.get('location')!;
  const uid = location.split('/').pop()!;
  const page = await browser.get(location);
  expect(page.res.status).toBe(200);
  const csrf = /name="csrf" value="([^"]+)"/.exec(page.text)![1];
  return { browser, uid, csrf, page };
}

function expectReadableErrorPage(result: { res: Response; text: string }, status: number, text: RegExp) {
  expect(result.res.status).toBe(status);
  expect(result.res.headers.get('content-type')).toMatch(/^text\/html/);
  expect(result.text).toMatch(/<h1>/);
  expect(result.text).toMatch(text);
  expect(result.text).not.toMatch(/at .*\.(ts|js):\d+|Error:|stack/i);
}

describe('login pages: headers and cookies', () => {
  test('pages carry the security headers; the CSP allows no inline script; the partner name is escaped', async () => {
    const { page } = await begin();
    const csp = page.res.headers.get('content-security-policy')!;
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).toContain("form-action 'self' http://127.0.0.1:9");
    expect(page.res.headers.get('x-frame-options')).toBe('DENY');
    expect(page.res.headers.get('cache-control')).toBe('no-store');
    expect(page.text).toContain('Acme &lt;Budgeting&gt;');
    expect(page.text).not.toMatch(/<script|style=/);
    const binding = page.cookies.find((c) => c.startsWith('portcullis.login='))!;
    expect(binding).toMatch(/httponly/i);
    expect(binding).toMatch(/samesite=strict/i);
    expect(binding).toMatch(/path=\/interaction\//i);
    expect(binding).not.toMatch(/secure/i); // http issuer; https issuers get Secure
  });

  test('behind TLS (https issuer) the cookies are Secure and pages send HSTS', async () => {
    const dir = tempDir();
    const tls = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir), { ISSUER: 'https://login.bank.test', TRUST_PROXY: '1' }));
    try {
      await cli(tls.env, 'resource', 'create', '--uri', 'https://api.bank.test/payments', '--scope', 'payments:read', '--default');
      const partner = await createCodePartner(tls.env, 'https://app.bank.test/cb', { name: 'TLS Bank' });
      const proxied = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'login.bank.test' };
      const base = `http://127.0.0.1:${tls.env.PORT}`;
      const params = new URLSearchParams({
        client_id: partner.clientId,
        response_type: 'code',
        redirect_uri: 'https://app.bank.test/cb',
        scope: 'openid payments:read',
        code_challenge: createHash('sha256').update('v'.repeat(43)).digest('base64url'),
        code_challenge_method: 'S256',
      });
      const auth = await fetch(`${base}/auth?${params}`, { redirect: 'manual', headers: proxied });
      expect(auth.status).toBe(303);
      const cookies = auth.headers
        .getSetCookie()
        .map((c) => c.split(';')[0])
        .join('; ');
      const page = await fetch(new URL(auth.headers.get('location')!, base), { headers: { ...proxied, cookie: cookies } });
      expect(page.status).toBe(200);
      expect(page.headers.get('strict-transport-security')).toMatch(/max-age=/);
      const binding = page.headers.getSetCookie().find((c) => c.startsWith('portcullis.login='))!;
      expect(binding).toMatch(/;\s*secure/i);
      expect(binding).toMatch(/httponly/i);
    } finally {
      await tls.stop();
    }
  });

  test('the stylesheet and the logo are served from our own origin, at URLs that change with their content', async () => {
    const css = await fetch(`${server.url}/assets/portcullis.css`);
    expect(css.status).toBe(200);
    expect(css.headers.get('content-type')).toMatch(/text\/css/);
    const home = await (await fetch(`${server.url}/`)).text();
    const [stylesheet, logo] = [/href="(\/assets\/portcullis-[\w-]+\.css)"/, /src="(\/assets\/logo-[\w-]+\.svg)"/].map(
      (re) => re.exec(home)![1],
    );
    const hashed = await fetch(`${server.url}${stylesheet}`);
    expect(hashed.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(await hashed.text()).toMatch(/^:root \{\n {2}--accent: #[0-9a-f]{6};/);
    const svg = await fetch(`${server.url}${logo}`);
    expect(svg.headers.get('content-type')).toBe('image/svg+xml');
    expect(svg.headers.get('x-content-type-options')).toBe('nosniff');
    // opened on its own, the SVG is a sandboxed document that runs and loads nothing
    expect(svg.headers.get('content-security-policy')).toMatch(/^default-src 'none';.*; sandbox$/);
    expect((await fetch(`${server.url}/assets/logo-AAAAAAAAAAAA.svg`)).status).toBe(404);
    expect((await fetch(`${server.url}${logo}`, { method: 'POST' })).status).not.toBe(200);
  });
});

describe('bad input gives a readable page, never a 500', () => {
  test('unknown interaction', async () => {
    expectReadableErrorPage(await agent().get('/interaction/no-such-thing'), 400, /expired or is no longer valid/);
    expectReadableErrorPage(await agent().post('/interaction/no-such-thing/login', { username: 'a', password: 'b' }), 400, /expired/);
  });

  test('empty fields, a 10 kB username, an oversized body, a wrong content type', async () => {
    const { browser, uid, csrf } = await begin();
    const empty = await browser.post(`/interaction/${uid}/login`, { csrf, username: '', password: '' });
    expect(empty.res.status).toBe(400);
    expect(empty.text).toContain('Enter your username and your password.');
    const long = await browser.post(`/interaction/${uid}/login`, { csrf, username: 'a'.repeat(10 * 1024), password: PASSWORD });
    expect(long.res.status).toBe(401);
    expect(long.text).toContain('Invalid username or password.');
    expectReadableErrorPage(
      await browser.post(`/interaction/${uid}/login`, { csrf, username: 'a'.repeat(40 * 1024), password: 'x' }),
      413,
      /too large/,
    );
    expectReadableErrorPage(
      await browser.post(`/interaction/${uid}/login`, { csrf }, { 'content-type': 'application/json' }),
      415,
      /not sent as a form/,
    );
  });

  test('a form without its CSRF token, or from another browser, is refused', async () => {
    const { browser, uid, csrf } = await begin();
    expectReadableErrorPage(
      await browser.post(`/interaction/${uid}/login`, { username: 'ivan', password: PASSWORD }),
      403,
      /not valid any more/,
    );
    expectReadableErrorPage(
      await browser.post(`/interaction/${uid}/login`, { csrf: 'x'.repeat(43), username: 'ivan', password: PASSWORD }),
      403,
      /not valid any more/,
    );
    // another browser with the same interaction cookie but without the binding cookie
    const thief = agent();
    thief.jar.set('_interaction', browser.jar.get('_interaction')!);
    thief.jar.set('_interaction.sig', browser.jar.get('_interaction.sig')!);
    expectReadableErrorPage(
      await thief.post(`/interaction/${uid}/login`, { csrf, username: 'ivan', password: PASSWORD }),
      403,
      /not valid any more/,
    );
  });

  test('the pending second factor belongs to the browser that gave the password', async () => {
    const { browser, uid, csrf } = await begin();
    const ok = await browser.post(`/interaction/${uid}/login`, { csrf, username: 'ivan', password: PASSWORD });
    expect(ok.res.status).toBe(303);
    expect((await browser.get(`/interaction/${uid}`)).text).toContain('Two-step verification');
    // a copy of every cookie but the binding value (as another browser would have) sees the login page
    const other = agent();
    for (const [name, value] of browser.jar) if (name !== 'portcullis.login') other.jar.set(name, value);
    other.jar.set('portcullis.login', randomBytes(32).toString('base64url'));
    expect((await other.get(`/interaction/${uid}`)).text).toContain('<h1>Sign in</h1>');
  });

  test('a form for another step (replayed or out of order) is refused', async () => {
    const { browser, uid, csrf } = await begin();
    expectReadableErrorPage(
      await browser.post(`/interaction/${uid}/otp`, { csrf, code: '123456' }),
      409,
      /already used or belongs to another step/,
    );
    expectReadableErrorPage(await browser.post(`/interaction/${uid}/consent`, { csrf, decision: 'allow' }), 409, /already done/);
    expectReadableErrorPage(await browser.post(`/interaction/${uid}/enrol`, { csrf, code: '123456' }), 409, /already used/);
  });

  test('a finished interaction cannot be replayed', async () => {
    const { browser, uid, csrf } = await begin();
    await browser.post(`/interaction/${uid}/login`, { csrf, username: 'ivan', password: PASSWORD });
    const done = await browser.post(`/interaction/${uid}/otp`, { csrf, code: codeFor(secret) });
    expect(done.res.status).toBe(303);
    const resumed = await browser.get(done.res.headers.get('location')!);
    expect(resumed.res.status).toBe(303); // on to consent, a new interaction
    // the old form, sent again
    expectReadableErrorPage(
      await browser.post(`/interaction/${uid}/otp`, { csrf, code: codeFor(secret) }),
      400,
      /expired or is no longer valid/,
    );
    expectReadableErrorPage(
      await browser.post(`/interaction/${uid}/login`, { csrf, username: 'ivan', password: PASSWORD }),
      400,
      /expired/,
    );
  });
});

test('an expired interaction', async () => {
  const { browser, uid, csrf } = await begin();
  const { createDb } = await import('../../src/db/knex.ts');
  const db = createDb(env.DATABASE_URL);
  try {
    await db('oidc_payloads').where({ model: 'Interaction' }).update({ expires_at: 1 });
  } finally {
    await db.destroy();
  }
  expectReadableErrorPage(await browser.get(`/interaction/${uid}`), 400, /expired or is no longer valid/);
  expectReadableErrorPage(await browser.post(`/interaction/${uid}/login`, { csrf, username: 'ivan', password: PASSWORD }), 400, /expired/);
});

describe('user CLI', () => {
  test('create, list, reset-totp, disable; errors on stderr with a non-zero exit', async () => {
    const created = await createUser(env, 'Judy', PASSWORD, '--admin');
    expect(created.code).toBe(0);
    expect(created.json).toEqual({
      id: expect.stringMatching(/^usr_/),
      username: 'judy',
      enrolment_code: expect.stringMatching(/^[a-z2-9]{4}(-[a-z2-9]{4}){3}$/),
      enrolment_code_expires_at: expect.any(String),
    });
    const ttlHours = (Date.parse(created.json.enrolment_code_expires_at) - Date.now()) / 3600_000;
    expect(ttlHours).toBeGreaterThan(71.9);
    expect(ttlHours).toBeLessThanOrEqual(72);
    const listed = (await cli(env, 'user', 'list')).json.find((u: { username: string }) => u.username === 'judy');
    expect(listed).toEqual(
      expect.objectContaining({
        admin: true,
        status: 'active',
        totp_enrolled: false,
        locked_until: null,
        enrolment_code_expires_at: created.json.enrolment_code_expires_at,
      }),
    );
    expect(JSON.stringify(listed)).not.toMatch(/argon|scrypt|hash/);
    expect(JSON.stringify(listed)).not.toContain(created.json.enrolment_code);

    const duplicate = await createUser(env, 'judy', PASSWORD);
    expect(duplicate.code).not.toBe(0);
    expect(duplicate.stderr).toMatch(/^portcullis user create: user judy already exists\n$/);
    expect((await createUser(env, 'kim', 'short')).stderr).toMatch(/at least 10 characters/);
    // weak passwords are refused with zxcvbn's reason, in one line; administrators need 12 characters
    expect((await createUser(env, 'kim', 'password1234')).stderr).toMatch(
      /^portcullis user create: the password is too easy to guess \(strength \d of 4, 3 needed\): This is similar to a commonly used password\.[^\n]*\n$/,
    );
    expect((await createUser(env, 'kim', 'kim2024kim!', '--admin')).stderr).toMatch(
      /^portcullis user create: the password must have at least 12 characters for an administrator \(PCI DSS 8\.3\.6\)\n$/,
    );
    expect((await cli(env, 'user', 'create', '--username', 'kim')).stderr).toMatch(/--password-stdin is required/);
    expect((await createUser(env, 'kim', '')).stderr).toMatch(/no password on standard input/);
    expect((await cli(env, 'user', 'unlock', 'nobody')).stderr).toMatch(/no user named nobody/);

    const withTotp = await createUser(env, 'kim', PASSWORD, '--with-totp');
    expect(withTotp.code).toBe(0);
    expect(withTotp.json.enrolment_code).toBeUndefined(); // provisioned: nothing to enrol
    const reset = await cli(env, 'user', 'reset-totp', 'kim');
    expect(reset.json).toEqual(
      expect.objectContaining({ totp_enrolled: false, enrolment_code: expect.stringMatching(/^[a-z2-9]{4}(-[a-z2-9]{4}){3}$/) }),
    );
    expect((await cli(env, 'user', 'disable', 'kim')).json.status).toBe('disabled');
  });

  test('a disabled user cannot log in (same generic message)', async () => {
    await createUser(env, 'leo', PASSWORD, '--with-totp');
    await cli(env, 'user', 'disable', 'leo');
    const { browser, uid, csrf } = await begin();
    const refused = await browser.post(`/interaction/${uid}/login`, { csrf, username: 'leo', password: PASSWORD });
    expect(refused.res.status).toBe(401);
    expect(refused.text).toContain('Invalid username or password.');
  });

  test('the TOTP secret is stored sealed under the KEK', async () => {
    const { createDb } = await import('../../src/db/knex.ts');
    const db = createDb(env.DATABASE_URL);
    try {
      const row = await db('users').where({ username: 'ivan' }).first();
      expect(row.totp_secret).toMatch(/^v2\./);
      expect(row.totp_secret).not.toContain(secret);
      expect(row.password_hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    } finally {
      await db.destroy();
    }
  });
});

describe('partners for people', () => {
  test('--public makes a client without a secret; public partners cannot use client_credentials', async () => {
    const pub = await cli(
      env,
      'partner',
      'create',
      '--name',
      'Pocket',
      '--scope',
      'payments:read',
      '--grant',
      'authorization_code',
      '--redirect-uri',
      REDIRECT,
      '--public',
    );
    expect(pub.code).toBe(0);
    expect(pub.json.client_secret).toBeUndefined();
    expect(pub.json.public).toBe(true);
    const bad = await cli(env, 'partner', 'create', '--name', 'Pocket', '--scope', 'payments:read', '--public');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--public/);
  });

  test('resource scopes take descriptions; a description must name a scope of the resource', async () => {
    const ok = await cli(
      env,
      'resource',
      'create',
      '--uri',
      'https://api.bank.test/cards',
      '--scope',
      'cards:read',
      '--describe',
      'cards:read=See your cards',
    );
    expect(ok.json.descriptions).toEqual({ 'cards:read': 'See your cards' });
    const bad = await cli(
      env,
      'resource',
      'create',
      '--uri',
      'https://api.bank.test/cards',
      '--scope',
      'cards:read',
      '--describe',
      'cards:write=Spend',
    );
    expect(bad.stderr).toMatch(/not in --scope/);
  });
});
