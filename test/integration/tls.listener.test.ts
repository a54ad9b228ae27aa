import net from 'node:net';
import path from 'node:path';
import { freePort, freshDatabaseUrl, instanceEnv, tempDir } from '../support/harness.ts';
import { startInProcess, startupRefusal, type InProcessServer } from '../support/in-process.ts';
import { startInstance } from '../support/process.ts';
import { httpsRequest, makeClientCa, makeTestCertificates, type ClientCa, type TestCertificates } from '../support/tls.ts';

// The native TLS listener (TLS_CERT, TLS_KEY): HTTPS on PORT, a client certificate asked for and
// never required; what discovery says about mutual TLS in each configuration; the start-up
// refusals of the TLS_* settings. Partners authenticating with certificates: test/integration/mtls.*.

const HSTS = 'max-age=31536000; includeSubDomains';
const ALIASED = [
  'token_endpoint',
  'revocation_endpoint',
  'introspection_endpoint',
  'pushed_authorization_request_endpoint',
  'userinfo_endpoint',
];

let dir: string;
let certs: TestCertificates;
let clientCa: ClientCa;

beforeAll(() => {
  dir = tempDir('portcullis-tls-');
  certs = makeTestCertificates(dir);
  clientCa = makeClientCa(dir);
});

/** One server on its own database with `env` (ISSUER https://localhost:PORT unless given). */
async function server(env: Record<string, string>): Promise<InProcessServer> {
  const port = await freePort();
  const own = tempDir('portcullis-tls-server-');
  return startInProcess({ ...instanceEnv(own, freshDatabaseUrl(own)), ISSUER: `https://localhost:${port}`, PORT: String(port), ...env });
}

const discovery = async (issuer: string) => {
  const answer = await httpsRequest(`${issuer}/.well-known/openid-configuration`, {}, { ca: certs.ca });
  expect(answer.status).toBe(200);
  return { headers: answer.headers, body: JSON.parse(answer.body.toString()) as Record<string, unknown> };
};

describe('native TLS', () => {
  let tls: InProcessServer;
  beforeAll(async () => {
    tls = await server({ TLS_CERT: certs.fullchainPath, TLS_KEY: certs.keyPath, TLS_CLIENT_CA: clientCa.caPath });
  });
  afterAll(() => tls.stop());

  test('discovery over HTTPS: https URLs, HSTS, mutual TLS advertised with its aliases (the same URLs)', async () => {
    const { headers, body } = await discovery(tls.url);
    expect(body.issuer).toBe(tls.url);
    expect(body.token_endpoint).toBe(`${tls.url}/token`);
    expect(headers.get('strict-transport-security')).toBe(HSTS);
    expect(body.token_endpoint_auth_methods_supported).toEqual(expect.arrayContaining(['tls_client_auth', 'self_signed_tls_client_auth']));
    expect(body.tls_client_certificate_bound_access_tokens).toBe(true);
    const aliases = body.mtls_endpoint_aliases as Record<string, string>;
    expect(Object.keys(aliases).sort()).toEqual([...ALIASED].sort());
    for (const name of ALIASED) expect(aliases[name]).toBe(body[name]);
    expect(tls.logs()).toMatch(/"tls":"native".*"msg":"listening"/);
  });

  test('a client certificate is asked for (naming TLS_CLIENT_CA) and not required; a certificate from anywhere still connects', async () => {
    const stranger = makeClientCa(dir, 'stranger-ca').issue('stranger', '/CN=stranger');
    const answer = await httpsRequest(`${tls.url}/.well-known/openid-configuration`, {}, { ca: certs.ca, certificate: stranger });
    expect(answer.status).toBe(200);
  });

  test('plain HTTP on the port is no HTTP server', async () => {
    const reply = await new Promise<string>((resolve) => {
      const socket = net.connect(Number(new URL(tls.url).port), '127.0.0.1', () =>
        socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'),
      );
      let data = '';
      socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
      socket.on('close', () => resolve(data));
      socket.on('error', () => resolve(data));
    });
    expect(reply).not.toMatch(/^HTTP\/1\.1 200/);
  });
});

test('without TLS_CLIENT_CA: self-signed certificates and bound tokens only', async () => {
  const tls = await server({ TLS_CERT: certs.fullchainPath, TLS_KEY: certs.keyPath });
  try {
    const { body } = await discovery(tls.url);
    expect(body.token_endpoint_auth_methods_supported).toContain('self_signed_tls_client_auth');
    expect(body.token_endpoint_auth_methods_supported).not.toContain('tls_client_auth');
    expect(body.tls_client_certificate_bound_access_tokens).toBe(true);
  } finally {
    await tls.stop();
  }
});

