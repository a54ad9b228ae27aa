import type { Logger } from '../log/logger.ts';
import { purgeEndedWindows } from '../limits/rate-limit.store.ts';
import { purgeExpired } from '../oidc/payload.store.ts';
import type { Db } from './knex.ts';

/** Deletes expired provider rows now and then every `intervalSeconds`. Returns a stop function. */
export function startPurgeJob(db: Db, intervalSeconds: number, log: Logger): () => void {
  let running: Promise<void> | undefined;
  const run = () => {
    if (running) return;
    running = Promise.all([purgeExpired(db), purgeEndedWindows(db, Date.now())])
      .then(([count, windows]) => { if (count + windows) log.info('purged expired rows', { count, rate_limit_windows: windows }); })
      .catch((error: Error) => log.warn('purge failed', { err: error }))
      .finally(() => { running = undefined; });
  };
  run();
  const timer = setInterval(run, intervalSeconds * 1000);
  timer.unref();
  return () => clearInterval(timer);
}
