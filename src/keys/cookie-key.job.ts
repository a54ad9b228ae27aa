import type { Db } from '../db/knex.ts';
import type { Logger } from '../log/logger.ts';
import { loadCookieKeys } from './cookie-key.service.ts';
import type { Keyring } from './kek.ts';

export type CookieKeyWatchDeps = Readonly<{
  db: Db;
  keyring: Keyring;
  pollMs: number;
  log: Logger;
  /** The cookie keys being served now. */
  current(): readonly string[];
  /** Serve with these keys from now on (build a Provider, swap it in). */
  use(keys: string[]): void;
}>;

/**
 * Applies `keys rotate-cookie-keys` (run by the CLI or another instance) without a restart: every
 * `pollMs` the sealed row is read, and a changed list is swapped in. Returns `stop`.
 */
export function watchCookieKeys(deps: CookieKeyWatchDeps): { stop(): Promise<void> } {
  let running: Promise<void> | undefined;
  const tick = (): Promise<void> => {
    running ??= loadCookieKeys(deps.db, deps.keyring)
      .then((keys) => {
        if (keys.join(',') === deps.current().join(',')) return;
        deps.use(keys);
        deps.log.info('cookie keys changed', { cookie_keys: keys.length });
      })
      .catch((error: unknown) => deps.log.warn('cookie key check failed', { err: error }))
      .finally(() => {
        running = undefined;
      });
    return running;
  };
  const timer = setInterval(() => void tick(), deps.pollMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
