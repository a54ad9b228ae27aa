import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { decodeJwt } from 'jose';
import * as oauth from 'oauth4webapi';
import { cli, freshDatabaseUrl, instanceEnv, tempDir } from '../support/harness.ts';
import { form } from '../support/http.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import {
  httpsRequest,
  makeClientCa,
  makeSelfSignedCertificate,
  startNativeTls,
  thumbprint,
  type ClientCa,
  type ClientCertificate,
  type NativeTlsServer,
  type TestCertificates,
} from '../support/tls.ts';

// Mutual TLS (RFC 8705) over the native TLS listener, driven by oauth4webapi presenting client
// certificates made here: tls_client_auth (a certificate of TLS_CLIENT_CA with the registered
// subject DN), self_signed_tls_client_auth (a registered certificate), certificate-bound tokens,
// and the refusals a partner meets. The person's flow in Chromium: mtls.login.test.ts.

const PAYMENTS = 'https://api.bank.test/payments';
const ACCOUNTS = 'https://api.bank.test/accounts';
const DN = 'CN=acme-client,O=Acme Bank,C=GB';
const SUBJECT = '/C=GB/O=Acme Bank/CN=acme-client';

let dir: string;
let certs: TestCertificates;
let partnerCa: ClientCa;
let server: InProcessServer;
let as: oauth.AuthorizationServer;
let acme: oauth.Client;
let acmeCertificate: ClientCertificate;

let over: NativeTlsServer['over'];

/** `partner create` with `flags`: the new client_id. */
async function createPartner(name: string, ...flags: string[]): Promise<string> {
  const created = await cli(server.env, 'partner', 'create', '--name', name, '--scope', 'payments:read accounts:read', ...flags);
  if (created.code !== 0) throw new Error(created.stderr);
  return created.json.client_id as string;
}

/** POST /token by hand (client_id in the body, as RFC 8705 clients send it), presenting `certificate`. */
async function tokenRequest(fields: Record<string, string>, certificate?: ClientCertificate, headers: Record<string, string> = {}) {
  const answer = await httpsRequest(
    `${server.url}/token`,
    { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: form(fields) },
    { ca: certs.ca, certificate },
  );
  return { status: answer.status, body: JSON.parse(answer.body.toString()) as Record<string, unknown> };
}

async function clientCredentials(client: oauth.Client, certificate: ClientCertificate, resource = PAYMENTS) {
  const response = await oauth.clientCredentialsGrantRequest(
    as,
    client,
    oauth.TlsClientAuth(),
    { scope: resource === PAYMENTS ? 'payments:read' : 'accounts:read', resource },
    over(certificate),
  );
  return oauth.processClientCredentialsResponse(as, client, response);
}

beforeAll(async () => {
  dir = tempDir('portcullis-mtls-');
  ({ server, certs, partnerCa, over } = await startNativeTls(dir));
  acmeCertificate = partnerCa.issue('acme', SUBJECT);
  for (const [uri, scope, format] of [
    [PAYMENTS, 'payments:read', 'jwt'],
    [ACCOUNTS, 'accounts:read', 'opaque'],
  ]) {
    const created = await cli(server.env, 'resource', 'create', '--uri', uri, '--scope', scope, '--format', format);
    if (created.code !== 0) throw new Error(created.stderr);
  }
  as = await oauth.processDiscoveryResponse(new URL(server.url), await oauth.discoveryRequest(new URL(server.url), over()));
  const clientId = await createPartner('Acme Bank', '--auth-method', 'tls_client_auth', '--tls-subject-dn', DN, '--token-binding', 'mtls');
  acme = { client_id: clientId, use_mtls_endpoint_aliases: true };
}, 60_000);

afterAll(() => server.stop());

test('tls_client_auth: client credentials with a certificate of TLS_CLIENT_CA and the registered DN; the token is bound to it (cnf.x5t#S256)', async () => {
  expect(as.mtls_endpoint_aliases?.token_endpoint).toBe(`${server.url}/token`);
  const tokens = await clientCredentials(acme, acmeCertificate);
  expect(tokens.token_type.toLowerCase()).toBe('bearer');
  const claims = decodeJwt(tokens.access_token);
  expect(claims.client_id).toBe(acme.client_id);
  expect(claims.cnf).toEqual({ 'x5t#S256': thumbprint(acmeCertificate.cert) });
});

