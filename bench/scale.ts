/**
 * Scale-out benchmark: client-credentials tokens/s on SQLite, on PostgreSQL and with WORKERS=2
 * (PostgreSQL), and opaque-token introspection/s, each as a ratio to a bare oidc-provider with
 * its in-memory adapter, run side by side in one run on this machine; peak RSS per process.
 * Run: `npm run bench:scale` (BENCH_SECONDS, BENCH_CONCURRENCY, BENCH_PG override 6, 32 and
 * postgres://postgres@127.0.0.1:5432/test). About 80 s.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config/config.ts';
import { loadKeySet } from '../src/keys/signing-key.service.ts';
import { openStorage } from '../src/storage.ts';
import { dropSchema, JWT_API, OPAQUE_API, seedApis } from './apis.ts';
import { cliJson } from './cli.ts';
import { benchLimits, clientCredentials, runLoad, table, type LoadResult } from './load.ts';
import { cpuSeconds, freePort, peakRssMiB, startProcess, stopProcesses } from './process.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const PG = process.env.BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-bench-scale-'));
const schema = `bench_${randomBytes(4).toString('hex')}`;
const kek = randomBytes(32).toString('base64url'); // one KEK for both databases: the bare provider reuses the key
const engines = {
  sqlite: { DATABASE_URL: `sqlite:${path.join(dir, 'bench.sqlite')}`, PORTCULLIS_KEK: kek, LOG_LEVEL: 'warn', ...benchLimits() },
  postgres: {
    DATABASE_URL: `${PG}${PG.includes('?') ? '&' : '?'}schema=${schema}`,
    PORTCULLIS_KEK: kek,
    LOG_LEVEL: 'warn',
    ...benchLimits(),
  },
};
type Engine = keyof typeof engines;

function seed(env: Record<string, string>) {
  return seedApis((argv) => cliJson(env, argv));
}

async function start(script: string, env: Record<string, string>, readyPath: string) {
  const port = await freePort();
  const child = await startProcess(
    script,
    { ISSUER: `http://localhost:${port}`, ...env, PORT: String(port) },
    `http://127.0.0.1:${port}${readyPath}`,
  );
  return { child, base: `http://127.0.0.1:${port}` };
}

/** The process and, in cluster mode, its workers. */
function family(pid: number): number[] {
  try {
    const kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number);
    return [pid, ...kids];
  } catch {
    return [pid];
  }
}

type Target = { name: string; child: ChildProcess; base: string; secret: string; clientId: string };

function basicAuth(target: Target): string {
  return `Basic ${Buffer.from(`${target.clientId}:${target.secret}`).toString('base64')}`;
}

function tokenRequest(target: Target, api: { uri: string; scope: string }) {
  return clientCredentials(target.base, { id: target.clientId, secret: target.secret }, { scope: api.scope, resource: api.uri });
}