test('plain HTTP (no certificate source): discovery says nothing of mutual TLS', async () => {
  const own = tempDir('portcullis-tls-plain-');
  const plain = await startInProcess(instanceEnv(own, freshDatabaseUrl(own)));
  try {
    const body = (await (await fetch(`${plain.local}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(body.token_endpoint_auth_methods_supported).not.toContain('tls_client_auth');
    expect(body.token_endpoint_auth_methods_supported).not.toContain('self_signed_tls_client_auth');
    expect(body).not.toHaveProperty('tls_client_certificate_bound_access_tokens');
    expect(body).not.toHaveProperty('mtls_endpoint_aliases');
  } finally {
    await plain.stop();
  }
});

describe('start-up refusals: one line naming the setting', () => {
  const tlsEnv = () => ({
    DATABASE_URL: `sqlite:${path.join(dir, 'unused.sqlite')}`,
    KEYS_DIR: path.join(dir, 'keys'),
    ISSUER: 'https://localhost:1',
  });

  test.each([
    ['TLS_CERT without TLS_KEY', () => ({ TLS_CERT: certs.fullchainPath }), /^portcullis: TLS_KEY: required with TLS_CERT$/],
    ['TLS_KEY without TLS_CERT', () => ({ TLS_KEY: certs.keyPath }), /^portcullis: TLS_CERT: required with TLS_KEY$/],
    [
      'an unreadable TLS_CERT',
      () => ({ TLS_CERT: path.join(dir, 'nothing.pem'), TLS_KEY: certs.keyPath }),
      /^portcullis: TLS_CERT: cannot read .*nothing\.pem \(ENOENT\)$/,
    ],
    [
      'a TLS_CERT that is a key',
      () => ({ TLS_CERT: certs.keyPath, TLS_KEY: certs.keyPath }),
      /^portcullis: TLS_CERT: .* holds no PEM certificate$/,
    ],
    [
      'a TLS_KEY that is a certificate',
      () => ({ TLS_CERT: certs.fullchainPath, TLS_KEY: certs.fullchainPath }),
      /^portcullis: TLS_KEY: .* holds no unencrypted PEM private key$/,
    ],
    [
      'a TLS_KEY of another certificate',
      () => ({ TLS_CERT: certs.fullchainPath, TLS_KEY: path.join(dir, 'partner-ca.key') }),
      /^portcullis: TLS_KEY: not the key of the first certificate/,
    ],
    [
      'an http ISSUER with TLS_CERT',
      () => ({ TLS_CERT: certs.fullchainPath, TLS_KEY: certs.keyPath, ISSUER: 'http://localhost:1' }),
      /^portcullis: ISSUER: must be https/,
    ],
    [
      'a TLS_CLIENT_CA holding a leaf certificate',
      () => ({ TLS_CERT: certs.fullchainPath, TLS_KEY: certs.keyPath, TLS_CLIENT_CA: certs.fullchainPath }),
      /^portcullis: TLS_CLIENT_CA: certificate 1 .* is not a CA certificate/,
    ],
    [
      'TLS_CLIENT_CA with no certificate source',
      () => ({ TLS_CLIENT_CA: clientCa.caPath }),
      /^portcullis: TLS_CLIENT_CA: set TLS_CERT and TLS_KEY, or TLS_CLIENT_CERT_HEADER/,
    ],
    [
      'TLS_CLIENT_CERT_HEADER without TRUST_PROXY',
      () => ({ TLS_CLIENT_CERT_HEADER: 'X-SSL-Client-Cert' }),
      /^portcullis: TLS_CLIENT_CERT_HEADER: needs TRUST_PROXY=1/,
    ],
    [
      'TLS_CLIENT_CERT_HEADER with TLS_CERT',
      () => ({ TLS_CLIENT_CERT_HEADER: 'X-SSL-Client-Cert', TRUST_PROXY: '1', TLS_CERT: certs.fullchainPath, TLS_KEY: certs.keyPath }),
      /^portcullis: TLS_CLIENT_CERT_HEADER: not with TLS_CERT/,
    ],
    [
      'a TLS_CLIENT_CERT_HEADER that is no header name',
      () => ({ TLS_CLIENT_CERT_HEADER: 'X SSL', TRUST_PROXY: '1' }),
      /^portcullis: TLS_CLIENT_CERT_HEADER: "X SSL" is not an HTTP header name$/,
    ],
  ])('%s', async (_, env, message) => {
    expect(await startupRefusal({ ...tlsEnv(), ...env() })).toMatch(message);
  });
});

test('WORKERS=2 with native TLS: both workers serve HTTPS; SIGTERM drains them and exits 0', async () => {
  const own = tempDir('portcullis-tls-cluster-');
  const port = await freePort();
  const cluster = await startInstance(
    {
      ...instanceEnv(own, freshDatabaseUrl(own)),
      PORT: String(port),
      ISSUER: `https://localhost:${port}`,
      WORKERS: '2',
      TLS_CERT: certs.fullchainPath,
      TLS_KEY: certs.keyPath,
      TLS_CLIENT_CA: clientCa.caPath,
    },
    { timeoutMs: 40_000 },
  );
  try {
    const listening = () => cluster.log.lines().filter((line) => line.msg === 'listening' && line.tls === 'native');
    await cluster.log.until(() => listening().length === 2, 20_000);
    const partner = clientCa.issue('cluster-partner', '/CN=cluster-partner');
    for (let i = 0; i < 6; i += 1) {
      const { body } = await discovery(cluster.url);
      expect(body.token_endpoint).toBe(`${cluster.url}/token`);
      const withCertificate = await httpsRequest(`${cluster.url}/healthz`, {}, { ca: certs.ca, certificate: partner });
      expect(withCertificate.status).toBe(200);
    }
  } finally {
    expect(await cluster.stop('SIGTERM')).toBe(0);
  }
  expect(cluster.log.lines().filter((line) => line.msg === 'stopped')).toHaveLength(2);
}, 60_000);
