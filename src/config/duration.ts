const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** Parses `90s`, `15m`, `12h`, `30d` (or a bare number of seconds) into whole seconds. */
export function parseDuration(text: string): number {
  const match = /^\s*(\d+)\s*([smhd]?)\s*$/.exec(text);
  if (!match) throw new Error(`"${text}" is not a duration (use e.g. 90s, 15m, 12h, 30d)`);
  const seconds = Number(match[1]) * UNITS[match[2] || 's'];
  if (!Number.isSafeInteger(seconds) || seconds <= 0) throw new Error(`"${text}" must be a positive duration`);
  return seconds;
}
