import type { Logger } from '../log/logger.ts';

/** Deletes rows that ended before `now`; resolves to how many it deleted. */
export type Purge = (now: number) => Promise<number>;

/**
 * Runs every purge now and then every `intervalSeconds` (a run still going is not started
 * again); logs the counts, named as `purges` names them, when any row went. The purges come
 * from the caller: the tables are the domains' business, the timer is the database's.
 * Returns a stop function.
 */
export function startPurgeJob(purges: Readonly<Record<string, Purge>>, intervalSeconds: number, log: Logger): () => void {
  let running: Promise<void> | undefined;
  const run = () => {
    if (running) return;
    const now = Date.now();
    const names = Object.keys(purges);
    running = Promise.all(names.map((name) => purges[name](now)))
      .then((counts) => {
        if (counts.some((count) => count > 0))
          log.info('purged expired rows', Object.fromEntries(names.map((name, i) => [name, counts[i]])));
      })
      .catch((error: unknown) => log.warn('purge failed', { err: error }))
      .finally(() => {
        running = undefined;
      });
  };
  run();
  const timer = setInterval(run, intervalSeconds * 1000);
  timer.unref();
  return () => clearInterval(timer);
}
