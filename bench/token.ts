/**
 * Client-credentials throughput and latency: Portcullis (SQLite, hashed secrets, partner and
 * resource lookups) against a bare oidc-provider with its in-memory adapter and the same key,
 * run side by side, alternating, on this machine. Run: `npm run bench` (BENCH_SECONDS,
 * BENCH_CONCURRENCY and BENCH_ROUNDS override 8, 32 and 2).
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config/config.ts';
import { loadKeySet } from '../src/keys/signing-key.service.ts';
import { openStorage } from '../src/storage.ts';
import { cliJson } from './cli.ts';
import { benchLimits, clientCredentials, runLoad, table, type LoadResult } from './load.ts';
import { cpuSeconds, freePort, peakRssMiB, startProcess, stopProcesses } from './process.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-bench-'));
const env: Record<string, string> = {
  DATABASE_URL: `sqlite:${path.join(dir, 'bench.sqlite')}`,
  KEYS_DIR: path.join(dir, 'keys'),
  LOG_LEVEL: 'warn',
  ...benchLimits(),
};

async function main() {
  const PORTS = { portcullis: await freePort(), bare: await freePort() };
  const resource = 'https://api.bench.test/payments';
  const scope = 'payments:read';
  await cliJson(env, ['resource', 'create', '--uri', resource, '--scope', 'payments:read payments:write', '--ttl', '600', '--default']);
  const partner = await cliJson(env, ['partner', 'create', '--name', 'Bench Bank', '--scope', scope]);

  const portcullis = await startProcess(
    'src/main.ts',
    { ...env, PORT: String(PORTS.portcullis), ISSUER: `http://localhost:${PORTS.portcullis}` },
    `http://127.0.0.1:${PORTS.portcullis}/readyz`,
  );
  // the same signing key as Portcullis, read back through its own keyring
  const { db, keyring } = await openStorage(loadConfig(env));
  const keySet = await loadKeySet(db, keyring);
  await db.destroy();
  const bare = await startProcess(
    'bench/bare-provider.ts',
    {
      PORT: String(PORTS.bare),
      ISSUER: `http://localhost:${PORTS.bare}`,
      BARE_CONFIG: JSON.stringify({
        jwk: keySet.keys[0],
        clientId: partner.client_id,
        clientSecret: partner.client_secret,
        resource,
        scope,
        ttl: 600,
      }),
    },
    `http://127.0.0.1:${PORTS.bare}/.well-known/openid-configuration`,
  );

  const request = (port: number) =>
    clientCredentials(`http://127.0.0.1:${port}`, { id: partner.client_id, secret: partner.client_secret }, { scope });

  for (const port of [PORTS.portcullis, PORTS.bare]) await runLoad({ concurrency: CONCURRENCY, seconds: 2, request: request(port) }); // warm-up

  const results: Record<'portcullis' | 'bare', LoadResult[]> = { portcullis: [], bare: [] };
  const cpu = { portcullis: 0, bare: 0 };
  const measure = async (name: 'portcullis' | 'bare', child: ChildProcess) => {
    const before = cpuSeconds(child.pid!);
    results[name].push(await runLoad({ concurrency: CONCURRENCY, seconds: SECONDS, request: request(PORTS[name]) }));
    cpu[name] += cpuSeconds(child.pid!) - before;
  };
  for (let round = 0; round < ROUNDS; round += 1) {
    await measure('bare', bare);
    await measure('portcullis', portcullis);
  }

  const summary = (name: 'portcullis' | 'bare', pid: number) => {
    const runs = results[name];
    const requests = runs.reduce((n, r) => n + r.requests, 0);
    const seconds = runs.reduce((n, r) => n + r.seconds, 0);
    return {
      target: name === 'bare' ? 'bare oidc-provider (memory)' : 'Portcullis (SQLite)',
      'tokens/s': requests / seconds,
      'server CPU ms/token': (cpu[name] * 1000) / requests,
      'p50 ms': runs.reduce((n, r) => n + r.p50, 0) / runs.length,
      'p99 ms': runs.reduce((n, r) => n + r.p99, 0) / runs.length,
      errors: runs.reduce((n, r) => n + r.errors, 0),
      'peak RSS MiB': peakRssMiB(pid),
    };
  };
  const rows = [summary('bare', bare.pid!), summary('portcullis', portcullis.pid!)];
  const ratio = rows[1]['tokens/s'] / rows[0]['tokens/s'];
  const cpuRatio = rows[0]['server CPU ms/token'] / rows[1]['server CPU ms/token'];
  process.stdout.write(
    `\nclient_credentials, concurrency ${CONCURRENCY}, ${ROUNDS} alternating rounds of ${SECONDS}s each, node ${process.version}, ${os.cpus().length} cores\n\n`,
  );
  process.stdout.write(`${table(rows)}\n\nratio Portcullis / bare, tokens/s: ${ratio.toFixed(2)} (goal >= 0.80)\n`);
  process.stdout.write(`ratio Portcullis / bare, tokens per server CPU second: ${cpuRatio.toFixed(2)} (steadier on a shared machine)\n`);
  process.stdout.write('rerun: npm run bench\n');
}

try {
  await main();
} finally {
  await stopProcesses();
  fs.rmSync(dir, { recursive: true, force: true });
}