test('introspection of a bound opaque token shows its cnf, for the partner presenting its certificate', async () => {
  const tokens = await clientCredentials(acme, acmeCertificate, ACCOUNTS);
  const response = await oauth.introspectionRequest(as, acme, oauth.TlsClientAuth(), tokens.access_token, over(acmeCertificate));
  const introspection = await oauth.processIntrospectionResponse(as, acme, response);
  expect(introspection.active).toBe(true);
  expect(introspection.client_id).toBe(acme.client_id);
  expect(introspection.cnf).toEqual({ 'x5t#S256': thumbprint(acmeCertificate.cert) });
});

describe('tls_client_auth refusals: invalid_client', () => {
  const attempt = (certificate?: ClientCertificate) =>
    tokenRequest({ grant_type: 'client_credentials', client_id: acme.client_id, scope: 'payments:read' }, certificate);

  test.each([
    ['no certificate', () => undefined, 'client certificate was not provided'],
    ['the same DN from another CA', () => makeClientCa(dir, 'rogue-ca').issue('rogue', SUBJECT), 'client certificate was not verified'],
    [
      'an expired certificate of the CA',
      () => partnerCa.issue('acme-expired', SUBJECT, { expired: true }),
      'client certificate was not verified',
    ],
    [
      'another DN from the CA',
      () => partnerCa.issue('globex', '/C=GB/O=Globex/CN=acme-client'),
      'certificate subject value does not match',
    ],
    [
      'the DN’s RDNs in the certificate in the other order',
      () => partnerCa.issue('acme-reversed', '/CN=acme-client/O=Acme Bank/C=GB'),
      'certificate subject value does not match',
    ],
    [
      'a self-signed certificate with the DN',
      () => makeSelfSignedCertificate(dir, 'acme-self', SUBJECT),
      'client certificate was not verified',
    ],
  ])('%s', async (_, certificate, description) => {
    const answer = await attempt(certificate());
    expect(answer.status).toBe(401);
    expect(answer.body.error).toBe('invalid_client');
    expect(answer.body.error_description).toContain(description);
  });

  test('the certificate in a header, over native TLS without one: not believed', async () => {
    const answer = await tokenRequest({ grant_type: 'client_credentials', client_id: acme.client_id, scope: 'payments:read' }, undefined, {
      'x-ssl-client-cert': encodeURIComponent(acmeCertificate.cert),
    });
    expect(answer.status).toBe(401);
    expect(answer.body.error).toBe('invalid_client');
  });

  test('a client secret is no way in for a tls_client_auth partner', async () => {
    const answer = await tokenRequest({ grant_type: 'client_credentials', scope: 'payments:read' }, acmeCertificate, {
      authorization: `Basic ${Buffer.from(`${acme.client_id}:anything`).toString('base64')}`,
    });
    expect(answer.status).toBe(401);
    expect(answer.body.error).toBe('invalid_client');
  });
});

test('self_signed_tls_client_auth: the registered certificate authenticates and binds; another self-signed one is refused', async () => {
  const own = makeSelfSignedCertificate(dir, 'initech', '/CN=initech-client');
  const jwks = path.join(dir, 'initech.jwks.json');
  const publicJwk = new X509Certificate(own.cert).publicKey.export({ format: 'jwk' });
  const x5c = own.cert.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, '');
  fs.writeFileSync(jwks, JSON.stringify({ keys: [{ ...publicJwk, use: 'sig', x5c: [x5c] }] }));
  const initech = {
    client_id: await createPartner(
      'Initech',
      '--auth-method',
      'self_signed_tls_client_auth',
      '--jwks-file',
      jwks,
      '--token-binding',
      'mtls',
    ),
  };

  const tokens = await clientCredentials(initech, own);
  expect(decodeJwt(tokens.access_token).cnf).toEqual({ 'x5t#S256': thumbprint(own.cert) });

  const other = makeSelfSignedCertificate(dir, 'initech-other', '/CN=initech-client');
  const refused = await tokenRequest({ grant_type: 'client_credentials', client_id: initech.client_id, scope: 'payments:read' }, other);
  expect(refused.status).toBe(401);
  expect(refused.body.error).toBe('invalid_client');
  expect(refused.body.error_description).toContain('unregistered client certificate provided');
});

