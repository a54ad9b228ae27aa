// Separate processes, for tests whose subject is the process itself: signals (SIGTERM drain,
// kill -9), the cluster (WORKERS), start-up failures (exit code, one line on stderr) and the
// `portcullis` command as a user runs it. Everything else runs in process (in-process.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import https from 'node:https';
import path from 'node:path';
import { cliResult, freePort, ROOT, type CliResult } from './harness.ts';
import { logWatch, type LogWatch } from './logs.ts';

export type Instance = {
  /** the issuer */
  url: string;
  /** http://127.0.0.1:PORT (https with TLS_CERT): this process, whatever its issuer */
  local: string;
  env: Record<string, string>;
  child: ChildProcess;
  logs(): string;
  log: LogWatch;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
};

type Ran = { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string };

/** Spawns `command` with only PATH and `env`; resolves when it exits (killed after `timeoutMs`). */
function run(
  command: string,
  args: string[],
  env: Record<string, string>,
  options: { timeoutMs?: number; inheritEnv?: boolean } = {},
): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd: ROOT,
      env: options.inheritEnv ? { ...process.env, ...env } : { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString('utf8');
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString('utf8');
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const withJson = ({ code, stdout, stderr }: Ran): CliResult => cliResult(code ?? -1, stdout, stderr);

/** The real `portcullis` command, as a user runs it (a child process on the pinned Node). */
export async function cliProcess(env: Record<string, string>, ...argv: string[]): Promise<CliResult> {
  return withJson(await run(process.execPath, [path.join(ROOT, 'src/cli/portcullis.ts'), ...argv], env));
}

/** `npx portcullis …`: the package's bin, found as a user's shell finds it. */
export async function npxPortcullis(env: Record<string, string>, ...argv: string[]): Promise<CliResult> {
  return withJson(await run('npx', ['--no-install', 'portcullis', ...argv], env, { inheritEnv: true }));
}

/** Runs `node src/main.ts` expecting it to stop by itself (a start-up error); bounded. */
export function runUntilExit(env: Record<string, string>, timeoutMs = 15_000): Promise<Ran> {
  return run(process.execPath, [path.join(ROOT, 'src/main.ts')], { PORT: '0', ...env }, { timeoutMs });
}

/** Whether the server on `port` answers /readyz with 200 (over TLS, not checking its certificate: only whether it is up). */
function readyz(port: number, tls: boolean): Promise<boolean> {
  if (!tls)
    return fetch(`http://127.0.0.1:${port}/readyz`).then(
      (res) => res.status === 200,
      () => false,
    );
  return new Promise((resolve) => {
    https
      .get({ host: '127.0.0.1', port, path: '/readyz', rejectUnauthorized: false, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      })
      .on('error', () => resolve(false));
  });
}

/** Starts `node src/main.ts` on `env.PORT`, or a free port, and waits for /readyz. */
export async function startInstance(env: Record<string, string>, options: { timeoutMs?: number } = {}): Promise<Instance> {
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const fullEnv: Record<string, string> = { ISSUER: `http://localhost:${port}`, ...env, PORT: String(port) };
  const child = spawn(process.execPath, [path.join(ROOT, 'src/main.ts')], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...fullEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = logWatch();
  child.stdout.on('data', (d: Buffer) => log.write(d.toString()));
  child.stderr.on('data', (d: Buffer) => log.write(d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // /readyz answering 200 is the one signal a process gives at every LOG_LEVEL (and, in a
  // cluster, it comes from a worker): asked until then, bounded
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode}) before ready:\n${log.text()}`);
    const ready = await readyz(port, Boolean(fullEnv.TLS_CERT));
    if (ready) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server not ready in time:\n${log.text()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url: fullEnv.ISSUER,
    local: `${fullEnv.TLS_CERT ? 'https' : 'http'}://127.0.0.1:${port}`,
    env: fullEnv,
    child,
    logs: log.text,
    log,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
