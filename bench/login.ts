/**
 * Full browser-less logins per second: authorization request with PKCE → password → TOTP →
 * consent → code exchange (ID token, access token, refresh token), each person a fresh user
 * (a TOTP time step is single use per person), at a concurrency of 32, against one Portcullis
 * on SQLite. The password hash is named (read off a stored hash, so the same file measures an
 * older checkout too) and its CPU cost measured alone beside it; the CPU a login costs besides
 * the hash is the server's CPU per login minus that.
 * Run: `npm run bench:login` (BENCH_LOGINS overrides 200, BENCH_CONCURRENCY 32; BENCH_CPU_PROF=DIR
 * writes the server's CPU profile there).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as client from 'openid-client';
import { hashPassword, verifyPassword } from '../src/accounts/password.service.ts';
import { totpCode } from '../src/accounts/totp.service.ts';
import { httpLogin } from '../test/support/http-login.ts';
import { cliJson } from './cli.ts';
import { benchLimits, table } from './load.ts';
import { cpuSeconds, freePort, peakRssMiB, startProcess, stopProcesses } from './process.ts';

const LOGINS = Number(process.env.BENCH_LOGINS ?? 200);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const PASSWORD = 'correct horse battery staple';
const REDIRECT = 'http://127.0.0.1:9/callback';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-bench-login-'));
const env: Record<string, string> = {
  DATABASE_URL: `sqlite:${path.join(dir, 'bench.sqlite')}`,
  KEYS_DIR: path.join(dir, 'keys'),
  LOG_LEVEL: 'warn',
  ...benchLimits(['RATE_LIMIT_AUTH_PER_IP', 'RATE_LIMIT_LOGIN_PER_IP']),
};

/** `argon2id m=19456,t=2,p=1` or `scrypt N=32768,r=8,p=1`, from the stored string itself. */
function hashNamed(stored: string): string {
  const argon = /^\$(argon2id)\$v=\d+\$([^$]+)\$/.exec(stored);
  const scrypt = /^(scrypt)\$([^$]+)\$/.exec(stored);
  const [, name, params] = argon ?? scrypt ?? [undefined, 'unknown', ''];
  return `${name} ${params}`;
}

/** Wall and CPU (all threads: the hash runs in libuv's pool) milliseconds per call, one at a time. */
async function cost(run: () => Promise<unknown>, times = 10): Promise<{ wallMs: number; cpuMs: number }> {
  await run();
  const started = performance.now();
  const cpu = process.cpuUsage();
  for (let i = 0; i < times; i += 1) await run();
  const used = process.cpuUsage(cpu);
  return { wallMs: (performance.now() - started) / times, cpuMs: (used.user + used.system) / 1000 / times };
}

async function main() {
  const PORT = await freePort();
  const ISSUER = `http://localhost:${PORT}`;
  // the cost every login pays once (and every failed one too): one verification
  const stored = await hashPassword(PASSWORD);
  const hash = { name: hashNamed(stored), ...(await cost(() => verifyPassword(PASSWORD, stored))) };

  await cliJson(env, [
    'resource',
    'create',
    '--uri',
    'https://api.bench.test/payments',
    '--scope',
    'payments:read',
    '--default',
    '--describe',
    'payments:read=See your payments',
  ]);
  const partner = await cliJson(env, [
    'partner',
    'create',
    '--name',
    'Bench Budgeting',
    '--scope',
    'payments:read',
    '--grant',
    'authorization_code',
    '--redirect-uri',
    REDIRECT,
  ]);
  process.stdout.write(`creating ${LOGINS} users with TOTP…\n`);
  const secrets: { username: string; secret: string }[] = [];
  for (let i = 0; i < LOGINS; i += 8) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(8, LOGINS - i) }, (_, j) =>
        cliJson(env, ['user', 'create', '--username', `person${i + j}`, '--password-stdin', '--with-totp'], PASSWORD),
      ),
    );
    for (const user of batch) secrets.push({ username: user.username, secret: new URL(user.totp_uri).searchParams.get('secret')! });
  }

  // BENCH_CPU_PROF=DIR: the server writes a V8 CPU profile of its main thread there when it stops
  const profile: Record<string, string> = process.env.BENCH_CPU_PROF
    ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${path.resolve(process.env.BENCH_CPU_PROF)}` }
    : {};
  const server = await startProcess('src/main.ts', { ...env, ...profile, PORT: String(PORT), ISSUER }, `http://127.0.0.1:${PORT}/readyz`);
  const config = await client.discovery(new URL(ISSUER), partner.client_id, partner.client_secret, undefined, {
    execute: [client.allowInsecureRequests],
  });

  const latencies: number[] = [];
  let errors = 0;
  let firstError = '';
  const queue = [...secrets];
  const cpuBefore = cpuSeconds(server.pid!);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let person = queue.shift(); person; person = queue.shift()) {
        const begin = performance.now();
        try {
          const verifier = client.randomPKCECodeVerifier();
          const state = client.randomState();
          const url = client.buildAuthorizationUrl(config, {
            redirect_uri: REDIRECT,
            scope: 'openid payments:read',
            state,
            code_challenge: await client.calculatePKCECodeChallenge(verifier),
            code_challenge_method: 'S256',
          });
          const { callback } = await httpLogin({
            authorizationUrl: url,
            redirectUri: REDIRECT,
            username: person.username,
            password: PASSWORD,
            code: () => totpCode(person.secret, Date.now()),
            hosts: [`http://127.0.0.1:${PORT}`],
          });
          const tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state });
          if (!tokens.id_token || !tokens.refresh_token) throw new Error('incomplete token response');
          latencies.push(performance.now() - begin);
        } catch (error) {
          errors += 1;
          firstError ||= (error as Error).message;
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpu = cpuSeconds(server.pid!) - cpuBefore;
  latencies.sort((a, b) => a - b);
  const pick = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;

  process.stdout.write(
    `\nfull login (authorize → password → TOTP → consent → code exchange), concurrency ${CONCURRENCY}, ${LOGINS} people, node ${process.version}, ${os.cpus().length} cores\n`,
  );
  process.stdout.write(
    `password hash: ${hash.name}: ${hash.cpuMs.toFixed(1)} ms CPU (${hash.wallMs.toFixed(1)} ms wall) per verification on this machine\n\n`,
  );
  const cpuPerLogin = (cpu * 1000) / Math.max(1, latencies.length);
  process.stdout.write(
    `${table([
      {
        target: `Portcullis (SQLite), ${hash.name.split(' ')[0]}`,
        'logins/s': latencies.length / seconds,
        'logins/s per vCPU': latencies.length / seconds / os.cpus().length,
        'server CPU ms/login': cpuPerLogin,
        'CPU ms/login besides the hash': cpuPerLogin - hash.cpuMs,
        'p50 ms': pick(0.5),
        'p99 ms': pick(0.99),
        errors,
        'peak RSS MiB': peakRssMiB(server.pid!),
      },
    ])}\n`,
  );
  if (firstError) process.stdout.write(`first error: ${firstError}\n`);
  process.stdout.write('rerun: npm run bench:login\n');
}

try {
  await main();
} finally {
  await stopProcesses();
  fs.rmSync(dir, { recursive: true, force: true });
}
