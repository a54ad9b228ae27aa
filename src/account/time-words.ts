const FORMAT = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'short', timeZone: 'UTC' });

/** An instant (ISO 8601) as the pages show it: `29 Nov 2026, 20:30 UTC`, with its ISO form for `<time datetime>`. */
export function timeWords(iso: string | null) {
  const at = iso === null ? Number.NaN : Date.parse(iso);
  if (Number.isNaN(at)) return null;
  return { iso: new Date(at).toISOString(), text: `${FORMAT.format(at)} UTC` };
}
