import { nextChangeAfter, planKeys, publishedAt, signerAt, stateAt, type RotationPolicy } from '../../src/keys/signing-key.lifecycle.ts';
import type { SigningKeyRow } from '../../src/keys/signing-key.store.ts';

const S = 1000;
const policy: RotationPolicy = { intervalMs: 100 * S, prepublishMs: 10 * S, retainMs: 20 * S, graceMs: 1 * S };

function key(kid: string, slot: number, activatesAt: number, extra: Partial<SigningKeyRow> = {}): SigningKeyRow {
  return {
    kid,
    alg: 'ES256',
    public_jwk: '{}',
    private_jwk: 'sealed',
    rotation_slot: slot,
    created_at: activatesAt,
    activates_at: activatesAt,
    retires_at: null,
    removed_at: null,
    revoked_at: null,
    ...extra,
  };
}

/** Applies a plan the way maintainKeys does, so a schedule can be played forward in time. */
function apply(rows: SigningKeyRow[], now: number): SigningKeyRow[] {
  let next = rows;
  let plan = planKeys(next, now, policy);
  if (plan.create) {
    next = [...next, key(`k${plan.create.slot}`, plan.create.slot, plan.create.activatesAt, { created_at: now })];
    plan = planKeys(next, now, policy);
  }
  return next.map((row) => {
    const times = plan.retire.find((item) => item.kid === row.kid);
    return times ? { ...row, ...times } : row;
  });
}

describe('planKeys', () => {
  test('no keys: the first key signs at once, in slot 0', () => {
    expect(planKeys([], 5000, policy)).toEqual({ create: { slot: 0, activatesAt: 5000 }, retire: [] });
  });

  test('nothing to do in the middle of a period', () => {
    expect(planKeys([key('a', 0, 0)], 50 * S, policy)).toEqual({ create: undefined, retire: [] });
  });

  test('KEY_PREPUBLISH (+ one poll) before the period ends, the next key is created to sign when it ends', () => {
    expect(planKeys([key('a', 0, 0)], 89 * S - 1, policy).create).toBeUndefined();
    expect(planKeys([key('a', 0, 0)], 89 * S, policy).create).toEqual({ slot: 1, activatesAt: 100 * S });
    // woken late, it still signs when the period ends: periods keep their length
    expect(planKeys([key('a', 0, 0)], 89 * S + 900, policy).create).toEqual({ slot: 1, activatesAt: 100 * S });
  });

  test('a key created late (instances were down) still waits KEY_PREPUBLISH before it signs', () => {
    expect(planKeys([key('a', 0, 0)], 250 * S, policy).create).toEqual({ slot: 1, activatesAt: 260 * S });
  });

  test('a pending key retires its predecessor when it activates, removed KEY_RETAIN + grace later', () => {
    const rows = [key('a', 0, 0), key('b', 1, 100 * S)];
    expect(planKeys(rows, 91 * S, policy)).toEqual({ create: undefined, retire: [{ kid: 'a', retires_at: 100 * S, removed_at: 121 * S }] });
  });

  test('the slot is one past the highest, revoked keys included: racing instances ask for the same one', () => {
    const rows = [key('a', 0, 0, { revoked_at: 5, removed_at: 5, retires_at: 5 }), key('b', 3, 10)];
    expect(planKeys(rows, 95 * S, policy).create?.slot).toBe(4);
  });

  test('a revoked signer gets a replacement that signs at once', () => {
    const rows = [key('a', 0, 0, { revoked_at: 50 * S, retires_at: 50 * S, removed_at: 50 * S })];
    expect(planKeys(rows, 50 * S, policy).create).toEqual({ slot: 1, activatesAt: 50 * S });
  });

  test('a revoked pending key un-schedules its predecessor’s retirement', () => {
    const rows = [
      key('a', 0, 0, { retires_at: 100 * S, removed_at: 121 * S }),
      key('b', 1, 100 * S, { revoked_at: 92 * S, removed_at: 92 * S }),
    ];
    const plan = planKeys(rows, 92 * S, policy);
    expect(plan.retire).toEqual([{ kid: 'a', retires_at: null, removed_at: null }]);
    // and then the next key is due again, prepublished from now
    expect(plan.create).toEqual({ slot: 2, activatesAt: 102 * S });
  });

  test('a retirement already passed is never moved', () => {
    const rows = [
      key('a', 0, 0, { retires_at: 100 * S, removed_at: 121 * S }),
      key('b', 1, 100 * S, { revoked_at: 110 * S, retires_at: 110 * S, removed_at: 110 * S }),
      key('c', 2, 110 * S),
    ];
    expect(planKeys(rows, 110 * S, policy).retire).toEqual([]);
    expect(signerAt(rows, 110 * S)?.kid).toBe('c');
  });
});

describe('signer, JWKS and state over several periods', () => {
  test('playing the schedule forward: one key per period, each prepublished and retained', () => {
    let rows: SigningKeyRow[] = [];
    const seen: string[] = [];
    for (let now = 0; now <= 400 * S; now += S) {
      rows = apply(rows, now);
      const signer = signerAt(rows, now)!;
      if (seen.at(-1) !== signer.kid) seen.push(signer.kid);
      // the signer is first, kids are unique, and every key was published KEY_PREPUBLISH before it signed
      const published = publishedAt(rows, now);
      expect(published[0].kid).toBe(signer.kid);
      expect(new Set(published.map((row) => row.kid)).size).toBe(published.length);
      expect(signer.activates_at - signer.created_at === 0 || signer.activates_at - signer.created_at >= policy.prepublishMs).toBe(true);
    }
    expect(seen).toEqual(['k0', 'k1', 'k2', 'k3', 'k4']);
    expect(rows.map((row) => row.activates_at)).toEqual([0, 100 * S, 200 * S, 300 * S, 400 * S]);
    expect(rows.map((row) => row.created_at)).toEqual([0, 89 * S, 189 * S, 289 * S, 389 * S]);

    const at = 305 * S;
    expect(rows.map((row) => stateAt(row, rows, at))).toEqual(['retired', 'retired', 'retired', 'active', 'next']);
    // k2 retired at 300 s is published until 321 s; k1 (retired at 200 s) is gone
    expect(publishedAt(rows, at).map((row) => row.kid)).toEqual(['k3', 'k4', 'k2']);
    expect(publishedAt(rows, 321 * S).map((row) => row.kid)).toEqual(['k3', 'k4']);
  });

  test('a revoked key is never published and never signs, even before it would activate', () => {
    const rows = [key('a', 0, 0), key('b', 1, 10 * S, { revoked_at: 5 * S, removed_at: 5 * S })];
    for (const at of [6 * S, 20 * S]) {
      expect(signerAt(rows, at)?.kid).toBe('a');
      expect(publishedAt(rows, at).map((row) => row.kid)).toEqual(['a']);
      expect(stateAt(rows[1], rows, at)).toBe('revoked');
    }
  });
});

describe('nextChangeAfter', () => {
  test('wakes at the next creation, activation, retirement or removal', () => {
    const rows = [key('a', 0, 0, { retires_at: 100 * S, removed_at: 121 * S }), key('b', 1, 100 * S)];
    expect(nextChangeAfter(rows, 95 * S, policy)).toBe(100 * S);
    expect(nextChangeAfter(rows, 100 * S, policy)).toBe(121 * S);
    expect(nextChangeAfter(rows, 121 * S, policy)).toBe(189 * S);
    expect(nextChangeAfter([], 0, policy)).toBeUndefined();
  });
});
