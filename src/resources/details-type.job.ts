import type { Db } from '../db/knex.ts';
import type { Logger } from '../log/logger.ts';
import { watchForChange } from '../shared/change-watch.ts';
import { listDetailsTypeNames } from './resource.service.ts';

export type DetailsTypeWatchDeps = Readonly<{
  db: Db;
  pollMs: number;
  log: Logger;
  /** The type names the Provider being served was built with. */
  current(): readonly string[];
  /** Serve a Provider that knows these names from now on (build one, swap it in). */
  use(names: string[]): void;
}>;

/**
 * oidc-provider knows the `authorization_details` type names it was built with, no others: a
 * name registered or dropped by the CLI or another instance is taken by building a new Provider.
 * Every `pollMs` the names are read, and a changed list is swapped in. Returns `stop`.
 */
export function watchDetailsTypes(deps: DetailsTypeWatchDeps): { stop(): Promise<void> } {
  return watchForChange({
    pollMs: deps.pollMs,
    read: () => listDetailsTypeNames(deps.db),
    changed: (names) => names.join('\n') !== deps.current().join('\n'),
    apply(names) {
      deps.use(names);
      deps.log.info('authorization_details types changed', { types: names.length });
    },
    failed: (error) => deps.log.warn('authorization_details types check failed', { err: error }),
  });
}
