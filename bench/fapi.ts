/**
 * The price of financial grade: client-credentials tokens for a partner authenticating with a
 * client secret (bearer tokens) against a `fapi2` partner authenticating with private_key_jwt
 * (ES256 assertion, single use) and binding its tokens with DPoP (ES256 proof, server nonce,
 * single use), on one Portcullis server, alternating. Run: `npm run bench:fapi` (BENCH_SECONDS,
 * BENCH_CONCURRENCY and BENCH_ROUNDS override 8, 32 and 3; BENCH_DATABASE_URL another database;
 * BENCH_CPU_PROF=DIR a V8 CPU profile of the server).
 */
import type { ChildProcess } from 'node:child_process';
import { randomUUID, type webcrypto } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as jose from 'jose';
import { cliJson } from './cli.ts';
import { benchLimits, clientCredentials, runLoad, table, type LoadResult } from './load.ts';
import { cpuSeconds, freePort, peakRssMiB, startProcess, stopProcesses } from './process.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-bench-fapi-'));
const env: Record<string, string> = {
  DATABASE_URL: process.env.BENCH_DATABASE_URL ?? `sqlite:${path.join(dir, 'bench.sqlite')}`,
  KEYS_DIR: path.join(dir, 'keys'),
  LOG_LEVEL: 'warn',
  ...benchLimits(),
};

/** A fapi2 partner's token request: a fresh client assertion and DPoP proof each time, the server's latest nonce. */
function fapiRequest(
  base: string,
  issuer: string,
  partner: { clientId: string; kid: string; key: webcrypto.CryptoKey },
  dpop: webcrypto.CryptoKeyPair,
  jwk: jose.JWK,
) {
  let nonce = '';
  let retries = 0;
  const url = `${base}/token`;
  const send = async () => {
    const now = Math.floor(Date.now() / 1000);
    const assertion = await new jose.SignJWT({ jti: randomUUID() })
      .setProtectedHeader({ alg: 'ES256', kid: partner.kid })
      .setIssuer(partner.clientId)
      .setSubject(partner.clientId)
      .setAudience(issuer)
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .sign(partner.key);
    const proof = await new jose.SignJWT({ htm: 'POST', htu: url, jti: randomUUID(), ...(nonce ? { nonce } : {}) })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
      .setIssuedAt(now)
      .sign(dpop.privateKey);
    const body = new URLSearchParams({
      grant_type: 'client_credentials',
      scope: 'payments:read',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
    }).toString();
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: proof }, body });
    nonce = res.headers.get('dpop-nonce') ?? nonce;
    return res;
  };
  return {
    retries: () => retries,
    request: async () => {
      const first = await send();
      if (first.status !== 400 || first.headers.get('dpop-nonce') === null) return first;
      await first.arrayBuffer();
      retries += 1;
      return send();
    },
  };
}

