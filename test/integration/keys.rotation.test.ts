import { cli, freshDatabaseUrl, instanceEnv, seedPartner, tempDir } from '../support/harness.ts';
import type { SeededPartner } from '../support/http.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import { cachingVerifier, FAST_KEYS, fetchJwks, kidOf, requestToken, verifyWithFreshJwks } from '../support/keys.support.ts';

const errorCode = (error: unknown): string => {
  const { code, message } = error as { code?: string; message?: string };
  return code ?? message ?? String(error);
};

const expOf = (token: string): number => (JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as { exp: number }).exp;

let server: InProcessServer;
let partner: SeededPartner;

beforeAll(async () => {
  const dir = tempDir();
  server = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir), FAST_KEYS));
  partner = await seedPartner(server.env);
});

afterAll(async () => {
  await server?.stop();
});

type Issued = { kid: string; sentAt: number; receivedAt: number };
type KeyListing = { kid: string; state: string; activates_at: string; retires_at: string | null; removed_at: string | null };

describe('automatic rotation under a steady request loop', () => {
  test('every token verifies at a resource server caching the JWKS for the allowed time; keys switch on schedule', async () => {
    const { maxAge } = await fetchJwks(server.url);
    expect(maxAge).toBe(1); // min(300, KEY_PREPUBLISH / 2) = 1 s < KEY_PREPUBLISH = 3 s
    const verify = cachingVerifier(server.url, maxAge!);

    const first = await requestToken(server.url, partner);
    const firstToken = first.token!;
    const issued: Issued[] = [];
    const failures: string[] = [];
    const retiredChecks: Array<{ start: number; end: number; ok: boolean; code?: string }> = [];
    const deadline = Date.now() + 13_000; // three rotations and a removal at 4 s periods

    const requestLoop = async () => {
      const recent: Array<{ token: string; at: number }> = [];
      for (let round = 0; Date.now() < deadline; round += 1) {
        const sentAt = Date.now();
        const res = await requestToken(server.url, partner);
        const receivedAt = Date.now();
        if (res.status !== 200 || !res.token) {
          failures.push(`token endpoint answered ${res.status}`);
          continue;
        }
        issued.push({ kid: kidOf(res.token), sentAt, receivedAt });
        recent.push({ token: res.token, at: receivedAt });
        // the new token, and one issued about 1.5 s ago (perhaps by a key since retired)
        const older = recent.find((item) => receivedAt - item.at >= 1500);
        while (recent.length && receivedAt - recent[0].at >= 1500) recent.shift();
        for (const token of older ? [res.token, older.token] : [res.token]) {
          // a token that expired while a loaded machine got round to it says nothing about its key
          if (expOf(token) * 1000 <= Date.now() + 250) continue;
          await verify(token, partner.uri).catch((error: unknown) => failures.push(`${kidOf(token)}: ${errorCode(error)}`));
        }
        // every other round, the first key's token is checked at a resource server that fetches afresh
        if (round % 2 === 0) await retiredCheck();
        // the load's shape, not a wait for anything: a steady ~20 requests/s per client, under the
        // per-partner /token limit (1200/min)
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    const retiredCheck = async () => {
      {
        const start = Date.now();
        const outcome = await verifyWithFreshJwks(server.url, firstToken, partner.uri).then(
          () => ({ ok: true }),
          (error: unknown) => ({ ok: false, code: (error as { code?: string }).code }),
        );
        retiredChecks.push({ start, end: Date.now(), ...outcome });
      }
    };
    await Promise.all([requestLoop(), requestLoop()]);

    expect(failures).toEqual([]);
    expect(issued.length).toBeGreaterThan(50);

    const keys = (await cli(server.env, 'keys', 'list')).json as KeyListing[];
    const time = (iso: string | null) => (iso === null ? Infinity : Date.parse(iso));
    const signedBy = [...new Set(issued.map((item) => item.kid))];
    expect(signedBy.length).toBeGreaterThanOrEqual(4); // the first key and three successors
    // keys signed in activation order, each only from its activation to its retirement
    expect(signedBy).toEqual(keys.filter((key) => signedBy.includes(key.kid)).map((key) => key.kid));
    for (const kid of signedBy) {
      const key = keys.find((item) => item.kid === kid)!;
      const mine = issued.filter((item) => item.kid === kid);
      expect(Math.min(...mine.map((item) => item.receivedAt))).toBeGreaterThanOrEqual(time(key.activates_at));
      expect(Math.max(...mine.map((item) => item.sentAt))).toBeLessThanOrEqual(time(key.retires_at) + 500);
    }
    // periods of exactly KEY_ROTATION_INTERVAL
    const activations = keys.map((key) => time(key.activates_at));
    for (let i = 1; i < activations.length; i += 1) expect(activations[i] - activations[i - 1]).toBe(4000);

    // the first key's last token verifies while the key is retained, and not once it is removed
    const firstKey = keys.find((key) => key.kid === kidOf(firstToken))!;
    expect(firstKey.state).toBe('retired');
    expect(time(firstKey.removed_at) - time(firstKey.retires_at)).toBe(3000 + 1000); // KEY_RETAIN + one poll of grace
    // (a check counts as before removal if it ended before, as after if it started after)
    const before = retiredChecks.filter((check) => check.end < time(firstKey.removed_at));
    const after = retiredChecks.filter((check) => check.start > time(firstKey.removed_at) + 300);
    expect(before.filter((check) => check.start > time(firstKey.retires_at)).length).toBeGreaterThan(5);
    expect(before.every((check) => check.ok)).toBe(true);
    expect(after.length).toBeGreaterThan(5);
    expect(after.every((check) => !check.ok && check.code === 'ERR_JWKS_NO_MATCHING_KEY')).toBe(true);

    expect(server.logs()).toMatch(/KEY_RETAIN is shorter than the longest token lifetime/);
  }, 40_000);

  test('the JWKS holds next, active and retained keys only: public parts, unique kids, the signer first', async () => {
    const keys = (await cli(server.env, 'keys', 'list')).json as KeyListing[];
    const { jwks, kids } = await fetchJwks(server.url);
    const now = Date.now();
    const published = keys.filter((key) => key.state !== 'revoked' && Date.parse(key.removed_at ?? '9999-12-31') > now + 200);
    expect(new Set(kids)).toEqual(new Set(published.map((key) => key.kid)));
    expect(new Set(kids).size).toBe(kids.length);
    for (const key of jwks.keys) expect(Object.keys(key).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    // the signer comes first (asked twice, in case a switch fell between the two requests)
    const signerFirst = async () => (await fetchJwks(server.url)).kids[0] === kidOf((await requestToken(server.url, partner)).token!);
    expect((await signerFirst()) || (await signerFirst())).toBe(true);
  });
});
