import cluster from 'node:cluster';
import { runPrimary } from './cluster/cluster.primary.ts';
import { ConfigError, loadConfig } from './config/config.ts';
import { KekError } from './keys/kek.ts';
import { createLogger } from './log/logger.ts';
import { safeError } from './log/safe-error.ts';
import { listResources } from './resources/resource.store.ts';
import { reportStartup, startServer } from './server.ts';
import { prepareStorage } from './storage.ts';

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  // a person at a terminal reads a short block about the start; a log collector gets JSON lines
  const terminal = process.stdout.isTTY ? (text: string) => process.stdout.write(text) : undefined;

  if (config.workers > 1 && cluster.isPrimary) {
    // migrate, check the KEK and make keys once, then fork: workers find everything in place
    const { db, created } = await prepareStorage(config, log);
    const apisRegistered = (await listResources(db)).some((resource) => !resource.builtIn); // the admin API is built in
    await db.destroy();
    reportStartup({ issuer: config.issuer, created, apisRegistered }, { log, terminal });
    runPrimary(config, log.child({ role: 'primary' }));
    return;
  }

  const running = await startServer(config, cluster.isWorker ? log.child({ worker: cluster.worker?.id }) : log, {
    clusterWorker: cluster.isWorker,
  });
  if (!cluster.isWorker) reportStartup(running.startup, { log, terminal });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal });
    const force = setTimeout(() => {
      log.error('shutdown grace period over; exiting with requests still open');
      process.exit(1);
    }, config.shutdownGraceSeconds * 1000);
    force.unref();
    running.close().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        log.error('shutdown failed', { error: safeError(error).message });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((error: unknown) => {
  const known = error instanceof ConfigError || error instanceof KekError;
  process.stderr.write(`portcullis: ${known ? error.message : `start-up failed: ${safeError(error).message}`}\n`);
  process.exit(1);
});
