/**
 * Client-credentials tokens/s while a login flood runs, as a ratio to tokens/s without it
 * (goal >= 0.8). A flood is BENCH_FLOOD browsers posting wrong passwords for made-up usernames
 * through the real sign-in form, as fast as the server answers: every post that reaches the
 * password check costs one password hash.
 *
 * Two servers on one SQLite file, one after the other:
 * - "many addresses": the login rate limits raised out of reach (a flood from a botnet, many
 *   usernames): only the bounded password-hash queue stands between the flood and the tokens;
 * - "one address": the default login limits (the flood comes from one address, as here).
 * Token limits are raised out of reach in both (the partner's own load is not what is refused;
 * the limiters still run). Rounds alternate alone / flood so that drift hits both.
 * Run: `npm run bench:flood` (BENCH_SECONDS, BENCH_CONCURRENCY, BENCH_FLOOD, BENCH_ROUNDS
 * override 8, 32, 8 and 2).
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { cookieAgent } from '../test/support/agent.ts';
import { openLoginForm } from '../test/support/http-login.ts';
import { cliJson } from './cli.ts';
import { benchLimits, clientCredentials, runLoad, table, type LoadResult } from './load.ts';
import { cpuSeconds, freePort, startProcess, stopProcesses } from './process.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const FLOOD = Number(process.env.BENCH_FLOOD ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const REDIRECT = 'http://127.0.0.1:9/callback';

const dir = isMainThread ? fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-bench-flood-')) : '';
const env: Record<string, string> = {
  DATABASE_URL: `sqlite:${path.join(dir, 'bench.sqlite')}`,
  KEYS_DIR: path.join(dir, 'keys'),
  LOG_LEVEL: 'warn',
};

type Flood = { posts: number; statuses: Record<string, number> };

/**
 * BENCH_FLOOD browsers, each opening a sign-in page and posting wrong passwords to it until told
 * to stop. They run in a worker thread at a lower CPU priority (nice 10), standing in for an
 * attacker on other machines: on two shared cores, a flood of fast answers (429s) would otherwise
 * take the CPU from the server it attacks and from the token clients, and the ratio would
 * measure the load generator. Its rate is printed (login posts/s).
 */
