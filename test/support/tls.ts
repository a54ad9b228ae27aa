import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import * as oauth from 'oauth4webapi';
import type { CustomFetch } from 'openid-client';
import { freePort, freshDatabaseUrl, instanceEnv } from './harness.ts';
import { startInProcess, type InProcessServer } from './in-process.ts';

type FetchBody = Parameters<CustomFetch>[1]['body'];

// TLS for tests of what runs behind a real proxy: a throw-away CA and a leaf certificate for
// localhost / 127.0.0.1 (made with the openssl CLI), and an HTTPS client that trusts that CA only.

export type TestCertificates = Readonly<{
  /** the CA certificate (PEM): what a client trusts */
  ca: string;
  /** leaf + CA, and the leaf's key: what the server presents */
  fullchainPath: string;
  keyPath: string;
}>;

/** A CA and a leaf it signed (P-256, one day, SAN localhost and 127.0.0.1), written into `dir`. */
export function makeTestCertificates(dir: string): TestCertificates {
  const file = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const p256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(
    'req',
    '-x509',
    ...p256,
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.pem'),
    '-days',
    '1',
    '-subj',
    '/CN=Portcullis test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  openssl('req', ...p256, '-keyout', file('leaf.key'), '-out', file('leaf.csr'), '-subj', '/CN=localhost');
  fs.writeFileSync(
    file('leaf.ext'),
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n',
  );
  openssl(
    'x509',
    '-req',
    '-in',
    file('leaf.csr'),
    '-CA',
    file('ca.pem'),
    '-CAkey',
    file('ca.key'),
    '-CAcreateserial',
    '-days',
    '1',
    '-extfile',
    file('leaf.ext'),
    '-out',
    file('leaf.pem'),
  );
  const ca = fs.readFileSync(file('ca.pem'), 'utf8');
  fs.writeFileSync(file('fullchain.pem'), fs.readFileSync(file('leaf.pem'), 'utf8') + ca);
  return { ca, fullchainPath: file('fullchain.pem'), keyPath: file('leaf.key') };
}

/** A client certificate and its key (PEM), and where they are written. */
export type ClientCertificate = Readonly<{ cert: string; key: string; certPath: string; keyPath: string }>;

export type ClientCa = Readonly<{
  /** the CA certificate (PEM), and its file: what TLS_CLIENT_CA names */
  ca: string;
  caPath: string;
  /**
   * A certificate for `subject` (openssl's `/C=GB/O=Acme/CN=x` form) issued by this CA: P-256,
   * one day, extendedKeyUsage clientAuth. `expired`: its validity ended before now.
   */
  issue(name: string, subject: string, options?: { expired?: boolean }): ClientCertificate;
}>;

const P256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function certificateFiles(dir: string, name: string): ClientCertificate {
  const certPath = path.join(dir, `${name}.pem`);
  const keyPath = path.join(dir, `${name}.key`);
  return { cert: fs.readFileSync(certPath, 'utf8'), key: fs.readFileSync(keyPath, 'utf8'), certPath, keyPath };
}

/** A CA that issues partners' client certificates (what a platform's partner PKI is), in `dir`. */
export function makeClientCa(dir: string, name = 'partner-ca'): ClientCa {
  const file = (suffix: string) => path.join(dir, `${name}${suffix}`);
  openssl('req', '-x509', ...P256, '-keyout', file('.key'), '-out', file('.pem'), '-days', '1', '-subj', `/CN=${name}`);
  fs.writeFileSync(file('.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  return {
    ca: fs.readFileSync(file('.pem'), 'utf8'),
    caPath: file('.pem'),
    issue(leaf, subject, options = {}) {
      const out = (suffix: string) => path.join(dir, `${leaf}${suffix}`);
      openssl('req', ...P256, '-utf8', '-keyout', out('.key'), '-out', out('.csr'), '-subj', subject);
      // -days -1: not after a day ago (openssl 3.0 has no -not_after)
      const days = options.expired ? '-1' : '1';
      openssl(
        'x509',
        '-req',
        '-in',
        out('.csr'),
        '-CA',
        file('.pem'),
        '-CAkey',
        file('.key'),
        '-CAcreateserial',
        '-days',
        days,
        '-extfile',
        file('.ext'),
        '-out',
        out('.pem'),
      );
      return certificateFiles(dir, leaf);
    },
  };
}

/** A self-signed client certificate (`self_signed_tls_client_auth`), in `dir`. */
export function makeSelfSignedCertificate(dir: string, name: string, subject: string): ClientCertificate {
  openssl(
    'req',
    '-x509',
    ...P256,
    '-keyout',
    path.join(dir, `${name}.key`),
    '-out',
    path.join(dir, `${name}.pem`),
    '-days',
    '1',
    '-subj',
    subject,
  );
  return certificateFiles(dir, name);
}

/** The SHA-256 thumbprint of a PEM certificate, base64url: a bound token's `cnf.x5t#S256`. */
export function thumbprint(pem: string): string {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('base64url');
}

export type HttpsAnswer = Readonly<{ status: number; headers: Headers; rawHeaders: readonly string[]; body: Buffer }>;

export type HttpsOptions = Readonly<{
  /** PEM of the only CA trusted */
  ca: string;
  /** the local address to connect from (any 127.0.0.0/8 address on loopback): a client of its own */
  localAddress?: string;
  /** a client certificate to present when asked (mutual TLS) */
  certificate?: Pick<ClientCertificate, 'cert' | 'key'>;
}>;

/** One HTTPS request over IPv4, trusting `options.ca` only; the whole answer. */
export function httpsRequest(
  url: string | URL,
  init: Readonly<{ method?: string; headers?: Record<string, string>; body?: string | Buffer }>,
  options: HttpsOptions,
): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const request = https.request(
      new URL(url),
      {
        method: init.method ?? 'GET',
        headers: init.headers,
        ca: options.ca,
        cert: options.certificate?.cert,
        key: options.certificate?.key,
        localAddress: options.localAddress,
        family: 4,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const headers = new Headers();
          for (let i = 0; i < res.rawHeaders.length; i += 2) headers.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
          resolve({ status: res.statusCode ?? 0, headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) });
        });
      },
    );
    request.on('error', reject);
    request.end(init.body);
  });
}

