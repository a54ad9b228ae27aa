import { ConfigError, loadConfig } from '../../src/config/config.ts';
import type { Db } from '../../src/db/knex.ts';
import { KekError } from '../../src/keys/kek.ts';
import { createLogger } from '../../src/log/logger.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { freePort } from './harness.ts';
import { logWatch, type LogWatch } from './logs.ts';
import { registerServer } from './settle.ts';

export type InProcessServer = Readonly<{
  /** the issuer, http://localhost:PORT (unless env.ISSUER names another) */
  url: string;
  /** http://127.0.0.1:PORT: this server itself, whatever its issuer */
  local: string;
  env: Record<string, string>;
  /** the server's own pool: read rows as the server sees them */
  db: Db;
  /** the running app (its current key set, cookie keys) */
  app: RunningServer['app'];
  logs(): string;
  log: LogWatch;
  /** Resolves once the changes to partners and APIs committed so far are in this server's caches. */
  settle(): Promise<void>;
  stop(): Promise<void>;
}>;

/**
 * The real server (real HTTP on loopback, real database) in the test's own process: starts in
 * a fraction of a spawned one's time and shares the clock. For tests whose subject is not the
 * process itself. `env` as for `startInstance` (DATABASE_URL, KEYS_DIR or PORTCULLIS_KEK…).
 * Several on one database are several instances. `clock` drives the app's caches and account
 * rules (see `testClock`).
 */
export async function startInProcess(env: Record<string, string>, options: { clock?: TestClock } = {}): Promise<InProcessServer> {
  const port = env.PORT && env.PORT !== '0' ? Number(env.PORT) : await freePort();
  const fullEnv = { ISSUER: `http://localhost:${port}`, ...env, PORT: String(port) };
  const log = logWatch();
  const server = await startServer(loadConfig(fullEnv), createLogger('info', log.write), { now: options.clock?.now });
  const unregister = registerServer({ databaseUrl: env.DATABASE_URL ?? '', settle: () => server.settle() });
  return {
    url: fullEnv.ISSUER,
    local: `http://127.0.0.1:${port}`,
    env: fullEnv,
    db: server.db,
    app: server.app,
    logs: log.text,
    log,
    settle: () => server.settle(),
    stop: () => {
      unregister();
      return server.close();
    },
  };
}

export type TestClock = Readonly<{ now(): number; advance(ms: number): void }>;

/** The wall clock plus whatever the test has moved it on by: a cache expires without a wait. */
export function testClock(): TestClock {
  let offset = 0;
  return {
    now: () => Date.now() + offset,
    advance(ms) {
      offset += ms;
    },
  };
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

/**
 * Why start-up is refused with `env`, in process: the error must be one `main.ts` prints as its
 * one line (a ConfigError or KekError: no "start-up failed", no stack), and a single line.
 * (test/integration/keys.kek.test.ts runs one such start as a process: exit code and stderr.)
 */
export async function startupRefusal(env: Record<string, string>): Promise<string> {
  const outcome = await startInProcess(env).then(
    async (server) => {
      await server.stop();
      return undefined;
    },
    (error: unknown) => error,
  );
  if (!(outcome instanceof ConfigError || outcome instanceof KekError))
    throw new Error(`start-up was not refused with a one-line error: ${String(outcome)}`);
  if (outcome.message.includes('\n')) throw new Error(`more than one line: ${outcome.message}`);
  return `portcullis: ${outcome.message}`;
}
