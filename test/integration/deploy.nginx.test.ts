import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createLocalJWKSet, decodeJwt, jwtVerify, type JSONWebKeySet } from 'jose';
import * as client from 'openid-client';
import type { Browser } from 'playwright-core';
import { cli, freePort, freshDatabaseUrl, instanceEnv, ROOT, seedPartner, tempDir } from '../support/harness.ts';
import { form } from '../support/http.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import {
  authorizationRequest,
  codeFor,
  createUser,
  enterCode,
  expectHeading,
  landedAt,
  launchBrowser,
  registerPartnerApp,
  secretOf,
  signIn,
  startRedirectCatcher,
} from '../support/login.ts';
import {
  fetchTrusting,
  httpsRequest,
  makeClientCa,
  makeTestCertificates,
  thumbprint,
  type ClientCa,
  type ClientCertificate,
  type HttpsOptions,
  type TestCertificates,
} from '../support/tls.ts';

// deploy/nginx/portcullis.conf, run as it is (ports and paths substituted) by Debian's nginx in
// front of two Portcullis instances on one database, with TLS from a CA made here. nginx is the
// test's own process (not a daemon: own prefix, pid, logs and temp paths in a temp dir).
// CI installs nginx (.ci/run); on a machine without it the suite is skipped, and says so.

const RECIPE = path.join(ROOT, 'deploy/nginx/portcullis.conf');
const NGINX = ['/usr/sbin/nginx', ...(process.env.PATH ?? '').split(':').map((dir) => path.join(dir, 'nginx'))].find((file) =>
  fs.existsSync(file),
);
const PASSWORD = 'correct horse battery staple';
const API = 'https://api.bank.test/payments';
const HSTS = 'max-age=31536000; includeSubDomains';
// Clients of their own: on Linux every 127.0.0.0/8 address is the loopback interface, so nginx
// sees these while Portcullis's TCP peer is nginx (127.0.0.1).
const CLIENT_ADDRESS = '127.0.0.3';
const FLOOD_ADDRESS = '127.0.0.4';
const OTHER_ADDRESS = '127.0.0.5';
const MTLS_ADDRESS = '127.0.0.6';

/** The recipe with this test's ports and files: each placeholder must be in it, or the recipe and the test have drifted. */
function configFromRecipe(values: { https: number; http: number; upstreams: [number, number]; certs: TestCertificates }): string {
  const substitutions: Array<[string, string]> = [
    ['listen 443 ssl http2;', `listen 127.0.0.1:${values.https} ssl http2;`],
    ['listen [::]:443 ssl http2;', '# (IPv6 listener left out in the test)'],
    ['listen 80;', `listen 127.0.0.1:${values.http};`],
    ['listen [::]:80;', '# (IPv6 listener left out in the test)'],
    ['server_name auth.example.com;', 'server_name localhost;'],
    ['server 127.0.0.1:3000 ', `server 127.0.0.1:${values.upstreams[0]} `],
    ['server 127.0.0.1:3001 ', `server 127.0.0.1:${values.upstreams[1]} `],
    ['/etc/ssl/portcullis/fullchain.pem', values.certs.fullchainPath],
    ['/etc/ssl/portcullis/privkey.pem', values.certs.keyPath],
  ];
  let config = fs.readFileSync(RECIPE, 'utf8');
  for (const [from, to] of substitutions) {
    if (!config.includes(from)) throw new Error(`deploy/nginx/portcullis.conf no longer contains "${from}": update this test`);
    config = config.replaceAll(from, to);
  }
  return config;
}

