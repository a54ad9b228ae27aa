import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import type { CustomFetch } from 'openid-client';

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

export type HttpsAnswer = Readonly<{ status: number; headers: Headers; rawHeaders: readonly string[]; body: Buffer }>;

export type HttpsOptions = Readonly<{
  /** PEM of the only CA trusted */
  ca: string;
  /** the local address to connect from (any 127.0.0.0/8 address on loopback): a client of its own */
  localAddress?: string;
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
      { method: init.method ?? 'GET', headers: init.headers, ca: options.ca, localAddress: options.localAddress, family: 4, agent: false },
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

/** A `fetch` for openid-client's `customFetch`: HTTPS trusting `options.ca` only. */
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
