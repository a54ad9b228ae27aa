import { keyTimelinePicture } from '../../src/admin/key-timeline.picture.ts';
import { minuteCounts } from '../../src/shared/minute-counts.ts';

const MINUTE = 60_000;
const DAY = 86_400_000;

test('minute counts: the last 60 minutes by the minute, older minutes dropped, a slot reused after a lap', () => {
  let now = Date.UTC(2026, 10, 29, 20, 0, 30);
  const counts = minuteCounts(() => now);
  counts.add();
  counts.add(2);
  now += 30 * MINUTE;
  counts.add(4);
  expect(counts.total()).toBe(7);
  now += 30 * MINUTE; // the first minute is now 60 minutes old
  expect(counts.total()).toBe(4);
  counts.add(); // the same slot as the first minute, a lap later: starts from zero
  expect(counts.total()).toBe(5);
  now += 24 * 60 * MINUTE;
  expect(counts.total()).toBe(0);
});

test('the key timeline picture: bars in order of life, a revocation cuts the key short, every bar inside the plot', () => {
  const at = Date.UTC(2026, 10, 29);
  const iso = (ms: number) => new Date(ms).toISOString();
  const picture = keyTimelinePicture({
    at: iso(at),
    keys: [
      {
        kid: 'old-key-000',
        state: 'retired',
        created_at: iso(at - 40 * DAY),
        activates_at: iso(at - 40 * DAY),
        signs_until: iso(at - 10 * DAY),
        retires_at: iso(at - 10 * DAY),
        removed_at: iso(at - 9 * DAY),
        revoked_at: null,
      },
      {
        kid: 'leaked-key-1',
        state: 'revoked',
        created_at: iso(at - 11 * DAY),
        activates_at: iso(at - 10 * DAY),
        signs_until: null,
        retires_at: null,
        removed_at: null,
        revoked_at: iso(at - DAY),
      },
      {
        kid: 'signer-key-2',
        state: 'active',
        created_at: iso(at - DAY),
        activates_at: iso(at - DAY),
        signs_until: iso(at + 29 * DAY),
        retires_at: null,
        removed_at: null,
        revoked_at: null,
      },
    ],
  });
  // a key that signed from its creation has no "waiting" bar
  expect(picture.rows.map((row) => row.bars.map((bar) => bar.kind))).toEqual([['signing', 'retired'], ['waiting', 'signing'], ['signing']]);
  const leaked = picture.rows[1];
  expect(leaked.revokedX).toBeDefined();
  expect(leaked.bars[1].x + leaked.bars[1].width).toBeCloseTo(leaked.revokedX!, 0);
  for (const bar of picture.rows.flatMap((row) => row.bars)) {
    expect(bar.x).toBeGreaterThanOrEqual(picture.axis.start.x);
    expect(bar.x + bar.width).toBeLessThanOrEqual(picture.axis.end.x);
  }
  expect(picture.now.x).toBeGreaterThan(picture.axis.start.x);
  expect(picture.summary).toContain('leaked-key… revoked');
});
