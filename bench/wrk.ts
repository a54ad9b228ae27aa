/**
 * wrk (Debian's `wrk`) as the load generator: C, one thread, far lighter than a Node client, so
 * on two cores the server under test can have a core of its own (`taskset`). Requests are
 * described in Lua; a list of bodies is sent round robin.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type WrkResult = { perSecond: number; requests: number; p50: number; p99: number; errors: number };

/** Fails with a one-line message when wrk is not installed. */
export async function checkWrk(): Promise<void> {
  try {
    await run('wrk', ['--version']).catch((error: unknown) => {
      // wrk --version exits 1 after printing its version
      if ((error as { stdout?: string }).stdout?.includes('wrk')) return;
      throw error;
    });
  } catch {
    throw new Error('wrk is not installed: apt-get install wrk');
  }
}

const lua = (text: string) => JSON.stringify(text); // a JSON string is a valid Lua string literal for ASCII

/** A Lua script for wrk: POST `path` with these headers, the bodies in turn. */
export function wrkScript(dir: string, name: string, options: { path: string; headers: Record<string, string>; bodies: string[] }): string {
  const file = path.join(dir, `${name}.lua`);
  const headers = Object.entries(options.headers)
    .map(([k, v]) => `[${lua(k)}] = ${lua(v)}`)
    .join(', ');
  fs.writeFileSync(
    file,
    [
      `local bodies = { ${options.bodies.map(lua).join(',\n')} }`,
      `local headers = { ${headers} }`,
      'local i = 0',
      'request = function()',
      '  i = i + 1',
      `  return wrk.format("POST", ${lua(options.path)}, headers, bodies[(i % #bodies) + 1])`,
      'end',
    ].join('\n'),
  );
  return file;
}

function milliseconds(value: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(value.trim());
  if (!match) return NaN;
  const factor = { us: 0.001, ms: 1, s: 1000, m: 60_000 }[match[2] as 'us' | 'ms' | 's' | 'm'];
  return Number(match[1]) * factor;
}

/** One wrk run: `-t1 -cN -dS --latency`, pinned to `cpu` when given. */
export async function runWrk(options: {
  url: string;
  script: string;
  connections: number;
  seconds: number;
  cpu?: number;
}): Promise<WrkResult> {
  const args = ['-t1', `-c${options.connections}`, `-d${options.seconds}s`, '--latency', '-s', options.script, options.url];
  const { stdout } = options.cpu === undefined ? await run('wrk', args) : await run('taskset', ['-c', String(options.cpu), 'wrk', ...args]);
  const pick = (re: RegExp) => re.exec(stdout)?.[1];
  const requests = Number(pick(/(\d+) requests in/) ?? NaN);
  const non2xx = Number(pick(/Non-2xx or 3xx responses: (\d+)/) ?? 0);
  const socket = pick(/Socket errors: (.*)/);
  const socketErrors = socket ? [...socket.matchAll(/\d+/g)].reduce((sum, m) => sum + Number(m[0]), 0) : 0;
  return {
    perSecond: Number(pick(/Requests\/sec:\s+([\d.]+)/) ?? NaN),
    requests,
    p50: milliseconds(pick(/\s50%\s+(\S+)/) ?? ''),
    p99: milliseconds(pick(/\s99%\s+(\S+)/) ?? ''),
    errors: non2xx + socketErrors,
  };
}
