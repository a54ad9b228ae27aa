import { loadConfig } from '../../src/config/config.ts';
import { createLogger } from '../../src/log/logger.ts';
import { startServer, type RunningServer } from '../../src/server.ts';

/**
 * Portcullis in this process (fast: no child process) on a free loopback port, configured by
 * `env` as `npm start` would be; silent unless `env` sets LOG_LEVEL. For what is not about the
 * process itself; signals, cluster mode and the CLI need `startInstance` (harness.ts).
 */
export async function startLocalServer(env: Record<string, string>): Promise<RunningServer & { env: Record<string, string> }> {
  const config = loadConfig({ HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'silent', ...env });
  return { ...(await startServer(config, createLogger(config.logLevel))), env };
}
