import type { Db } from '../db/knex.ts';
import type { Logger } from '../log/logger.ts';
import { watchForChange } from '../shared/change-watch.ts';
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
  return watchForChange({
    pollMs: deps.pollMs,
    read: () => loadCookieKeys(deps.db, deps.keyring),
    changed: (keys) => keys.join(',') !== deps.current().join(','),
    apply(keys) {
      deps.use(keys);
      deps.log.info('cookie keys changed', { cookie_keys: keys.length });
    },
    failed: (error) => deps.log.warn('cookie key check failed', { err: error }),
  });
}
