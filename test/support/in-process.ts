import { loadConfig } from '../../src/config/config.ts';
import type { Db } from '../../src/db/knex.ts';
import { createLogger } from '../../src/log/logger.ts';
import { startServer } from '../../src/server.ts';
import { freePort } from './harness.ts';

export type InProcess = { url: string; env: Record<string, string>; db: Db; logs(): string; stop(): Promise<void> };

/**
 * Portcullis started inside the test process (real HTTP on loopback, real database): as
 * `startInstance` without the child process, for tests whose subject is not the process.
 */
export async function startInProcess(env: Record<string, string>): Promise<InProcess> {
  const port = await freePort();
  const fullEnv = { ISSUER: `http://localhost:${port}`, ...env, PORT: String(port) };
  const lines: string[] = [];
  const running = await startServer(loadConfig(fullEnv), createLogger('info', (line) => { lines.push(line); }));
  return { url: fullEnv.ISSUER, env: fullEnv, db: running.db, logs: () => lines.join(''), stop: () => running.close() };
}