async function runFlood(base: string, clientId: string, stopped: Promise<void>): Promise<Flood> {
  const flood: Flood = { posts: 0, statuses: {} };
  const state = { running: true };
  void stopped.then(() => {
    state.running = false;
  });
  const running = (): boolean => state.running; // read through a call: the flag changes between awaits
  const authorizationUrl = new URL(
    `${base}/auth?${String(
      new URLSearchParams({
        client_id: clientId,
        response_type: 'code',
        redirect_uri: REDIRECT,
        scope: 'openid payments:read',
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
        code_challenge_method: 'S256',
      }),
    )}`,
  );
  const count = (status: string) => {
    flood.statuses[status] = (flood.statuses[status] ?? 0) + 1;
  };
  const browser = async (n: number) => {
    while (running()) {
      const agent = cookieAgent(() => base);
      let form: Awaited<ReturnType<typeof openLoginForm>>;
      try {
        form = await openLoginForm(agent, authorizationUrl);
      } catch {
        count('no form');
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      for (let i = 0; running() && i < 100; i += 1) {
        const { res } = await agent.post(form.action, { ...form.fields, username: `nobody${n}x${i}`, password: 'not the password 1234' });
        flood.posts += 1;
        count(String(res.status));
        if (res.status !== 401 && res.status !== 429 && res.status !== 503) break; // the interaction is gone: open another
      }
    }
  };
  await Promise.all(Array.from({ length: FLOOD }, (_, n) => browser(n)));
  return flood;
}

if (!isMainThread) {
  const { base, clientId } = workerData as { base: string; clientId: string };
  // Linux: a thread's nice value is its own; /proc/thread-self names this thread's id
  os.setPriority(Number(fs.readlinkSync('/proc/thread-self').split('/').pop()), 10);
  const stopped = new Promise<void>((resolve) => parentPort!.once('message', () => resolve()));
  parentPort!.postMessage(await runFlood(base, clientId, stopped));
}

function startFlood(base: string, clientId: string): { stop(): Promise<Flood> } {
  const worker = new Worker(new URL(import.meta.url), { workerData: { base, clientId } });
  const result = new Promise<Flood>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  return {
    async stop() {
      worker.postMessage('stop');
      const flood = await result;
      await worker.terminate();
      return flood;
    },
  };
}

type Run = { scenario: string; flood: boolean; result: LoadResult; cpu: number; floodResult?: Flood };

async function measure(
  scenario: string,
  server: ChildProcess,
  base: string,
  request: () => Promise<Response>,
  flood?: string,
): Promise<Run> {
  const attack = flood ? startFlood(base, flood) : undefined;
  if (attack) await new Promise((resolve) => setTimeout(resolve, 1000)); // let the flood build up
  const before = cpuSeconds(server.pid!);
  const result = await runLoad({ concurrency: CONCURRENCY, seconds: SECONDS, request });
  const cpu = (cpuSeconds(server.pid!) - before) / result.seconds;
  const floodResult = await attack?.stop();
  return { scenario, flood: Boolean(flood), result, cpu, floodResult };
}

async function main() {
  await cliJson(env, ['resource', 'create', '--uri', 'https://api.bench.test/payments', '--scope', 'payments:read', '--default']);
  const partner = await cliJson(env, ['partner', 'create', '--name', 'Bench Bank', '--scope', 'payments:read']);
  const app = await cliJson(env, [
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

  const runs: Run[] = [];
  const scenarios = [
    {
      name: 'many addresses (login limits raised)',
      extra: benchLimits(['RATE_LIMIT_AUTH_PER_IP', 'RATE_LIMIT_LOGIN_PER_IP', 'RATE_LIMIT_LOGIN_PER_USERNAME']),
      rounds: ROUNDS,
    },
    { name: 'one address (default login limits)', extra: benchLimits(), rounds: 1 },
  ];
  for (const scenario of scenarios) {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const server = await startProcess(
      'src/main.ts',
      { ...env, ...scenario.extra, PORT: String(port), ISSUER: `http://localhost:${port}` },
      `${base}/readyz`,
    );
    const request = clientCredentials(base, { id: partner.client_id, secret: partner.client_secret }, { scope: 'payments:read' });
    await runLoad({ concurrency: CONCURRENCY, seconds: 2, request }); // warm-up
    for (let round = 0; round < scenario.rounds; round += 1) {
      runs.push(await measure(scenario.name, server, base, request));
      runs.push(await measure(scenario.name, server, base, request, app.client_id));
    }
    await stopProcesses();
  }

  const rows = scenarios.flatMap(({ name }) =>
    [false, true].map((flood) => {
      const mine = runs.filter((run) => run.scenario === name && run.flood === flood);
      const requests = mine.reduce((n, run) => n + run.result.requests, 0);
      const seconds = mine.reduce((n, run) => n + run.result.seconds, 0);
      const alone = runs.filter((run) => run.scenario === name && !run.flood);
      const aloneRate = alone.reduce((n, run) => n + run.result.requests, 0) / alone.reduce((n, run) => n + run.result.seconds, 0);
      const statuses: Record<string, number> = {};
      for (const run of mine)
        for (const [status, count] of Object.entries(run.floodResult?.statuses ?? {})) statuses[status] = (statuses[status] ?? 0) + count;
      const posts = mine.reduce((n, run) => n + (run.floodResult?.posts ?? 0), 0);
      return {
        scenario: name,
        flood: flood ? `${FLOOD} browsers` : 'none',
        'tokens/s': requests / seconds,
        'x alone': requests / seconds / aloneRate,
        'p50 ms': mine.reduce((n, run) => n + run.result.p50, 0) / mine.length,
        'p99 ms': mine.reduce((n, run) => n + run.result.p99, 0) / mine.length,
        'token errors': mine.reduce((n, run) => n + run.result.errors, 0),
        'login posts/s': posts / seconds,
        'login answers': flood
          ? Object.entries(statuses)
              .map(([status, count]) => `${status}:${count}`)
              .join(' ')
          : '',
        'server CPU %': (mine.reduce((n, run) => n + run.cpu, 0) / mine.length) * 100,
      };
    }),
  );

  process.stdout.write(
    `\nclient_credentials with and without a login flood: ${CONCURRENCY} token clients, ${ROUNDS} alternating rounds of ${SECONDS} s (one for "one address"), node ${process.version}, ${os.cpus().length} cores shared with the load generator\n\n`,
  );
  process.stdout.write(`${table(rows)}\n\n`);
  for (const row of rows.filter((r) => r.flood !== 'none')) {
    process.stdout.write(`ratio tokens/s with the flood / alone, ${row.scenario}: ${row['x alone'].toFixed(2)} (goal >= 0.80)\n`);
  }
  process.stdout.write(
    `rerun: npm run bench:flood   (BENCH_SECONDS=${SECONDS} BENCH_CONCURRENCY=${CONCURRENCY} BENCH_FLOOD=${FLOOD} BENCH_ROUNDS=${ROUNDS})\n`,
  );
  if (rows.some((row) => row['token errors'] > 0)) process.exitCode = 1;
}

if (isMainThread) {
  try {
    await main();
  } finally {
    await stopProcesses();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
