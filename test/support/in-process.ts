import { loadConfig } from '../../src/config/config.ts';
import type { Db } from '../../src/db/knex.ts';
import { createLogger } from '../../src/log/logger.ts';
import { startServer } from '../../src/server.ts';
import { freePort } from './harness.ts';

export type InProcessServer = Readonly<{
  /** the issuer, http://localhost:PORT */
  url: string;
  env: Record<string, string>;
  /** the server's own pool: read rows as the server sees them */
  db: Db;
  logs(): string;
  stop(): Promise<void>;
}>;

/**
 * The real server (real HTTP on loopback, real database) in the test's own process: starts in
 * a fraction of a spawned one's time and shares the clock. For tests whose subject is not the
 * process itself. `env` as for `startInstance` (DATABASE_URL, KEYS_DIR or PORTCULLIS_KEK…).
 */
export async function startInProcess(env: Record<string, string>): Promise<InProcessServer> {
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const fullEnv = { ISSUER: `http://localhost:${port}`, ...env, PORT: String(port) };
  let output = '';
  const log = createLogger('info', (line) => { output += line; });
  const server = await startServer(loadConfig(fullEnv), log);
  return { url: fullEnv.ISSUER, env: fullEnv, db: server.db, logs: () => output, stop: () => server.close() };
}

/**
 * Login rate limits off: for tests of the lockout and enrolment rules, which send more attempts
 * from one address, for one username or account, than the limits in front of them allow
 * (those limits have tests of their own: test/integration/limits.test.ts).
 */
export const LOGIN_LIMITS_OFF: Readonly<Record<string, string>> = {
  RATE_LIMIT_LOGIN_PER_IP: 'off',
  RATE_LIMIT_LOGIN_PER_USERNAME: 'off',
  RATE_LIMIT_SECOND_FACTOR_PER_ACCOUNT: 'off',
};
