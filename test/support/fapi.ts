import { randomBytes, randomUUID, type webcrypto } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import * as jose from 'jose';
import * as oauth from 'oauth4webapi';
import { cli, tempDir } from './harness.ts';
import { form } from './http.ts';

// Partners that prove themselves with their own keys (issue 11): key pairs made in the test,
// registered with `partner create --jwks-file`, and the requests they sign — through
// oauth4webapi for the flows, by hand (jose) for the refusals a real client would never send.

export type Alg = 'ES256' | 'PS256';

export type KeyPartner = Readonly<{
  clientId: string;
  kid: string;
  alg: Alg;
  privateKey: webcrypto.CryptoKey;
  publicJwk: jose.JWK;
  /** the token endpoint's answer to `partner create` */
  created: Record<string, any>;
}>;

/** A signing key pair with its public JWK (kid, alg, use). */
export async function partnerKey(alg: Alg = 'ES256') {
  const { privateKey, publicKey } = await jose.generateKeyPair(alg, { extractable: true });
  const kid = `k-${randomBytes(4).toString('hex')}`;
  const publicJwk = { ...(await jose.exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { privateKey, publicKey, kid, publicJwk };
}

/** Writes a JSON Web Key Set file for `--jwks-file`. */
export function jwksFile(keys: jose.JWK[], dir = tempDir('jwks-')): string {
  const file = path.join(dir, `jwks-${randomBytes(3).toString('hex')}.json`);
  fs.writeFileSync(file, JSON.stringify({ keys }));
  return file;
}

/** `partner create … --auth-method private_key_jwt --jwks-file` with a fresh key. */
export async function createKeyPartner(
  env: Record<string, string>,
  options: { name?: string; scope?: string; alg?: Alg; profile?: 'fapi2' | 'baseline'; extra?: string[] } = {},
): Promise<KeyPartner> {
  const alg = options.alg ?? 'ES256';
  const key = await partnerKey(alg);
  const created = await cli(
    env,
    'partner',
    'create',
    '--name',
    options.name ?? `Key Bank ${randomBytes(3).toString('hex')}`,
    '--scope',
    options.scope ?? 'payments:read',
    '--auth-method',
    'private_key_jwt',
    '--jwks-file',
    jwksFile([key.publicJwk]),
    '--profile',
    options.profile ?? 'fapi2',
    ...(options.extra ?? []),
  );
  if (created.code !== 0) throw new Error(created.stderr);
  return {
    clientId: created.json.client_id,
    kid: key.kid,
    alg,
    privateKey: key.privateKey,
    publicJwk: key.publicJwk,
    created: created.json,
  };
}

const INSECURE = { [oauth.allowInsecureRequests]: true } as const;

/** oauth4webapi's view of a key partner: client metadata and its client authentication. */
export function clientOf(partner: KeyPartner) {
  const client: oauth.Client = { client_id: partner.clientId, token_endpoint_auth_signing_alg: partner.alg };
  const auth = oauth.PrivateKeyJwt({ key: partner.privateKey, kid: partner.kid });
  return { client, auth };
}

/** A DPoP key pair and oauth4webapi's handle for it (it keeps the server's nonce). */
export async function dpopHandle(client: oauth.Client, alg: Alg = 'ES256') {
  const keyPair = await jose.generateKeyPair(alg, { extractable: true });
  return { keyPair, handle: oauth.DPoP(client, keyPair) };
}

/** Runs an oauth4webapi request + process pair, once more if the server asked for a DPoP nonce. */
export async function withNonceRetry<T>(attempt: () => Promise<T>): Promise<T> {
  try {
    return await attempt();
  } catch (error) {
    if (oauth.isDPoPNonceError(error)) return attempt();
    throw error;
  }
}

/** A client_credentials token through oauth4webapi: private_key_jwt, and DPoP when a handle is given. */
export async function clientCredentials(
  as: oauth.AuthorizationServer,
  partner: KeyPartner,
  options: { scope?: string; dpop?: oauth.DPoPHandle; fetch?: typeof fetch } = {},
): Promise<oauth.TokenEndpointResponse> {
  const { client, auth } = clientOf(partner);
  return withNonceRetry(async () => {
    const response = await oauth.clientCredentialsGrantRequest(
      as,
      client,
      auth,
      { scope: options.scope ?? 'payments:read' },
      {
        ...INSECURE,
        ...(options.dpop ? { DPoP: options.dpop } : {}),
        ...(options.fetch ? { [oauth.customFetch]: options.fetch } : {}),
      },
    );
    return oauth.processClientCredentialsResponse(as, client, response);
  });
}

/** A client assertion signed by hand: every claim can be bent for a refusal test. */
export async function assertion(
  partner: Pick<KeyPartner, 'clientId' | 'kid' | 'privateKey'>,
  audience: string | string[],
  options: { alg?: string; jti?: string; iat?: number; exp?: number; key?: webcrypto.CryptoKey | Uint8Array; kid?: string } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new jose.SignJWT({ jti: options.jti ?? randomUUID() })
    .setProtectedHeader({ alg: options.alg ?? 'ES256', kid: options.kid ?? partner.kid })
    .setIssuer(partner.clientId)
    .setSubject(partner.clientId)
    .setAudience(audience)
    .setIssuedAt(options.iat ?? now)
    .setExpirationTime(options.exp ?? now + 60)
    .sign(options.key ?? partner.privateKey);
}

/** An unsigned (`alg: none`) client assertion. */
export function unsignedAssertion(clientId: string, audience: string): string {
  const now = Math.floor(Date.now() / 1000);
  return new jose.UnsecuredJWT({ jti: randomUUID() })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(audience)
    .setIssuedAt(now)
    .setExpirationTime(now + 60)
    .encode();
}

/** A DPoP proof signed by hand (RFC 9449 §4.2). */
export async function dpopProof(
  keyPair: webcrypto.CryptoKeyPair,
  claims: { htm: string; htu: string; nonce?: string; ath?: string; jti?: string; iat?: number },
): Promise<string> {
  const jwk = await jose.exportJWK(keyPair.publicKey);
  return new jose.SignJWT({
    htm: claims.htm,
    htu: claims.htu,
    jti: claims.jti ?? randomUUID(),
    ...(claims.nonce ? { nonce: claims.nonce } : {}),
    ...(claims.ath ? { ath: claims.ath } : {}),
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: { kty: jwk.kty!, crv: jwk.crv!, x: jwk.x!, y: jwk.y! } })
    .setIssuedAt(claims.iat ?? Math.floor(Date.now() / 1000))
    .sign(keyPair.privateKey);
}

export type RawAnswer = { status: number; body: Record<string, any>; headers: Headers };

/**
 * An HTTP request with node:http, which (unlike fetch) sends the Host header it is given: instances
 * in a test listen on their own ports but answer as one public issuer, as behind a load balancer.
 */
function request(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: init.method ?? 'GET', headers: init.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const headers = new Headers();
        for (const [name, value] of Object.entries(res.headers)) if (value !== undefined) headers.set(name, [value].flat().join(', '));
        const status = res.statusCode ?? 0;
        resolve(new Response([204, 304].includes(status) ? null : Buffer.concat(chunks), { status, headers }));
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

/** A fetch for oauth4webapi that sends requests for `issuer` to `local` (one instance), Host kept. */
export function fetchVia(issuer: string, local: string): typeof fetch {
  const { host } = new URL(issuer);
  return async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const headers: Record<string, string> = { host };
    new Headers(init?.headers).forEach((value, name) => (headers[name] = value));
    const body = typeof init?.body === 'string' ? init.body : init?.body instanceof URLSearchParams ? init.body.toString() : undefined;
    return request(`${local}${url.pathname}${url.search}`, { method: init?.method ?? 'GET', headers, body });
  };
}

/** POST form fields with extra headers (a `host` header is sent as given): status, JSON body, headers. */
export async function post(url: string, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<RawAnswer> {
  const res = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: form(fields),
  });
  const text = await res.text();
  let body: Record<string, any>;
  try {
    body = JSON.parse(text) as Record<string, any>;
  } catch {
    body = { text };
  }
  return { status: res.status, body, headers: res.headers };
}

/** client_credentials fields with a private_key_jwt assertion. */
export function assertionFields(clientAssertion: string, scope = 'payments:read'): Record<string, string> {
  return {
    grant_type: 'client_credentials',
    scope,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: clientAssertion,
  };
}

/** A token request with a DPoP proof, getting the server's nonce first (the first try answers use_dpop_nonce). */
export async function nonceFor(
  url: string,
  keyPair: webcrypto.CryptoKeyPair,
  fields: () => Promise<Record<string, string>>,
  options: { htu?: string; headers?: Record<string, string> } = {},
): Promise<string> {
  const first = await post(url, await fields(), {
    ...options.headers,
    dpop: await dpopProof(keyPair, { htm: 'POST', htu: options.htu ?? url }),
  });
  const nonce = first.headers.get('dpop-nonce');
  if (!nonce) throw new Error(`no DPoP-Nonce: ${first.status} ${JSON.stringify(first.body)}`);
  return nonce;
}
