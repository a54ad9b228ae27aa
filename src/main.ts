import { ConfigError, loadConfig } from './config/config.ts';
import { KekError } from './keys/kek.ts';
import { createLogger } from './log/logger.ts';
import { startServer } from './server.ts';

const SHUTDOWN_GRACE_MS = 10_000;

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  const running = await startServer(config, log);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal });
    const force = setTimeout(() => {
      log.error('shutdown grace period over; exiting with requests still open');
      process.exit(1);
    }, SHUTDOWN_GRACE_MS);
    force.unref();
    running.close().then(() => process.exit(0), (error: Error) => {
      log.error('shutdown failed', { error: error.message });
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((error: Error) => {
  const known = error instanceof ConfigError || error instanceof KekError;
  process.stderr.write(`portcullis: ${known ? error.message : `start-up failed: ${error.message}`}\n`);
  process.exit(1);
});
