import type { SigningKeyRow } from './signing-key.store.ts';

/**
 * The signing-key lifecycle as pure functions of the rows and an instant: every instance
 * reading the same rows at the same time derives the same signer, JWKS and plan. No I/O here.
 *
 * A key is `next` from creation until `activates_at`, then signs (`active`) until its
 * successor activates (`retires_at`), then stays published (`retired`) until `removed_at`.
 * A revoked key leaves the JWKS at once and never signs again.
 */
export type RotationPolicy = Readonly<{
  /** A key signs this long before the next one takes over (KEY_ROTATION_INTERVAL). */
  intervalMs: number;
  /** A new key is in the JWKS this long before it signs (KEY_PREPUBLISH). */
  prepublishMs: number;
  /** A retired key stays in the JWKS this long (KEY_RETAIN), plus `graceMs`. */
  retainMs: number;
  /**
   * How late an instance may learn of a change made elsewhere (one poll interval): an
   * instance may sign with a key that long after another retired it, so removal waits too.
   */
  graceMs: number;
}>;

export type KeyState = 'next' | 'active' | 'retired' | 'revoked';

/** What a run of the lifecycle wants written: at most one new key, and retirement times. */
export type KeyPlan = Readonly<{
  create: { slot: number; activatesAt: number } | undefined;
  retire: ReadonlyArray<{ kid: string; retires_at: number | null; removed_at: number | null }>;
}>;

/**
 * When the key after `latest` is created: KEY_PREPUBLISH before `latest`'s period ends, and one
 * poll earlier still, so an instance that wakes a little late still prepublishes in full and
 * the period keeps its exact length.
 */
function dueAt(latest: SigningKeyRow, policy: RotationPolicy): number {
  return latest.activates_at + policy.intervalMs - policy.prepublishMs - policy.graceMs;
}

const byActivation = (a: SigningKeyRow, b: SigningKeyRow) => a.activates_at - b.activates_at || a.rotation_slot - b.rotation_slot;

/** Keys not revoked, oldest activation first: the chain of signers over time. */
function chain(rows: readonly SigningKeyRow[]): SigningKeyRow[] {
  return rows.filter((row) => row.revoked_at === null).sort(byActivation);
}

export function isPublished(row: SigningKeyRow, at: number): boolean {
  return row.revoked_at === null && (row.removed_at === null || row.removed_at > at);
}

/** The newest activated key that is neither revoked nor retired: the one that signs at `at`. */
export function signerAt(rows: readonly SigningKeyRow[], at: number): SigningKeyRow | undefined {
  return chain(rows)
    .filter((row) => row.activates_at <= at && (row.retires_at === null || row.retires_at > at) && isPublished(row, at))
    .at(-1);
}

export function stateAt(row: SigningKeyRow, rows: readonly SigningKeyRow[], at: number): KeyState {
  if (row.revoked_at !== null) return 'revoked';
  if (row.activates_at > at) return 'next';
  return signerAt(rows, at)?.kid === row.kid ? 'active' : 'retired';
}

/** The keys to publish at `at`, the signer first (oidc-provider signs with the first key). */
export function publishedAt(rows: readonly SigningKeyRow[], at: number): SigningKeyRow[] {
  const signer = signerAt(rows, at);
  const others = chain(rows).filter((row) => row !== signer && isPublished(row, at)).reverse();
  return signer ? [signer, ...others] : others;
}

/**
 * What to write so the rows are complete at `now`:
 * - no signer (first start, or the signer was revoked): a key that signs at once;
 * - no key pending and the signer's period ends within `prepublishMs` (+ a poll): the next key,
 *   signing when the period ends (never sooner than `prepublishMs` from now);
 * - each key in the chain retires when its successor activates, removed `retainMs + graceMs`
 *   later. A retirement already passed is never moved; a future one follows the chain (a
 *   revoked successor un-schedules it).
 * The new key's slot is one past the highest: instances racing on the same rows ask for the
 * same slot, and the unique constraint lets one of them win.
 */
export function planKeys(rows: readonly SigningKeyRow[], now: number, policy: RotationPolicy): KeyPlan {
  const slot = rows.reduce((max, row) => Math.max(max, row.rotation_slot), -1) + 1;
  const keys = chain(rows);
  const latest = keys.at(-1);
  let create: KeyPlan['create'];
  if (!signerAt(rows, now)) {
    create = { slot, activatesAt: now };
  } else if (latest && latest.activates_at <= now && now >= dueAt(latest, policy)) {
    create = { slot, activatesAt: Math.max(latest.activates_at + policy.intervalMs, now + policy.prepublishMs) };
  }

  const retire: Array<KeyPlan['retire'][number]> = [];
  keys.forEach((row, index) => {
    if (row.retires_at !== null && row.retires_at <= now) return;
    const successor = keys.at(index + 1);
    const retiresAt = successor ? successor.activates_at : null;
    const removedAt = retiresAt === null ? null : retiresAt + policy.retainMs + policy.graceMs;
    if (row.retires_at !== retiresAt || row.removed_at !== removedAt) retire.push({ kid: row.kid, retires_at: retiresAt, removed_at: removedAt });
  });
  return { create, retire };
}

/**
 * Until when a key signs, seen at `at`: its retirement once its successor exists (`retires_at`);
 * before that, the end of its period as planKeys will schedule it (KEY_ROTATION_INTERVAL after
 * it activates, or KEY_PREPUBLISH from now if the rotation is overdue). A revoked key signs no more.
 */
export function signsUntil(row: SigningKeyRow, at: number, policy: RotationPolicy): number | null {
  if (row.revoked_at !== null) return null;
  if (row.retires_at !== null) return row.retires_at;
  return Math.max(row.activates_at + policy.intervalMs, at + policy.prepublishMs);
}

/**
 * The next instant after `now` at which the signer or the JWKS changes, or a key falls due:
 * the rotation job wakes then, so a switch happens on time and not at the next poll.
 */
export function nextChangeAfter(rows: readonly SigningKeyRow[], now: number, policy: RotationPolicy): number | undefined {
  const keys = chain(rows);
  const latest = keys.at(-1);
  const instants = keys.flatMap((row) => [row.activates_at, row.retires_at, row.removed_at]);
  if (latest) instants.push(dueAt(latest, policy));
  const future = instants.filter((at): at is number => at !== null && at > now);
  return future.length ? Math.min(...future) : undefined;
}
