/**
 * The reference resource server's price per request: verified `GET /accounts` requests per second
 * at examples/payments-api served over HTTPS, with JWT access tokens (verified offline against
 * the cached JWKS) against opaque ones (introspected at Portcullis, the answer cached up to 30 s),
 * alternating rounds. Both kinds are tokens of one API: a pool of JWTs is issued, the API is
 * switched to `--format opaque`, and a pool of opaque tokens is issued. Run: `npm run
 * bench:payments` (BENCH_SECONDS, BENCH_CONCURRENCY, BENCH_ROUNDS and BENCH_TOKENS override 5,
 * 32, 3 and 200).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTestCertificates } from '../test/support/tls.ts';
import { cliJson } from './cli.ts';
import { benchLimits, clientCredentials, runLoad, table, type LoadResult } from './load.ts';
import { cpuSeconds, freePort, startProcess, stopProcesses } from './process.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const TOKENS = Number(process.env.BENCH_TOKENS ?? 200);
const API = 'https://api.bank.test/payments';
const ROOT = fileURLToPath(new URL('../', import.meta.url));

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-bench-payments-'));
const env: Record<string, string> = {
  DATABASE_URL: `sqlite:${path.join(dir, 'bench.sqlite')}`,
  KEYS_DIR: path.join(dir, 'keys'),
  LOG_LEVEL: 'warn',
  ...benchLimits(),
};

/** `npm run example:payments`, as a user starts it; resolves once it says it listens. */
async function startExample(extraEnv: Record<string, string>): Promise<ChildProcess> {
  const child = spawn('npm', ['run', '--silent', 'example:payments'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...extraEnv },
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (data: Buffer) => {
      output += data.toString();
      if (output.includes('"msg":"listening"')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the example exited ${code}: ${output}`)));
  });
  return child;
}

/** The example's node process (in the process group npm leads), for its CPU time. */
function exampleNodePid(group: number): number {
  for (const entry of fs.readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const pgrp = Number(fs.readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1].split(' ')[2]);
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (pgrp === group && cmdline.includes('start.ts') && cmdline.split('\0')[0].endsWith('node')) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error('the example process was not found');
}

async function main() {
  const port = await freePort();
  const portcullis = await startProcess('src/main.ts', { ...env, PORT: String(port) }, `http://127.0.0.1:${port}/healthz`);
  const issuer = `http://localhost:${port}`;
  await cliJson(env, ['resource', 'create', '--uri', API, '--scope', 'accounts:read', '--default']);
  const introspector = await cliJson(env, ['partner', 'create', '--name', 'Payments API', '--scope', 'accounts:read']);
  await cliJson(env, ['resource', 'update', '--uri', API, '--introspector', introspector.client_id]);
  const partner = await cliJson(env, ['partner', 'create', '--name', 'Bench Bank', '--scope', 'accounts:read']);
  const issue = clientCredentials(issuer, { id: partner.client_id, secret: partner.client_secret }, { scope: 'accounts:read' });
  const pool = async (count: number) => {
    const tokens: string[] = [];
    while (tokens.length < count) tokens.push(((await (await issue()).json()) as { access_token: string }).access_token);
    return tokens;
  };
  const jwts = await pool(TOKENS);
  await cliJson(env, ['resource', 'update', '--uri', API, '--format', 'opaque']);
  let opaque = await pool(1);
  for (let i = 0; i < 50 && opaque[0].includes('.'); i += 1) {
    await new Promise((resolve) => setTimeout(resolve, 100)); // an API change applies within 2 s
    opaque = await pool(1);
  }
  opaque = opaque.concat(await pool(TOKENS - 1));

  const certs = makeTestCertificates(dir);
  const [apiPort, mqttPort] = [await freePort(), await freePort()];
  const example = await startExample({
    PORT: String(apiPort),
    MQTT_PORT: String(mqttPort),
    PORTCULLIS_ISSUER: issuer,
    API_AUDIENCE: API,
    INTROSPECTION_CLIENT_ID: introspector.client_id,
    INTROSPECTION_CLIENT_SECRET: introspector.client_secret,
    TLS_CERT: certs.fullchainPath,
    TLS_KEY: certs.keyPath,
  });
  const examplePid = exampleNodePid(example.pid!);
  const agent = new https.Agent({ keepAlive: true, ca: certs.ca, maxSockets: CONCURRENCY });
  const get = (token: string) =>
    new Promise<Response>((resolve, reject) => {
      const req = https.get(`https://localhost:${apiPort}/accounts`, { agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 0 })));
        res.on('error', reject);
      });
      req.on('error', reject);
    });
  const cycling = (tokens: string[]) => {
    let next = 0;
    return () => get(tokens[(next = (next + 1) % tokens.length)]);
  };

  // a short warm-up of each kind (JIT, keep-alive sockets, JWKS and introspection caches), not counted
  for (const tokens of [jwts, opaque]) await runLoad({ concurrency: CONCURRENCY, seconds: 1, request: cycling(tokens) });
  const results: Record<'jwt' | 'opaque', Array<LoadResult & { cpuMs: number }>> = { jwt: [], opaque: [] };
  for (let round = 0; round < ROUNDS; round += 1) {
    for (const kind of ['jwt', 'opaque'] as const) {
      const cpu0 = cpuSeconds(examplePid, portcullis.pid!);
      const result = await runLoad({ concurrency: CONCURRENCY, seconds: SECONDS, request: cycling(kind === 'jwt' ? jwts : opaque) });
      const cpuMs = ((cpuSeconds(examplePid, portcullis.pid!) - cpu0) * 1000) / Math.max(result.requests, 1);
      results[kind].push({ ...result, cpuMs });
    }
  }
  agent.destroy();
  process.kill(-example.pid!, 'SIGTERM');
  await stopProcesses();

  const median = (items: Array<LoadResult & { cpuMs: number }>) =>
    [...items].sort((a, b) => a.perSecond - b.perSecond)[Math.floor(items.length / 2)];
  const rows = (['jwt', 'opaque'] as const).map((kind) => {
    const m = median(results[kind]);
    return {
      tokens: kind,
      'verified req/s (median round)': Math.round(m.perSecond),
      'each round': results[kind].map((r) => Math.round(r.perSecond)).join(' / '),
      'CPU ms/req (API + Portcullis)': m.cpuMs,
      'p50 ms': m.p50,
      'p99 ms': m.p99,
      errors: results[kind].reduce((sum, r) => sum + r.errors, 0),
    };
  });
  console.log(table(rows));
  console.log(`opaque / jwt: ${(median(results.opaque).perSecond / median(results.jwt).perSecond).toFixed(2)}×`);
  console.log(`${ROUNDS} alternating rounds of ${SECONDS} s, concurrency ${CONCURRENCY}, ${TOKENS} tokens of each kind, HTTPS, keep-alive`);
  console.log('rerun: npm run bench:payments   (BENCH_SECONDS, BENCH_CONCURRENCY, BENCH_ROUNDS, BENCH_TOKENS)');
}

main().catch(async (error: unknown) => {
  console.error(error);
  await stopProcesses();
  process.exit(1);
});