async function main() {
  const port = await freePort();
  const issuer = `http://localhost:${port}`;
  const base = `http://127.0.0.1:${port}`;
  await cliJson(env, ['resource', 'create', '--uri', 'https://api.bench.test/payments', '--scope', 'payments:read', '--default']);
  const secretPartner = await cliJson(env, ['partner', 'create', '--name', 'Secret Bank', '--scope', 'payments:read']);
  const { privateKey, publicKey } = await jose.generateKeyPair('ES256');
  const kid = 'bench-key';
  const jwksFile = path.join(dir, 'jwks.json');
  fs.writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await jose.exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }] }));
  const fapiPartner = await cliJson(env, [
    'partner',
    'create',
    '--name',
    'FAPI Bank',
    '--scope',
    'payments:read',
    '--profile',
    'fapi2',
    '--jwks-file',
    jwksFile,
  ]);
  const dpop = await jose.generateKeyPair('ES256');
  const { kty, crv, x, y } = await jose.exportJWK(dpop.publicKey);

  // BENCH_CPU_PROF=DIR: the server writes a V8 CPU profile of its main thread there when it stops
  const profile: Record<string, string> = process.env.BENCH_CPU_PROF
    ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${path.resolve(process.env.BENCH_CPU_PROF)}` }
    : {};
  const server = await startProcess('src/main.ts', { ...env, ...profile, PORT: String(port), ISSUER: issuer }, `${base}/readyz`);
  const fapi = fapiRequest(base, issuer, { clientId: fapiPartner.client_id, kid, key: privateKey }, dpop, { kty, crv, x, y });
  const requests = {
    secret: clientCredentials(base, { id: secretPartner.client_id, secret: secretPartner.client_secret }, { scope: 'payments:read' }),
    fapi: fapi.request,
  };
  for (const request of Object.values(requests)) await runLoad({ concurrency: CONCURRENCY, seconds: 2, request }); // warm-up

  const results: Record<keyof typeof requests, LoadResult[]> = { secret: [], fapi: [] };
  const cpu = { secret: 0, fapi: 0 };
  const measure = async (name: keyof typeof requests, child: ChildProcess) => {
    const before = cpuSeconds(child.pid!);
    results[name].push(await runLoad({ concurrency: CONCURRENCY, seconds: SECONDS, request: requests[name] }));
    cpu[name] += cpuSeconds(child.pid!) - before;
  };
  for (let round = 0; round < ROUNDS; round += 1) {
    await measure('secret', server);
    await measure('fapi', server);
  }
  const median = (values: number[]) => [...values].sort((p, q) => p - q)[Math.floor(values.length / 2)];
  const summary = (name: keyof typeof requests, label: string) => {
    const runs = results[name];
    const count = runs.reduce((n, r) => n + r.requests, 0);
    return {
      partner: label,
      'tokens/s (median round)': median(runs.map((r) => r.perSecond)),
      'server CPU ms/token': (cpu[name] * 1000) / count,
      'p50 ms': median(runs.map((r) => r.p50)),
      'p99 ms': median(runs.map((r) => r.p99)),
      errors: runs.reduce((n, r) => n + r.errors, 0),
      statuses: JSON.stringify(
        runs.reduce<Record<string, number>>((all, r) => {
          for (const [k, v] of Object.entries(r.statuses)) all[k] = (all[k] ?? 0) + (v ?? 0);
          return all;
        }, {}),
      ),
    };
  };
  const rows = [summary('secret', 'client_secret_basic, bearer'), summary('fapi', 'fapi2: private_key_jwt + DPoP')];
  process.stdout.write(
    `\nclient_credentials on ${env.DATABASE_URL.split(':')[0]}, concurrency ${CONCURRENCY}, ${ROUNDS} alternating rounds of ${SECONDS}s, node ${process.version}, ${os.cpus().length} cores; peak RSS ${peakRssMiB(server.pid!).toFixed(0)} MiB\n\n`,
  );
  process.stdout.write(`${table(rows)}\n\n`);
  process.stdout.write(
    `ratio fapi2 / secret, tokens/s: ${(rows[1]['tokens/s (median round)'] / rows[0]['tokens/s (median round)']).toFixed(2)}\n`,
  );
  process.stdout.write(
    `ratio secret / fapi2, server CPU per token: ${(rows[1]['server CPU ms/token'] / rows[0]['server CPU ms/token']).toFixed(2)}× the CPU\n`,
  );
  process.stdout.write(
    `DPoP nonce retries: ${fapi.retries()} (a nonce changes every few minutes; each change costs one retry per worker)\n`,
  );
  process.stdout.write(
    'the load generator signs an assertion and a proof per request on the same two cores: tokens/s understates a dedicated server; CPU per token does not\n',
  );
  process.stdout.write('rerun: npm run bench:fapi\n');
}

try {
  await main();
} finally {
  await stopProcesses();
  fs.rmSync(dir, { recursive: true, force: true });
}
