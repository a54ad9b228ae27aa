/**
 * The signing-key timeline (keyTimeline in src/keys/signing-key.service.ts) as a picture: one
 * row per key, its life as bars on a shared time axis — published and waiting (next), signing,
 * retired but still published, and where it was revoked — with a line at "now". Pure: the SVG
 * template (views/partials/key-timeline.eta) only draws these numbers; the table beside it is
 * the text alternative.
 */

/** One key as keyTimeline describes it (ISO dates or null). */
type TimelineKey = Readonly<{
  kid: string;
  state: string;
  created_at: string | null;
  activates_at: string | null;
  signs_until: string | null;
  retires_at: string | null;
  removed_at: string | null;
  revoked_at: string | null;
}>;

type Kind = 'waiting' | 'signing' | 'retired';

const WIDTH = 800;
const LABEL_WIDTH = 190;
const ROW_HEIGHT = 34;
/** room above the rows for the "now" label */
const TOP = 24;
const AXIS_HEIGHT = 36;
/** The picture shows the newest keys; the table lists them all. */
const MAX_ROWS = 8;

const time = (iso: string | null): number | undefined => (iso === null ? undefined : Date.parse(iso));
const day = (at: number) => new Date(at).toISOString().slice(0, 10);

export function keyTimelinePicture(timeline: Readonly<{ at: string; keys: readonly TimelineKey[] }>) {
  const now = Date.parse(timeline.at);
  const keys = timeline.keys.slice(-MAX_ROWS);
  const lives = keys.map((key) => {
    const created = time(key.created_at) ?? now;
    const activates = time(key.activates_at) ?? created;
    const revoked = time(key.revoked_at);
    const signsUntil = time(key.signs_until);
    const retires = time(key.retires_at);
    const removed = time(key.removed_at);
    const spans: Array<{ kind: Kind; from: number; to: number | undefined }> = [
      { kind: 'waiting', from: created, to: activates },
      { kind: 'signing', from: activates, to: retires ?? signsUntil },
    ];
    if (retires !== undefined) spans.push({ kind: 'retired', from: retires, to: removed });
    // a revocation ends whatever the key was doing at that instant
    const cut = spans
      .filter((span) => revoked === undefined || span.from < revoked)
      .map((span) => ({ ...span, to: revoked === undefined ? span.to : Math.min(span.to ?? revoked, revoked) }));
    return { key, cut, revoked };
  });
  const instants = [now, ...lives.flatMap(({ cut, revoked }) => [...cut.flatMap((span) => [span.from, span.to ?? now]), revoked ?? now])];
  const start = Math.min(...instants);
  const lastInstant = Math.max(...instants);
  const end = lastInstant + Math.max((lastInstant - start) * 0.04, 60_000);
  const plot = WIDTH - LABEL_WIDTH - 10;
  const x = (at: number) => Math.round((LABEL_WIDTH + ((at - start) / (end - start)) * plot) * 10) / 10;
  const rows = lives.map(({ key, cut, revoked }, i) => {
    const y = TOP + i * ROW_HEIGHT;
    return {
      y,
      textY: y + ROW_HEIGHT / 2 + 5,
      label: `${key.kid.slice(0, 10)}… ${key.state}`,
      state: key.state,
      bars: cut
        .filter((span) => (span.to ?? end) > span.from)
        .map((span) => ({
          kind: span.kind,
          x: x(span.from),
          width: Math.max(2, x(span.to ?? end) - x(span.from)),
          y: y + 8,
          height: ROW_HEIGHT - 16,
        })),
      revokedX: revoked === undefined ? undefined : x(revoked),
    };
  });
  const height = TOP + rows.length * ROW_HEIGHT + AXIS_HEIGHT;
  const axisY = TOP + rows.length * ROW_HEIGHT + 4;
  return {
    width: WIDTH,
    height,
    rows,
    now: { x: x(now), top: TOP - 6, bottom: axisY, textY: TOP - 10 },
    axis: {
      y: axisY,
      textY: axisY + 22,
      start: { x: LABEL_WIDTH, label: day(start) },
      end: { x: WIDTH - 10, label: day(end) },
    },
    summary: `${String(keys.length)} signing keys${timeline.keys.length > keys.length ? ' (the newest)' : ''} from ${day(start)} to ${day(end)}: ${keys
      .map((key) => `${key.kid.slice(0, 10)}… ${key.state}`)
      .join(', ')}. The table lists every key with its dates.`,
  };
}
