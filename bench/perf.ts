/**
 * Issue 14's benchmark: Portcullis (SQLite and PostgreSQL) side by side with a bare
 * oidc-provider (in-memory adapter, same ES256 key, same client and APIs), measured with wrk
 * (one thread, 32 connections) on core 0 while the server under test is pinned to core 1.
 * Client-credentials JWT tokens and opaque-token introspection; ROUNDS alternating rounds, the
 * median of each cell printed; CPU ms per request of the server process; RSS after the load.
 *
 * Run: `npm run bench:perf` (needs Debian's `wrk`). BENCH_SECONDS (10), BENCH_ROUNDS (3),
 * BENCH_CONNECTIONS (32), BENCH_PG (postgres://postgres@127.0.0.1:5432/test),
 * BENCH_TARGETS (bare,sqlite,postgres), BENCH_MEASURES (token,introspection), BENCH_CPU_PROF=DIR (V8 CPU profiles of the Portcullis
 * processes), BENCH_HEAP_SNAPSHOT=DIR (a heap snapshot of each process after the load),
 * BENCH_BASELINE=DIR (another checkout's server measured beside, on SQLite: `git worktree add
 * --detach /tmp/base COMMIT && ln -s $PWD/node_modules /tmp/base/`).
 */
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config/config.ts';
import { loadKeySet } from '../src/keys/signing-key.service.ts';
import { prepareStorage } from '../src/storage.ts';
import { dropSchema, JWT_API, OPAQUE_API, seedApis } from './apis.ts';
import { cliJson } from './cli.ts';
import { benchLimits, clientCredentials, table } from './load.ts';
import { cpuSeconds, freePort, rssMiB, startProcess, stopProcesses } from './process.ts';
import { checkWrk, runWrk, wrkScript, type WrkResult } from './wrk.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const PG = process.env.BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
/** Another checkout (e.g. a `git worktree` of an earlier commit, node_modules linked): its server is measured too, on SQLite. */
const BASELINE = process.env.BENCH_BASELINE;
const TARGETS = (process.env.BENCH_TARGETS ?? `bare,sqlite,postgres${BASELINE ? ',baseline' : ''}`).split(',');
const MEASURES = (process.env.BENCH_MEASURES ?? 'token,introspection').split(',');
const CPU_PROF = process.env.BENCH_CPU_PROF;
const HEAP_SNAPSHOT = process.env.BENCH_HEAP_SNAPSHOT;
const SERVER_CPU = 1;
const LOAD_CPU = 0;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-bench-perf-'));
const schema = `bench_${randomBytes(4).toString('hex')}`;
const kek = randomBytes(32).toString('base64url');
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
type Target = { name: string; key: string; child: ChildProcess; base: string; clientId: string; secret: string };

function seed(env: Record<string, string>) {
  return seedApis((argv) => cliJson(env, argv));
}

/** The same APIs and partner, made by another checkout's own CLI (its schema may be older). */
function seedWith(root: string, env: Record<string, string>) {
  return seedApis((argv) =>
    JSON.parse(
      execFileSync(process.execPath, [path.join(root, 'src/cli/portcullis.ts'), ...argv], {
        cwd: root,
        env: { PATH: process.env.PATH ?? '', ...env },
        encoding: 'utf8',
      }),
    ),
  );
}

function pin(child: ChildProcess) {
  execFileSync('taskset', ['-a', '-cp', String(SERVER_CPU), String(child.pid)], { stdio: 'ignore' });
}