/** Introspects a pool of live opaque tokens round robin (the bare in-memory adapter keeps ~1,000). */
async function introspectionRequest(target: Target) {
  const tokens: string[] = [];
  for (let i = 0; i < 200; i++) {
    const res = await tokenRequest(target, OPAQUE_API)();
    tokens.push(((await res.json()) as { access_token: string }).access_token);
  }
  const authorization = basicAuth(target);
  let next = 0;
  return () => {
    const body = new URLSearchParams({ token: tokens[next++ % tokens.length] }).toString();
    return fetch(`${target.base}/token/introspection`, {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
  };
}

type Row = { row: string; target: Target; result: LoadResult; cpuMsPerRequest: number };

async function measure(row: string, target: Target, request: () => Promise<Response>): Promise<Row> {
  await runLoad({ concurrency: CONCURRENCY, seconds: 1.5, request }); // warm-up
  const pids = family(target.child.pid!);
  const before = cpuSeconds(...pids);
  const result = await runLoad({ concurrency: CONCURRENCY, seconds: SECONDS, request });
  const cpuMsPerRequest = ((cpuSeconds(...pids) - before) * 1000) / Math.max(1, result.requests);
  return { row, target, result, cpuMsPerRequest };
}

async function main() {
  const partners = { sqlite: await seed(engines.sqlite), postgres: await seed(engines.postgres) };
  const target = async (name: string, engine: Engine | 'bare', extra: Record<string, string> = {}): Promise<Target> => {
    if (engine === 'bare') {
      // the same signing key as Portcullis on SQLite (made at its start), read through its keyring
      const { db, keyring } = await openStorage(loadConfig(engines.sqlite));
      const keySet = await loadKeySet(db, keyring);
      await db.destroy();
      const partner = partners.sqlite;
      const config = {
        jwk: keySet.keys[0],
        clientId: partner.client_id,
        clientSecret: partner.client_secret,
        resource: JWT_API.uri,
        scope: JWT_API.scope,
        ttl: 600,
        opaqueResource: OPAQUE_API.uri,
        opaqueScope: OPAQUE_API.scope,
      };
      const { child, base } = await start(
        'bench/bare-provider.ts',
        { BARE_CONFIG: JSON.stringify(config) },
        '/.well-known/openid-configuration',
      );
      return { name, child, base, clientId: partner.client_id, secret: partner.client_secret };
    }
    const { child, base } = await start('src/main.ts', { ...engines[engine], ...extra }, '/readyz');
    return { name, child, base, clientId: partners[engine].client_id, secret: partners[engine].client_secret };
  };

  const sqlite = await target('Portcullis, SQLite', 'sqlite');
  const bare = await target('bare oidc-provider (memory)', 'bare');
  const postgres = await target('Portcullis, PostgreSQL', 'postgres');
  const workers = await target('Portcullis, PostgreSQL, WORKERS=2', 'postgres', { WORKERS: '2' });

  const rows: Row[] = [];
  // one target at a time, so each has the machine to itself
  rows.push(await measure('client credentials (JWT)', bare, tokenRequest(bare, JWT_API)));
  rows.push(await measure('client credentials (JWT)', sqlite, tokenRequest(sqlite, JWT_API)));
  rows.push(await measure('client credentials (JWT)', postgres, tokenRequest(postgres, JWT_API)));
  rows.push(await measure('client credentials (JWT)', workers, tokenRequest(workers, JWT_API)));
  // the baseline again, last: its mean over both runs absorbs drift on a shared machine
  rows.push(await measure('client credentials (JWT)', bare, tokenRequest(bare, JWT_API)));
  rows.push(await measure('introspection (opaque)', bare, await introspectionRequest(bare)));
  rows.push(await measure('introspection (opaque)', sqlite, await introspectionRequest(sqlite)));
  rows.push(await measure('introspection (opaque)', postgres, await introspectionRequest(postgres)));

  const baseline = (row: string) => {
    const runs = rows.filter((r) => r.row === row && r.target === bare);
    return runs.reduce((sum, r) => sum + r.result.perSecond, 0) / runs.length;
  };
  const printed = rows.map(({ row, target: t, result, cpuMsPerRequest }) => {
    const pids = family(t.child.pid!);
    return {
      measure: row,
      target: t.name,
      'req/s': result.perSecond,
      'x bare': result.perSecond / baseline(row),
      'p50 ms': result.p50,
      'p99 ms': result.p99,
      'server CPU ms/req': cpuMsPerRequest,
      errors: result.errors,
      'peak RSS MiB/process': pids.map((pid) => peakRssMiB(pid).toFixed(0)).join(' + '),
    };
  });
  const perSecond = (row: string, t: Target) => rows.find((r) => r.row === row && r.target === t)!.result.perSecond;
  process.stdout.write(
    `\nPortcullis scale benchmark: concurrency ${CONCURRENCY}, ${SECONDS} s a row, ${os.cpus().length} cores shared with the load generator\n\n`,
  );
  process.stdout.write(`${table(printed)}\n\n`);
  process.stdout.write('x bare: against the mean of the bare runs of that measure (client credentials: first and last).\n');
  process.stdout.write(
    `WORKERS=2 / 1 worker (PostgreSQL): ${(perSecond('client credentials (JWT)', workers) / perSecond('client credentials (JWT)', postgres)).toFixed(2)}x\n`,
  );
  process.stdout.write('Full login (password + TOTP + consent + code exchange) per second: not in this run (see the login benchmark).\n');
  process.stdout.write(`Rerun: npm run bench:scale   (BENCH_SECONDS=${SECONDS} BENCH_CONCURRENCY=${CONCURRENCY} BENCH_PG=${PG})\n`);
  if (rows.some((r) => r.result.errors > 0)) process.exitCode = 1;
}

async function cleanup() {
  await stopProcesses();
  await dropSchema(PG, schema);
  fs.rmSync(dir, { recursive: true, force: true });
}

main()
  .catch((error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  })
  .finally(cleanup);
