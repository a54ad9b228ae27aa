import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const children = new Set<ChildProcess>();

/** A port nothing listens on now (the kernel's choice), for a server about to start. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net
      .createServer()
      .once('error', reject)
      .listen(0, '127.0.0.1', () => {
        const { port } = server.address() as net.AddressInfo;
        server.close(() => resolve(port));
      });
  });
}

/** Starts `node [nodeOptions] ROOT/SCRIPT` (ROOT: this checkout, or another's) with only PATH and `extraEnv`, and waits until `readyUrl` answers. */
export async function startProcess(
  script: string,
  extraEnv: Record<string, string>,
  readyUrl: string,
  nodeOptions: string[] = [],
  root: string = ROOT,
): Promise<ChildProcess> {
  const child = spawn(process.execPath, [...nodeOptions, path.join(root, script)], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', ...extraEnv },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let errors = '';
  child.stderr.on('data', (d) => {
    errors += String(d);
  });
  for (let i = 0; i < 300; i += 1) {
    if (child.exitCode !== null) throw new Error(`${script} exited ${child.exitCode}: ${errors}`);
    try {
      if ((await fetch(readyUrl)).status < 500) return child;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${script} did not start: ${errors}`);
}

/** User + system CPU seconds these processes have used so far (Linux /proc). */
export function cpuSeconds(...pids: number[]): number {
  const ticks = pids.reduce((sum, pid) => {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return sum + Number(fields[11]) + Number(fields[12]); // utime + stime, in clock ticks of 1/100 s
  }, 0);
  return ticks / 100;
}

export function peakRssMiB(pid: number): number {
  return statusMiB(pid, 'VmHWM');
}

/** Resident memory now. */
export function rssMiB(pid: number): number {
  return statusMiB(pid, 'VmRSS');
}

function statusMiB(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN) / 1024;
  } catch {
    return NaN;
  }
}

/** SIGTERM to every process started here; waits for each to exit (SIGKILL after 12 s). */
export async function stopProcesses(): Promise<void> {
  await Promise.all(
    [...children].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) {
            resolve();
            return;
          }
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
          setTimeout(() => child.kill('SIGKILL'), 12_000).unref();
        }),
    ),
  );
}