async function start(
  key: string,
  name: string,
  script: string,
  env: Record<string, string>,
  readyPath: string,
  partner: { client_id: string; client_secret: string },
  root?: string,
) {
  const port = await freePort();
  const options: string[] = [];
  if (CPU_PROF) options.push('--cpu-prof', `--cpu-prof-dir=${CPU_PROF}`, `--cpu-prof-name=${key}.cpuprofile`);
  if (HEAP_SNAPSHOT) options.push('--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${HEAP_SNAPSHOT}`);
  const child = await startProcess(
    script,
    { ISSUER: `http://localhost:${port}`, ...env, PORT: String(port) },
    `http://127.0.0.1:${port}${readyPath}`,
    options,
    root,
  );
  pin(child);
  return { name, key, child, base: `http://127.0.0.1:${port}`, clientId: partner.client_id, secret: partner.client_secret };
}

const basic = (t: Target) => `Basic ${Buffer.from(`${t.clientId}:${t.secret}`).toString('base64')}`;
const FORM = 'application/x-www-form-urlencoded';

function tokenScript(t: Target): string {
  const body = new URLSearchParams({ grant_type: 'client_credentials', scope: JWT_API.scope, resource: JWT_API.uri }).toString();
  return wrkScript(dir, `${t.key}-token`, { path: '/token', headers: { authorization: basic(t), 'content-type': FORM }, bodies: [body] });
}

/** 200 live opaque tokens introspected round robin (the bare in-memory adapter keeps ~1,000). */
async function introspectionScript(t: Target): Promise<string> {
  const request = clientCredentials(t.base, { id: t.clientId, secret: t.secret }, { scope: OPAQUE_API.scope, resource: OPAQUE_API.uri });
  const bodies: string[] = [];
  for (let i = 0; i < 200; i++) {
    const res = await request();
    const { access_token } = (await res.json()) as { access_token: string };
    bodies.push(new URLSearchParams({ token: access_token }).toString());
  }
  return wrkScript(dir, `${t.key}-introspection`, {
    path: '/token/introspection',
    headers: { authorization: basic(t), 'content-type': FORM },
    bodies,
  });
}

type Cell = WrkResult & { cpuMs: number };

async function measure(t: Target, script: string, seconds: number): Promise<Cell> {
  const before = cpuSeconds(t.child.pid!);
  const result = await runWrk({ url: t.base, script, connections: CONNECTIONS, seconds, cpu: LOAD_CPU });
  const cpuMs = ((cpuSeconds(t.child.pid!) - before) * 1000) / Math.max(1, result.requests);
  return { ...result, cpuMs };
}

/** SIGUSR2 to each server (--heapsnapshot-signal), then waits until each has written its snapshot (V8 writes it whole, then closes it). */
async function heapSnapshots(targets: Target[], dir: string) {
  for (const t of targets) t.child.kill('SIGUSR2');
  for (const t of targets) {
    const written = () => fs.readdirSync(dir).some((name) => name.includes(`.${t.child.pid}.`) && name.endsWith('.heapsnapshot'));
    for (let i = 0; i < 600 && !written(); i++) await new Promise((resolve) => setTimeout(resolve, 100));
    // the file appears when V8 starts writing it; its size stops moving when it is done
    let size = -1;
    for (let i = 0; i < 600; i++) {
      const name = fs.readdirSync(dir).find((n) => n.includes(`.${t.child.pid}.`) && n.endsWith('.heapsnapshot'));
      const now = name ? fs.statSync(path.join(dir, name)).size : -1;
      if (now > 0 && now === size) break;
      size = now;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

async function main() {
  await checkWrk();
  const wanted = (key: string) => TARGETS.includes(key);
  const partners: Partial<Record<Engine, { client_id: string; client_secret: string }>> = {};
  for (const engine of ['sqlite', 'postgres'] as const)
    if (wanted(engine) || (engine === 'sqlite' && wanted('bare'))) partners[engine] = await seed(engines[engine]);

  const targets: Target[] = [];
  if (wanted('bare')) {
    // the signing key Portcullis on SQLite signs with (made now if it has not started yet)
    const { db, keyring } = await prepareStorage(loadConfig(engines.sqlite));
    const keySet = await loadKeySet(db, keyring);
    await db.destroy();
    const partner = partners.sqlite!;
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
    targets.push(
      await start(
        'bare',
        'bare oidc-provider (memory)',
        'bench/bare-provider.ts',
        { BARE_CONFIG: JSON.stringify(config) },
        '/.well-known/openid-configuration',
        partner,
      ),
    );
  }
  if (wanted('sqlite'))
    targets.push(await start('sqlite', 'Portcullis, SQLite', 'src/main.ts', engines.sqlite, '/readyz', partners.sqlite!));
  if (wanted('postgres'))
    targets.push(await start('postgres', 'Portcullis, PostgreSQL', 'src/main.ts', engines.postgres, '/readyz', partners.postgres!));
  if (wanted('baseline') && BASELINE) {
    const root = path.resolve(BASELINE);
    const env = {
      ...engines.sqlite,
      DATABASE_URL: `sqlite:${path.join(dir, 'baseline.sqlite')}`,
      ...(process.env.DUMMY_FEED ? { DUMMY_FEED: '1' } : {}),
    };
    const partner = await seedWith(root, env);
    targets.push(await start('baseline', `baseline: ${BASELINE}, SQLite`, 'src/main.ts', env, '/readyz', partner, root));
  }

  // resident memory at rest: started, ready, nothing asked yet but the readiness probe
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const idleRss = new Map(targets.map((t) => [t.key, rssMiB(t.child.pid!)]));

  const scripts = new Map<Target, { token: string; introspection: string }>();
  for (const t of targets) scripts.set(t, { token: tokenScript(t), introspection: await introspectionScript(t) });
  for (const t of targets) {
    for (const name of MEASURES as Array<'token' | 'introspection'>) await measure(t, scripts.get(t)![name], 3); // warm-up: JIT, pools, caches
  }

  const cells = new Map<string, Cell[]>();
  const push = (key: string, cell: Cell) => cells.set(key, [...(cells.get(key) ?? []), cell]);
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of MEASURES as Array<'token' | 'introspection'>)
      for (const t of targets) push(`${name}/${t.key}`, await measure(t, scripts.get(t)![name], SECONDS));
  }
  const rss = new Map(targets.map((t) => [t.key, rssMiB(t.child.pid!)]));
  if (HEAP_SNAPSHOT) await heapSnapshots(targets, HEAP_SNAPSHOT);

  const rows = [];
  for (const measureName of MEASURES as Array<'token' | 'introspection'>) {
    const bareRps = cells.has(`${measureName}/bare`) ? median(cells.get(`${measureName}/bare`)!.map((c) => c.perSecond)) : NaN;
    const bareP99 = cells.has(`${measureName}/bare`) ? median(cells.get(`${measureName}/bare`)!.map((c) => c.p99)) : NaN;
    for (const t of targets) {
      const runs = cells.get(`${measureName}/${t.key}`)!;
      const rps = median(runs.map((c) => c.perSecond));
      rows.push({
        measure: measureName === 'token' ? 'client credentials (JWT)' : 'introspection (opaque)',
        target: t.name,
        'req/s (median)': rps,
        'runs req/s': runs.map((c) => c.perSecond.toFixed(0)).join(' '),
        'x bare': rps / bareRps,
        'p99 ms': median(runs.map((c) => c.p99)),
        'p99 x bare': median(runs.map((c) => c.p99)) / bareP99,
        'CPU ms/req': median(runs.map((c) => c.cpuMs)),
        errors: runs.reduce((n, c) => n + c.errors, 0),
      });
    }
  }
  const bareRss = rss.get('bare') ?? NaN;
  const bareIdle = idleRss.get('bare') ?? NaN;
  const memory = targets.map((t) => ({
    target: t.name,
    'RSS idle MiB': idleRss.get(t.key)!,
    'idle x bare': idleRss.get(t.key)! / bareIdle,
    'RSS after load MiB': rss.get(t.key)!,
    'x bare': rss.get(t.key)! / bareRss,
  }));
  process.stdout.write(
    `\nwrk -t1 -c${CONNECTIONS} on core ${LOAD_CPU}, server pinned to core ${SERVER_CPU}; ${ROUNDS} alternating rounds of ${SECONDS} s, medians; node ${process.version}\n\n`,
  );
  process.stdout.write(`${table(rows)}\n\n${table(memory)}\n\n`);
  process.stdout.write(
    'Goals: client credentials >= 1.0x bare with p99 no worse; introspection >= 0.6x bare on PostgreSQL; RSS <= 1.1x bare.\n',
  );
  process.stdout.write(
    `Rerun: npm run bench:perf   (BENCH_SECONDS=${SECONDS} BENCH_ROUNDS=${ROUNDS} BENCH_TARGETS=${TARGETS.join(',')})\n`,
  );
  if (rows.some((r) => r.errors > 0)) process.exitCode = 1;
}

async function cleanup() {
  await stopProcesses();
  if (TARGETS.includes('postgres')) await dropSchema(PG, schema);
  fs.rmSync(dir, { recursive: true, force: true });
}

main()
  .catch((error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  })
  .finally(cleanup);
