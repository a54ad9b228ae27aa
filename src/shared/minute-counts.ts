const MINUTE_MS = 60_000;

/**
 * Counts of an event per minute over the last `minutes` minutes, in this process only: a ring of
 * `minutes` slots, each stamped with the minute it counts (a slot from an older lap is stale and
 * starts again from zero). O(1) to add, O(minutes) to total; no timer.
 */
export function minuteCounts(now: () => number, minutes = 60) {
  const counts = new Array<number>(minutes).fill(0);
  const stamps = new Array<number>(minutes).fill(-1);
  return {
    add(n = 1): void {
      const minute = Math.floor(now() / MINUTE_MS);
      const slot = minute % minutes;
      if (stamps[slot] !== minute) {
        stamps[slot] = minute;
        counts[slot] = 0;
      }
      counts[slot] += n;
    },
    /** The count over the current minute and the `minutes - 1` before it. */
    total(): number {
      const oldest = Math.floor(now() / MINUTE_MS) - minutes + 1;
      let sum = 0;
      for (let slot = 0; slot < minutes; slot += 1) if (stamps[slot] >= oldest) sum += counts[slot];
      return sum;
    },
  };
}