test('a partner registered for mutual TLS, on a server without a certificate source: an OAuth error naming the method, never a 500', async () => {
  const own = tempDir('portcullis-mtls-plain-');
  const plain = await startInProcess(instanceEnv(own, freshDatabaseUrl(own)));
  try {
    await cli(plain.env, 'resource', 'create', '--uri', PAYMENTS, '--scope', 'payments:read', '--default');
    const created = await cli(
      plain.env,
      'partner',
      'create',
      '--name',
      'Acme Bank',
      '--scope',
      'payments:read',
      '--auth-method',
      'tls_client_auth',
      '--tls-subject-dn',
      DN,
    );
    // the command cannot know the server's TLS settings; the server refuses the partner as a failed authentication, saying why
    expect(created.code).toBe(0);
    const res = await fetch(`${plain.local}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-ssl-client-cert': encodeURIComponent(acmeCertificate.cert) },
      body: form({ grant_type: 'client_credentials', client_id: created.json.client_id as string, scope: 'payments:read' }),
    });
    expect(res.status).toBe(401);
    const body = (await res.json()) as { error: string; error_description: string };
    expect(body.error).toBe('invalid_client');
    expect(body.error_description).toMatch(/cannot be used by this server as configured \(token_endpoint_auth_method must be /);
  } finally {
    await plain.stop();
  }
});

test.each(['CN=acme-client,XX=Acme', 'CN=acme-client,O=Acme,', 'acme-client', 'CN=acme\\'])(
  '`partner create --tls-subject-dn %s` is refused: it could match no certificate',
  async (dn) => {
    const created = await cli(
      server.env,
      'partner',
      'create',
      '--name',
      `Bad DN ${dn}`,
      '--scope',
      'payments:read',
      '--auth-method',
      'tls_client_auth',
      '--tls-subject-dn',
      dn,
    );
    expect(created.code).toBe(1);
    expect(created.stderr).toMatch(/--tls-subject-dn .* is not an RFC 4514 distinguished name/);
  },
);

describe('behind a proxy: the certificate from TLS_CLIENT_CERT_HEADER, with TRUST_PROXY=1', () => {
  let proxied: InProcessServer;
  let clientId: string;
  beforeAll(async () => {
    const own = tempDir('portcullis-mtls-proxied-');
    proxied = await startInProcess(
      instanceEnv(own, freshDatabaseUrl(own), {
        TRUST_PROXY: '1',
        TLS_CLIENT_CERT_HEADER: 'X-SSL-Client-Cert',
        TLS_CLIENT_CA: partnerCa.caPath,
      }),
    );
    await cli(proxied.env, 'resource', 'create', '--uri', PAYMENTS, '--scope', 'payments:read', '--default');
    const created = await cli(
      proxied.env,
      'partner',
      'create',
      '--name',
      'Acme Bank',
      '--scope',
      'payments:read',
      '--auth-method',
      'tls_client_auth',
      '--tls-subject-dn',
      DN,
      '--token-binding',
      'mtls',
    );
    if (created.code !== 0) throw new Error(created.stderr);
    clientId = created.json.client_id as string;
  });
  afterAll(() => proxied.stop());

  const viaProxy = (certificate: string | undefined) =>
    fetch(`${proxied.local}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-forwarded-proto': 'https',
        ...(certificate === undefined ? {} : { 'x-ssl-client-cert': certificate }),
      },
      body: form({ grant_type: 'client_credentials', client_id: clientId, scope: 'payments:read' }),
    });

  test.each([
    ['URL-encoded PEM', () => encodeURIComponent(acmeCertificate.cert)],
    ['PEM folded into one line', () => acmeCertificate.cert.replace(/\n/g, ' ')],
    ['base64 DER', () => acmeCertificate.cert.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, '')],
  ])('%s: a token bound to that certificate', async (_, value) => {
    const res = await viaProxy(value());
    expect(res.status).toBe(200);
    const body = (await res.json()) as { access_token: string };
    expect(decodeJwt(body.access_token).cnf).toEqual({ 'x5t#S256': thumbprint(acmeCertificate.cert) });
  });

  test('no header, or an unreadable one: invalid_client', async () => {
    for (const value of [undefined, 'not a certificate']) {
      const res = await viaProxy(value);
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: string }).error).toBe('invalid_client');
    }
  });
});
