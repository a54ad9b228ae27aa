const FORMAT = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'short', timeZone: 'UTC' });

/** An instant as the pages show it: `29 Nov 2026, 20:30 UTC`, with its ISO 8601 form for `<time datetime>`. */
export function timeWords(instant: number | null, unit: 'seconds' | 'milliseconds' = 'seconds') {
  if (instant === null || !Number.isFinite(instant)) return null;
  const at = new Date(unit === 'seconds' ? instant * 1000 : instant);
  return { iso: at.toISOString(), text: `${FORMAT.format(at)} UTC` };
}
