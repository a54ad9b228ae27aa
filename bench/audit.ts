// Client-credentials tokens/s with the audit log (this checkout) against the same server without
// it (BENCH_BASELINE: a checkout of the branch point, e.g. `git worktree add /tmp/base <commit>`
// with this node_modules linked in). Each runs as its own process on its own SQLite file, set up
// by its own CLI; rounds alternate (baseline, this, baseline, …) so drift hits both. The token
// path writes no audit row: this measures that the log stays off it. Goal: ratio >= 0.95.
//
//   BENCH_BASELINE=/tmp/base npm run bench:audit
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchLimits, clientCredentials, runLoad, table, type LoadResult } from './load.ts';
import { cpuSeconds, freePort, startProcess, stopProcesses } from './process.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BASELINE = process.env.BENCH_BASELINE;
if (!BASELINE || !fs.existsSync(path.join(BASELINE, 'src/main.ts')))
  throw new Error(
    'set BENCH_BASELINE to a checkout without the audit log (git worktree add /tmp/base <commit>; ln -s $PWD/node_modules /tmp/base/)',
  );

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-bench-audit-'));
const scope = 'payments:read';

type Target = 'baseline' | 'audit';
const CHECKOUT: Record<Target, string> = { baseline: path.resolve(BASELINE), audit: ROOT };

function envOf(target: Target): Record<string, string> {
  return {
    DATABASE_URL: `sqlite:${path.join(dir, `${target}.sqlite`)}`,
    KEYS_DIR: path.join(dir, `${target}-keys`),
    LOG_LEVEL: 'warn',
    ...benchLimits(),
  };
}

/** `portcullis …` of the target's own checkout (its own migrations), JSON out. */
function cli(target: Target, argv: string[]) {
  const out = execFileSync(process.execPath, [path.join(CHECKOUT[target], 'src/cli/portcullis.ts'), ...argv], {
    cwd: CHECKOUT[target],
    env: { PATH: process.env.PATH ?? '', ...envOf(target) },
    encoding: 'utf8',
  });
  return JSON.parse(out) as Record<string, string>;
}

async function main() {
  const servers = {} as Record<Target, { child: ChildProcess; port: number; partner: Record<string, string> }>;
  for (const target of ['baseline', 'audit'] as const) {
    cli(target, ['resource', 'create', '--uri', 'https://api.bench.test/payments', '--scope', scope, '--default']);
    const partner = cli(target, ['partner', 'create', '--name', 'Bench Bank', '--scope', scope]);
    const port = await freePort();
    const child = await startProcess(
      path.relative(ROOT, path.join(CHECKOUT[target], 'src/main.ts')),
      { ...envOf(target), PORT: String(port), ISSUER: `http://localhost:${port}` },
      `http://127.0.0.1:${port}/readyz`,
    );
    servers[target] = { child, port, partner };
  }
  const request = (target: Target) =>
    clientCredentials(
      `http://127.0.0.1:${servers[target].port}`,
      { id: servers[target].partner.client_id, secret: servers[target].partner.client_secret },
      { scope },
    );
  for (const target of ['baseline', 'audit'] as const) await runLoad({ concurrency: CONCURRENCY, seconds: 2, request: request(target) });

  const results: Record<Target, LoadResult[]> = { baseline: [], audit: [] };
  const cpu = { baseline: 0, audit: 0 };
  for (let round = 0; round < ROUNDS; round += 1) {
    for (const target of ['baseline', 'audit'] as const) {
      const before = cpuSeconds(servers[target].child.pid!);
      results[target].push(await runLoad({ concurrency: CONCURRENCY, seconds: SECONDS, request: request(target) }));
      cpu[target] += cpuSeconds(servers[target].child.pid!) - before;
    }
  }
  const summary = (target: Target) => {
    const runs = results[target];
    const requests = runs.reduce((n, r) => n + r.requests, 0);
    const seconds = runs.reduce((n, r) => n + r.seconds, 0);
    return {
      target: target === 'baseline' ? `without audit log (${BASELINE})` : 'with audit log (this checkout)',
      'tokens/s': requests / seconds,
      'server CPU ms/token': (cpu[target] * 1000) / requests,
      'p50 ms': runs.reduce((n, r) => n + r.p50, 0) / runs.length,
      'p99 ms': runs.reduce((n, r) => n + r.p99, 0) / runs.length,
      errors: runs.reduce((n, r) => n + r.errors, 0),
    };
  };
  const rows = [summary('baseline'), summary('audit')];
  const auditRows = execFileSync('sqlite3', [path.join(dir, 'audit.sqlite'), 'select count(*) from audit_log'], {
    encoding: 'utf8',
  }).trim();
  process.stdout.write(
    `\nclient_credentials, concurrency ${CONCURRENCY}, ${ROUNDS} alternating rounds of ${SECONDS}s each, node ${process.version}, ${os.cpus().length} cores\n\n`,
  );
  process.stdout.write(`${table(rows)}\n\n`);
  process.stdout.write(
    `ratio with / without the audit log, tokens/s: ${(rows[1]['tokens/s'] / rows[0]['tokens/s']).toFixed(2)} (goal >= 0.95)\n`,
  );
  process.stdout.write(
    `ratio, tokens per server CPU second: ${(rows[0]['server CPU ms/token'] / rows[1]['server CPU ms/token']).toFixed(2)}\n`,
  );
  process.stdout.write(`audit rows after the run: ${auditRows} (the resource and partner made by the CLI; no token writes one)\n`);
  process.stdout.write('rerun: BENCH_BASELINE=/tmp/base npm run bench:audit\n');
}

try {
  await main();
} finally {
  await stopProcesses();
  fs.rmSync(dir, { recursive: true, force: true });
}
