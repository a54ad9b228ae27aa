import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../../src/cli/cli.ts';
import type { SeededPartner } from './http.ts';
import { settleServers } from './settle.ts';

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

async function runInProcess(env: Record<string, string>, argv: string[], stdin?: () => Promise<string>): Promise<CliResult> {
  const out = { stdout: '', stderr: '' };
  const code = await runCli(
    argv,
    { stdout: (text) => (out.stdout += text), stderr: (text) => (out.stderr += text), ...(stdin ? { stdin } : {}) },
    env,
  );
  // what the command changed is in every in-process server's cache before the test goes on
  await settleServers(env.DATABASE_URL);
  return cliResult(code, out.stdout, out.stderr);
}

/** `portcullis …` in this process (fast), against the database in `env`. */
export function cli(env: Record<string, string>, ...argv: string[]): Promise<CliResult> {
  return runInProcess(env, argv);
}

/** `portcullis …` in this process with `input` on standard input (`--password-stdin`). */
export function cliWithInput(env: Record<string, string>, input: string, ...argv: string[]): Promise<CliResult> {
  return runInProcess(env, argv, () => Promise.resolve(input));
}

/** `partner create` for an app that acts for people (authorization code, one redirect URI): its credentials. */
export async function createCodePartner(
  env: Record<string, string>,
  redirectUri: string,
  options: { name?: string; scope?: string; public?: boolean } = {},
): Promise<{ clientId: string; clientSecret?: string }> {
  const created = await cli(
    env,
    'partner',
    'create',
    '--name',
    options.name ?? 'Acme Budgeting',
    '--scope',
    options.scope ?? 'payments:read',
    '--grant',
    'authorization_code',
    '--redirect-uri',
    redirectUri,
    ...(options.public ? ['--public'] : []),
  );
  if (created.code !== 0) throw new Error(created.stderr);
  return { clientId: created.json.client_id as string, clientSecret: (created.json.client_secret as string | null) ?? undefined };
}

/** A command's outcome, with its standard output parsed when it is JSON. */
export function cliResult(code: number, stdout: string, stderr: string): CliResult {
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch {
    json = undefined;
  }
  return { code, stdout, stderr, json };
}

/** Base environment for an instance sharing `dir` (KEK) and `databaseUrl` with others. */
export function instanceEnv(dir: string, databaseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return { DATABASE_URL: databaseUrl, KEYS_DIR: path.join(dir, 'keys'), LOG_LEVEL: 'info', ...extra };
}

/** Registers an API and a partner for it; returns the partner's credentials. */
export async function seedPartner(
  env: Record<string, string>,
  options: { uri?: string; scopes?: string; allowed?: string; name?: string } = {},
): Promise<SeededPartner> {
  const uri = options.uri ?? 'https://api.bank.test/payments';
  const resource = await cli(
    env,
    'resource',
    'create',
    '--uri',
    uri,
    '--scope',
    options.scopes ?? 'payments:read payments:write',
    '--default',
  );
  if (resource.code !== 0 && !resource.stderr.includes('already')) throw new Error(resource.stderr);
  const partner = await cli(env, 'partner', 'create', '--name', options.name ?? 'Acme Bank', '--scope', options.allowed ?? 'payments:read');
  if (partner.code !== 0) throw new Error(partner.stderr);
  return { uri, clientId: partner.json.client_id as string, clientSecret: partner.json.client_secret as string };
}
