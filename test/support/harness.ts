import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../../src/cli/cli.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** PostgreSQL base URL for the PostgreSQL suite (`PORTCULLIS_TEST_PG`), else undefined. */
export const TEST_PG_URL = process.env.PORTCULLIS_TEST_PG || undefined;

export function tempDir(prefix = 'portcullis-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A fresh database for one test: a SQLite file in `dir`, or its own schema on PostgreSQL. */
export function freshDatabaseUrl(dir: string, engine: 'sqlite' | 'postgres' = TEST_PG_URL ? 'postgres' : 'sqlite'): string {
  if (engine === 'sqlite') return `sqlite:${path.join(dir, 'portcullis.sqlite')}`;
  if (!TEST_PG_URL) throw new Error('PORTCULLIS_TEST_PG is not set');
  const url = new URL(TEST_PG_URL);
  // t_<run>_<random>: the run's schemas are dropped together when it ends (test/support/pg.global.ts)
  url.searchParams.set('schema', `t_${process.env.PORTCULLIS_TEST_RUN ?? 'adhoc'}_${randomBytes(6).toString('hex')}`);
  return url.toString();
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export type CliResult = { code: number; stdout: string; stderr: string; json: any };

export type Instance = {
  url: string;
  env: Record<string, string>;
  child: ChildProcess;
  logs(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
};

/** `portcullis …` in this process (fast), against the database in `env`. */
export async function cli(env: Record<string, string>, ...argv: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; } }, env);
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch {
    json = undefined;
  }
  return { code, stdout, stderr, json };
}

/** The real `portcullis` command, as a user runs it (a child process on the pinned Node). */
export function cliProcess(env: Record<string, string>, ...argv: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'src/cli/portcullis.ts'), ...argv], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('close', (code) => {
      let json: unknown;
      try { json = JSON.parse(stdout); } catch { json = undefined; }
      resolve({ code: code ?? -1, stdout, stderr, json });
    });
  });
}

/** Base environment for an instance sharing `dir` (KEK) and `databaseUrl` with others. */
export function instanceEnv(dir: string, databaseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return { DATABASE_URL: databaseUrl, KEYS_DIR: path.join(dir, 'keys'), LOG_LEVEL: 'info', ...extra };
}

/** Starts `node src/main.ts` on `env.PORT`, or a free port, and waits for /readyz. */
export async function startInstance(env: Record<string, string>, options: { timeoutMs?: number } = {}): Promise<Instance> {
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const fullEnv = { ISSUER: `http://localhost:${port}`, ...env, PORT: String(port) };
  const child = spawn(process.execPath, [path.join(ROOT, 'src/main.ts')], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...fullEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => { output += d; });
  child.stderr!.on('data', (d) => { output += d; });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (options.timeoutMs ?? 20000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode}) before ready:\n${output}`);
    try {
      const res = await fetch(`${url}/readyz`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server not ready in time:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url: fullEnv.ISSUER,
    env: fullEnv,
    child,
    logs: () => output,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Registers an API and a partner for it; returns the partner's credentials. */
export async function seedPartner(env: Record<string, string>, options: { uri?: string; scopes?: string; allowed?: string; name?: string } = {}) {
  const uri = options.uri ?? 'https://api.bank.test/payments';
  const resource = await cli(env, 'resource', 'create', '--uri', uri, '--scope', options.scopes ?? 'payments:read payments:write', '--default');
  if (resource.code !== 0 && !resource.stderr.includes('already')) throw new Error(resource.stderr);
  const partner = await cli(env, 'partner', 'create', '--name', options.name ?? 'Acme Bank', '--scope', options.allowed ?? 'payments:read');
  if (partner.code !== 0) throw new Error(partner.stderr);
  return { uri, clientId: partner.json.client_id as string, clientSecret: partner.json.client_secret as string };
}