/** nginx in the foreground with everything it writes under `dir`; resolves once it accepts connections. */
async function startNginx(dir: string, site: string, port: number): Promise<{ child: ChildProcess; stop(): Promise<void> }> {
  for (const temp of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) fs.mkdirSync(path.join(dir, temp), { recursive: true });
  fs.writeFileSync(path.join(dir, 'portcullis.conf'), site);
  const asRoot = process.getuid?.() === 0;
  fs.writeFileSync(
    path.join(dir, 'nginx.conf'),
    [
      'daemon off;',
      'worker_processes 1;',
      // as root, workers would switch to nobody, who cannot write into this private temp dir
      asRoot ? `user ${os.userInfo().username};` : '',
      `pid ${dir}/nginx.pid;`,
      `error_log ${dir}/error.log info;`,
      'events { worker_connections 256; }',
      'http {',
      `  access_log ${dir}/access.log;`,
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((temp) => `  ${temp}_temp_path ${dir}/${temp};`),
      `  include ${dir}/portcullis.conf;`,
      '}',
      '',
    ].join('\n'),
  );
  const child = spawn(NGINX!, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let running = true;
  void exited.then(() => {
    running = false;
  });
  // until it listens, or it has exited (a bad configuration: say why)
  for (;;) {
    if (!running) {
      const log = fs.existsSync(path.join(dir, 'error.log')) ? fs.readFileSync(path.join(dir, 'error.log'), 'utf8') : '';
      throw new Error(`nginx exited: ${stderr}${log}`);
    }
    const listening = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (listening) break;
    await new Promise((resolve) => setTimeout(resolve, 50)); // polling for a port, not a timed wait for an outcome
  }
  return {
    child,
    async stop() {
      if (!running) return;
      child.kill('SIGQUIT'); // graceful: finish requests, then exit
      await exited;
    },
  };
}

/** The rate-limit counts Portcullis keeps in the database, by key (`<limit>:<address>`). */
async function counts(server: InProcessServer, limit: string): Promise<Record<string, number>> {
  const rows = await server
    .db('rate_limits')
    .where('key', 'like', `${limit}:%`)
    .select<Array<{ key: string; points: number }>>('key', 'points');
  return Object.fromEntries(rows.map((row) => [row.key.slice(limit.length + 1), row.points]));
}

const suite = NGINX ? describe : describe.skip;

suite(
  `deploy/nginx/portcullis.conf in front of two instances${NGINX ? '' : ' (skipped: nginx is not installed; apt-get install nginx)'}`,
  () => {
    let dir: string;
    let issuer: string;
    let httpPort: number;
    let certs: TestCertificates;
    let partnerCa: ClientCa;
    let trusted: HttpsOptions;
    let servers: InProcessServer[] = [];
    let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
    let browser: Browser | undefined;

    beforeAll(async () => {
      dir = tempDir('portcullis-nginx-');
      certs = makeTestCertificates(dir);
      partnerCa = makeClientCa(dir);
      trusted = { ca: certs.ca, localAddress: CLIENT_ADDRESS };
      const [httpsPort, first, second] = [await freePort(), await freePort(), await freePort()];
      httpPort = await freePort();
      issuer = `https://localhost:${httpsPort}`;
      const env = instanceEnv(dir, freshDatabaseUrl(dir), {
        ISSUER: issuer,
        TRUST_PROXY: '1',
        HOST: '127.0.0.1',
        // counted in the database, so the test can read which address each count is for
        RATE_LIMIT_ENDPOINT_STORE: 'database',
        // partners' client certificates, as the recipe passes them on
        TLS_CLIENT_CERT_HEADER: 'X-SSL-Client-Cert',
        TLS_CLIENT_CA: partnerCa.caPath,
      });
      servers.push(await startInProcess({ ...env, PORT: String(first) }));
      servers.push(await startInProcess({ ...env, PORT: String(second) }));
      const nginxDir = path.join(dir, 'nginx');
      fs.mkdirSync(nginxDir);
      nginx = await startNginx(
        nginxDir,
        configFromRecipe({ https: httpsPort, http: httpPort, upstreams: [first, second], certs }),
        httpsPort,
      );
    }, 60_000);

    afterAll(async () => {
      await browser?.close();
      await nginx?.stop();
      for (const server of servers) await server.stop();
      servers = [];
    });

    test('discovery through the proxy: every URL is https on the public host; HSTS once, as the app sends it; no /metrics', async () => {
      const answer = await httpsRequest(`${issuer}/.well-known/openid-configuration`, {}, trusted);
      expect(answer.status).toBe(200);
      const discovery = JSON.parse(answer.body.toString()) as Record<string, unknown>;
      const urls = Object.entries(discovery).filter(([, value]) => typeof value === 'string' && /^[a-z]+:\/\//.test(value));
      expect(urls.map(([name]) => name)).toEqual(
        expect.arrayContaining(['issuer', 'jwks_uri', 'token_endpoint', 'authorization_endpoint']),
      );
      for (const [name, url] of urls) expect(`${name} ${String(url)}`).toMatch(new RegExp(`^${name} ${issuer}(/|$)`));
      // mutual TLS through the proxy's header: advertised, with the public URLs as the aliases
      expect(discovery.token_endpoint_auth_methods_supported).toEqual(
        expect.arrayContaining(['tls_client_auth', 'self_signed_tls_client_auth']),
      );
      expect(discovery.tls_client_certificate_bound_access_tokens).toBe(true);
      expect(discovery.mtls_endpoint_aliases).toMatchObject({ token_endpoint: `${issuer}/token` });

      const direct = await fetch(`${servers[0].local}/.well-known/openid-configuration`);
      expect(direct.headers.get('strict-transport-security')).toBe(HSTS);
      const hsts = answer.rawHeaders.filter(
        (_, i) => i % 2 === 1 && answer.rawHeaders[i - 1].toLowerCase() === 'strict-transport-security',
      );
      expect(hsts).toEqual([HSTS]);
      // /metrics trusts loopback peers, and through nginx everyone is one: not forwarded
      expect((await httpsRequest(`${issuer}/metrics`, {}, trusted)).status).toBe(404);
      expect((await fetch(`${servers[0].local}/metrics`)).status).toBe(200);
      // nginx's request id is Portcullis's (the response echoes what the instance logged)
      expect(answer.headers.get('x-request-id')).toMatch(/^[0-9a-f]{32}$/);
    });

    test('plain http only redirects to https', async () => {
      const answer = await new Promise<http.IncomingMessage>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: httpPort, path: '/token', headers: { host: 'localhost' } }, resolve).on('error', reject);
      });
      answer.resume();
      expect(answer.statusCode).toBe(301);
      expect(answer.headers.location).toBe('https://localhost/token');
    });

    test('client credentials through the proxy (openid-client trusting the test CA): a JWT that verifies; both instances served; limits count the client’s address', async () => {
      const partner = await seedPartner(servers[0].env, { uri: API });
      const config = await client.discovery(new URL(issuer), partner.clientId, partner.clientSecret, undefined, {
        [client.customFetch]: fetchTrusting(trusted),
      });
      const tokens: string[] = [];
      for (let i = 0; i < 4; i += 1) tokens.push((await client.clientCredentialsGrant(config, { scope: 'payments:read' })).access_token);

      const jwks = JSON.parse((await httpsRequest(`${issuer}/jwks`, {}, trusted)).body.toString()) as JSONWebKeySet;
      for (const token of tokens) {
        const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), { issuer, audience: API });
        expect(payload.client_id).toBe(partner.clientId);
      }
      // the upstream has both instances: each answered token requests
      for (const server of servers) expect(server.logs()).toMatch(/"route":"token","status":200/);

      // a client that writes its own X-Forwarded-For is still counted by the address nginx saw
      const spoofed = await httpsRequest(
        `${issuer}/token`,
        {
          method: 'POST',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            authorization: `Basic ${Buffer.from(`${partner.clientId}:${partner.clientSecret}`).toString('base64')}`,
            'x-forwarded-for': '203.0.113.9',
          },
          body: 'grant_type=client_credentials&scope=payments%3Aread',
        },
        trusted,
      );
      expect(spoofed.status).toBe(200);
      expect(await counts(servers[0], 'token_ip')).toEqual({ [CLIENT_ADDRESS]: 5 });
    });

    test('a browser login through the proxy: Secure cookies, password + TOTP + consent, code exchanged through the proxy', async () => {
      const catcher = await startRedirectCatcher();
      try {
        const app = await registerPartnerApp(servers[0].env, issuer, catcher.redirectUri, { fetch: fetchTrusting(trusted) });
        const person = await createUser(servers[0].env, 'alice', PASSWORD, '--with-totp');
        expect(person.code).toBe(0);

        browser = await launchBrowser();
        // the browser does not know the test CA; the node clients above checked the chain
        const context = await browser.newContext({ ignoreHTTPSErrors: true });
        const page = await context.newPage();
        const request = await authorizationRequest(app);
        await page.goto(request.url.href);
        await expectHeading(page, 'Sign in');
        // cookies set behind the proxy are Secure (X-Forwarded-Proto honoured): without it /auth could not set them at all
        const cookies = await context.cookies();
        expect(cookies.length).toBeGreaterThan(0);
        for (const cookie of cookies) expect(cookie.secure).toBe(true);
        await signIn(page, 'alice', PASSWORD);
        await expectHeading(page, 'Two-step verification');
        await enterCode(page, codeFor(secretOf(person.json.totp_uri as string)));
        await expectHeading(page, 'Allow Acme Budgeting?');
        await page.getByRole('button', { name: 'Allow' }).click();
        const tokens = await request.exchange(await landedAt(page, catcher.redirectUri));
        expect(tokens.claims()?.amr).toEqual(['pwd', 'otp']);
        expect(tokens.claims()?.iss).toBe(issuer);
        await context.close();
      } finally {
        await catcher.close();
      }
    });

    test('the login forms have a per-address limit at the proxy; what passes is counted by Portcullis under the client’s address', async () => {
      const post = (from: string) =>
        httpsRequest(
          `${issuer}/interaction/no-such-login/login`,
          { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=x&password=y' },
          { ca: certs.ca, localAddress: from },
        );
      const answers = [];
      for (let i = 0; i < 40; i += 1) answers.push(await post(FLOOD_ADDRESS));
      const atProxy = answers.filter(
        (answer) => answer.status === 429 && answer.body.toString().startsWith('Too many attempts from your address'),
      );
      expect(atProxy.length).toBeGreaterThan(0);
      for (const answer of atProxy) {
        expect(answer.headers.get('retry-after')).toBe('60');
        expect(answer.headers.get('strict-transport-security')).toBe(HSTS);
      }
      // another address is not held up by that one
      expect((await post(OTHER_ADDRESS)).status).not.toBe(429);
      // Portcullis counted exactly the posts nginx let through, each under the address of its sender
      const login = await counts(servers[0], 'login_ip');
      expect(login[FLOOD_ADDRESS]).toBe(answers.length - atProxy.length);
      expect(login[OTHER_ADDRESS]).toBe(1);
    });

    test('mutual TLS through the proxy: nginx asks for the certificate and passes it on; one a client writes into the header itself is not passed on', async () => {
      await seedPartner(servers[0].env, { uri: API, name: 'Acme Treasury (secret)' }); // the API, if no test before made it
      const created = await cli(
        servers[0].env,
        'partner',
        'create',
        '--name',
        'Acme Treasury',
        '--scope',
        'payments:read',
        '--auth-method',
        'tls_client_auth',
        '--tls-subject-dn',
        'CN=acme-treasury,O=Acme,C=GB',
        '--token-binding',
        'mtls',
      );
      expect(created.stderr).toBe('');
      const certificate = partnerCa.issue('acme-treasury', '/C=GB/O=Acme/CN=acme-treasury');
      const token = (presented: ClientCertificate | undefined, headers: Record<string, string> = {}) =>
        httpsRequest(
          `${issuer}/token`,
          {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
            body: form({ grant_type: 'client_credentials', client_id: created.json.client_id as string, scope: 'payments:read' }),
          },
          { ca: certs.ca, localAddress: MTLS_ADDRESS, certificate: presented },
        );

      for (let i = 0; i < 2; i += 1) {
        const answer = await token(certificate);
        expect(answer.status).toBe(200);
        const { access_token: accessToken } = JSON.parse(answer.body.toString()) as { access_token: string };
        expect(decodeJwt(accessToken).cnf).toEqual({ 'x5t#S256': thumbprint(certificate.cert) });
      }
      const spoofed = await token(undefined, { 'x-ssl-client-cert': encodeURIComponent(certificate.cert) });
      expect(spoofed.status).toBe(401);
      expect((JSON.parse(spoofed.body.toString()) as { error: string }).error).toBe('invalid_client');
    });
  },
);
