/**
 * A flame graph of the client-credentials path (issue 14): Portcullis on SQLite, pinned to core
 * 1, runs with `--cpu-prof` while wrk (`-t1 -c32`, core 0) posts `grant_type=client_credentials`
 * (HTTP Basic, one partner, the JWT API); the samples taken during the load, idle left out,
 * become bench/flamegraph-cc.svg. The profile is of the main thread: the ES256 signature itself
 * runs on libuv's pool and shows only as its dispatch.
 *
 * Run: `npm run bench:flame` (needs Debian's `wrk`). BENCH_SECONDS (10), BENCH_FLAME_OUT
 * (bench/flamegraph-cc.svg), BENCH_FLAME_PROFILE=FILE (keep the .cpuprofile there too).
 * `node bench/flame.ts FILE.cpuprofile [OUT.svg]` draws any existing profile (every sample).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JWT_API, seedApis } from './apis.ts';
import { cliJson } from './cli.ts';
import { flameGraphSvg, type CpuProfile } from './flamegraph.ts';
import { benchLimits } from './load.ts';
import { freePort, startProcess, stopProcesses } from './process.ts';
import { checkWrk, runWrk, wrkScript } from './wrk.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const OUT = process.env.BENCH_FLAME_OUT ?? fileURLToPath(new URL('flamegraph-cc.svg', import.meta.url));
/** Microseconds on CLOCK_MONOTONIC, the clock V8 stamps profile samples with. */
const monotonicMicros = () => Number(process.hrtime.bigint() / 1000n);

async function profileUnderLoad(): Promise<{ profile: CpuProfile; from: number; to: number; perSecond: number }> {
  await checkWrk();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-bench-flame-'));
  try {
    const env = {
      DATABASE_URL: `sqlite:${path.join(dir, 'bench.sqlite')}`,
      PORTCULLIS_KEK: randomBytes(32).toString('base64url'),
      LOG_LEVEL: 'warn',
      ...benchLimits(),
    };
    const partner = await seedApis((argv) => cliJson(env, argv));
    const port = await freePort();
    const child = await startProcess(
      'src/main.ts',
      { ISSUER: `http://localhost:${port}`, ...env, PORT: String(port) },
      `http://127.0.0.1:${port}/readyz`,
      ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-name=server.cpuprofile'],
    );
    execFileSync('taskset', ['-a', '-cp', '1', String(child.pid)], { stdio: 'ignore' });
    const basic = `Basic ${Buffer.from(`${partner.client_id}:${partner.client_secret}`).toString('base64')}`;
    const body = new URLSearchParams({ grant_type: 'client_credentials', scope: JWT_API.scope, resource: JWT_API.uri }).toString();
    const script = wrkScript(dir, 'token', {
      path: '/token',
      headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
      bodies: [body],
    });
    const url = `http://127.0.0.1:${port}`;
    await runWrk({ url, script, connections: 32, seconds: 3, cpu: 0 }); // warm-up: JIT, pools, caches
    const from = monotonicMicros();
    const result = await runWrk({ url, script, connections: 32, seconds: SECONDS, cpu: 0 });
    const to = monotonicMicros();
    if (result.errors > 0) throw new Error(`${result.errors} requests failed`);
    await stopProcesses(); // the profile is written as the server exits
    const profile = JSON.parse(fs.readFileSync(path.join(dir, 'server.cpuprofile'), 'utf8')) as CpuProfile;
    if (process.env.BENCH_FLAME_PROFILE) fs.copyFileSync(path.join(dir, 'server.cpuprofile'), process.env.BENCH_FLAME_PROFILE);
    return { profile, from, to, perSecond: result.perSecond };
  } finally {
    await stopProcesses();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const [file, out = OUT] = process.argv.slice(2);
  if (file) {
    const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
    fs.writeFileSync(out, flameGraphSvg(profile, { title: path.basename(file) }));
    process.stdout.write(`${out}\n`);
    return;
  }
  const { profile, from, to, perSecond } = await profileUnderLoad();
  const svg = flameGraphSvg(profile, {
    title: 'Portcullis, client credentials (JWT, ES256), SQLite: main thread under wrk -t1 -c32',
    subtitle: `${SECONDS} s at ${perSecond.toFixed(0)} tokens/s, node ${process.version};`,
    from,
    to,
  });
  fs.writeFileSync(out, svg);
  process.stdout.write(`${out} (${perSecond.toFixed(0)} tokens/s during the profile)\nRerun: npm run bench:flame\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
