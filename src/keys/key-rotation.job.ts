import type { Db } from '../db/knex.ts';
import type { Logger } from '../log/logger.ts';
import type { Keyring } from './kek.ts';
import { nextChangeAfter, type RotationPolicy } from './signing-key.lifecycle.ts';
import { keySetVersion, maintainKeys, toKeySet, type KeySet } from './signing-key.service.ts';
import type { SigningKeyRow } from './signing-key.store.ts';

export type KeyRotationDeps = Readonly<{
  db: Db;
  keyring: Keyring;
  policy: RotationPolicy;
  /** Re-read the keys at least this often: changes made by the CLI or another instance. */
  pollMs: number;
  log: Logger;
  /** The key set being served now. */
  current(): KeySet;
  /** Serve this key set from now on (build a Provider, swap it in). */
  use(keySet: KeySet): void;
  now?: () => number;
}>;

/** setTimeout holds 32-bit milliseconds; never sleep longer than a poll anyway. */
const MAX_DELAY_MS = 2 ** 31 - 1;
/** Wake just after an instant, so `now >= instant` holds when the tick reads the clock. */
const LATE_MS = 5;

/**
 * Keeps this instance's keys current: each tick brings the rows up to date (creating the next
 * key when due, idempotently), and swaps in a new Provider when the signer or the JWKS changed.
 * Ticks run every `pollMs`, and also at the next scheduled change, so a key starts signing at
 * its instant rather than up to a poll later. Returns `stop`, which waits for a running tick,
 * and `tick`.
 */
export function startKeyRotationJob(deps: KeyRotationDeps): { stop(): Promise<void>; tick(): Promise<void> } {
  const now = deps.now ?? Date.now;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;

  const schedule = (delayMs: number) => {
    if (stopped) return;
    timer = setTimeout(() => void tick(), Math.min(Math.max(0, delayMs), MAX_DELAY_MS));
    timer.unref();
  };

  let known: readonly SigningKeyRow[] | undefined;

  /** The rows brought up to date; while the database is unreachable, the rows last read. */
  async function currentRows(at: number): Promise<readonly SigningKeyRow[]> {
    try {
      known = await maintainKeys(deps.db, deps.keyring, deps.policy, at);
    } catch (error) {
      if (!known) throw error;
      // a key already scheduled still takes over on time: it was published long ago
      deps.log.warn('key rotation check failed; switching on the keys last read', { err: error });
    }
    return known;
  }

  async function once(): Promise<number> {
    const at = now();
    const rows = await currentRows(at);
    if (keySetVersion(rows, at) !== deps.current().version) {
      const previous = deps.current();
      const next = toKeySet(rows, deps.keyring, at);
      deps.use(next);
      deps.log.info('signing keys changed', { signing_kid: next.signingKid, previous_kid: previous.signingKid, published: next.keys.map((key) => key.kid) });
    }
    const change = nextChangeAfter(rows, at, deps.policy);
    return change === undefined ? deps.pollMs : Math.min(deps.pollMs, change - now() + LATE_MS);
  }

  function tick(): Promise<void> {
    if (running) return running;
    clearTimeout(timer);
    running = once()
      .then(schedule, (error: unknown) => {
        deps.log.warn('key rotation check failed', { err: error });
        schedule(deps.pollMs);
      })
      .finally(() => {
        running = undefined;
      });
    return running;
  }

  schedule(0);
  return {
    /** Checks now, or joins the check under way: a test on a fake clock drives the job with it. */
    tick,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
