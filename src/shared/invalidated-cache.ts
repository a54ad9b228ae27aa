import { shareInFlight } from './in-flight.ts';

/**
 * A cache that is told when an entry changes (src/db/change-feed.ts) instead of guessing with a
 * short lifetime. An entry is the promise of the load that made it, so concurrent misses share
 * one query, and `forget` during a load also forgets what that load will bring (it was read
 * before the change). While `live()` is false (changes may not reach us) every call loads
 * afresh (concurrent calls still share one query). `maxAgeMs` bounds an entry's life even so;
 * past `maxEntries` the oldest entry goes. A failed load is forgotten at once.
 */
export function createInvalidatedCache<V>(options: {
  load: (key: string) => Promise<V>;
  live: () => boolean;
  maxEntries: number;
  maxAgeMs: number;
  now: () => number;
  /** Whether a loaded value may be kept (default: all); one that may not answers its own call only. */
  keep?: (value: V) => boolean;
}) {
  const entries = new Map<string, { at: number; value: Promise<V> }>();
  const direct = shareInFlight(options.load);
  return {
    get(key: string): Promise<V> {
      if (!options.live()) return direct(key);
      const hit = entries.get(key);
      if (hit && options.now() - hit.at < options.maxAgeMs) return hit.value;
      entries.delete(key);
      const entry = { at: options.now(), value: options.load(key) };
      entries.set(key, entry);
      const drop = () => {
        if (entries.get(key) === entry) entries.delete(key);
      };
      entry.value.then((value) => {
        if (options.keep && !options.keep(value)) drop();
      }, drop);
      if (entries.size > options.maxEntries) entries.delete(entries.keys().next().value as string);
      return entry.value;
    },
    /** Drops one entry, or (no key) every entry. */
    forget(key?: string): void {
      if (key === undefined) entries.clear();
      else entries.delete(key);
    },
  };
}