/** A `fetch` for openid-client's and oauth4webapi's `customFetch`: HTTPS trusting `options.ca` only (presenting `options.certificate`). */
export function fetchTrusting(options: HttpsOptions): CustomFetch {
  return async (url, init) => {
    const headers = Object.fromEntries(new Headers(init.headers).entries());
    const answer = await httpsRequest(url, { method: init.method, headers, body: bodyOf(init.body) }, options);
    const empty = answer.status === 204 || answer.status === 304;
    return new Response(empty ? null : new Uint8Array(answer.body), { status: answer.status, headers: answer.headers });
  };
}

function bodyOf(body: FetchBody): string | Buffer | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string' || body instanceof URLSearchParams) return body.toString();
  if (body instanceof Uint8Array) return Buffer.from(body);
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  throw new Error('fetchTrusting: a streamed body is not supported');
}

export type NativeTlsServer = Readonly<{
  server: InProcessServer;
  /** the server's certificate (and the CA a client trusts) */
  certs: TestCertificates;
  /** TLS_CLIENT_CA: the CA of partners' certificates */
  partnerCa: ClientCa;
  /** oauth4webapi options for a request to it trusting its CA, presenting `certificate` */
  over(certificate?: ClientCertificate): { [oauth.customFetch]: CustomFetch };
}>;

/** A server in process on its own database with native TLS (ISSUER https://localhost:PORT) and a partner CA, made in `dir`. */
export async function startNativeTls(dir: string, env: Record<string, string> = {}): Promise<NativeTlsServer> {
  const certs = makeTestCertificates(dir);
  const partnerCa = makeClientCa(dir);
  const port = await freePort();
  const server = await startInProcess(
    instanceEnv(dir, freshDatabaseUrl(dir), {
      PORT: String(port),
      ISSUER: `https://localhost:${port}`,
      TLS_CERT: certs.fullchainPath,
      TLS_KEY: certs.keyPath,
      TLS_CLIENT_CA: partnerCa.caPath,
      ...env,
    }),
  );
  return { server, certs, partnerCa, over: (certificate) => ({ [oauth.customFetch]: fetchTrusting({ ca: certs.ca, certificate }) }) };
}
