import cluster, { type Worker } from 'node:cluster';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Config } from '../config/config.ts';
import type { Logger } from '../log/logger.ts';
import { serveClusterMetrics } from './cluster-metrics.ipc.ts';

/** A worker that dies sooner than this after its start is replaced only after RESTART_DELAY_MS. */
const QUICK_DEATH_MS = 5000;
const RESTART_DELAY_MS = 1000;

/**
 * WORKERS=N: the primary forks N workers sharing the port (node:cluster), replaces any that
 * dies, and on SIGTERM/SIGINT passes the signal on and waits for them to drain (each within
 * SHUTDOWN_GRACE); it exits 0 when every worker did. The caller has already migrated and made
 * the keys, so workers find everything in place.
 */
export function runPrimary(config: Config, log: Logger, exit: (code: number) => void = (code) => process.exit(code)): void {
  const registry = new Registry();
  const restarts = new Counter({ name: 'portcullis_worker_restarts_total', help: 'Workers replaced after dying', registers: [registry] });
  new Gauge({
    name: 'portcullis_workers',
    help: 'Workers alive',
    registers: [registry],
    collect() {
      this.set(Object.keys(cluster.workers ?? {}).length);
    },
  });
  serveClusterMetrics(registry);

  const startedAt = new Map<number, number>();
  let stopping = false;
  let failedStop = false;
  const fork = (): Worker => {
    const worker = cluster.fork();
    startedAt.set(worker.id, Date.now());
    return worker;
  };

  cluster.on('exit', (worker, code, signal) => {
    const lived = Date.now() - (startedAt.get(worker.id) ?? 0);
    startedAt.delete(worker.id);
    if (stopping) {
      if (code !== 0) failedStop = true;
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        log.info('all workers stopped', { clean: !failedStop });
        exit(failedStop ? 1 : 0);
      }
      return;
    }
    restarts.inc();
    log.warn('worker died; starting a new one', { worker_pid: worker.process.pid, code, signal, lived_ms: lived });
    setTimeout(
      () => {
        if (!stopping) fork();
      },
      lived < QUICK_DEATH_MS ? RESTART_DELAY_MS : 0,
    );
  });

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down workers', { signal });
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(signal);
    if (Object.keys(cluster.workers ?? {}).length === 0) exit(0);
    const force = setTimeout(
      () => {
        log.error('workers did not stop within the grace period; exiting');
        for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
        exit(1);
      },
      config.shutdownGraceSeconds * 1000 + 2000,
    );
    force.unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  for (let i = 0; i < config.workers; i++) fork();
  log.info('cluster started', { workers: config.workers, port: config.port });
}
