// A PostgreSQL server of the test's own (initdb into a temp dir, a free port, trust auth), to
// stop and start under load without touching the machine's shared one, which other tests use
// in parallel. Debian's server binaries live in /usr/lib/postgresql/<version>/bin; initdb and
// postgres refuse to run as root, so as root they run as the `postgres` user (runuser).

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './harness.ts';

const run = promisify(execFile);
const ROOT_BIN = '/usr/lib/postgresql';

/** The newest installed server's bin directory, or undefined when there is none. */
export function postgresBinaries(): string | undefined {
  if (!fs.existsSync(ROOT_BIN)) return undefined;
  const versions = fs
    .readdirSync(ROOT_BIN)
    .filter((version) => fs.existsSync(path.join(ROOT_BIN, version, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? path.join(ROOT_BIN, versions[0], 'bin') : undefined;
}

export type PrivatePostgres = Readonly<{
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  url: string;
  /** Stops the server: `fast` ends every session with 57P01 (a failover's look), `immediate` drops them. */
  stop(mode: 'fast' | 'immediate'): Promise<void>;
  start(): Promise<void>;
  /** Stops it for good and removes its files. */
  destroy(): Promise<void>;
}>;

export async function startPrivatePostgres(bin: string): Promise<PrivatePostgres> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-pg-'));
  const data = path.join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const id = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
    const group = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    fs.chownSync(dir, id, group);
  }
  const as = (command: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', path.join(bin, command), ...args]) : run(path.join(bin, command), args);
  const port = await freePort();
  await as('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  // fsync off: only this server's processes stop in the test, never the machine, so every
  // commit is still in the kernel's hands when it comes back
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  const start = async () => {
    await as('pg_ctl', ['-D', data, '-o', options, '-l', path.join(dir, 'server.log'), '-w', '-t', '60', 'start']);
  };
  const stop = async (mode: 'fast' | 'immediate') => {
    await as('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '60', 'stop']);
  };
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop,
    start,
    async destroy() {
      await stop('immediate').catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
