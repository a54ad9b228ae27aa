import { cli, freshDatabaseUrl, instanceEnv, seedPartner, tempDir } from '../support/harness.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import type { SeededPartner } from '../support/http.ts';
import { fetchJwks, kidOf, requestToken, verifyWithFreshJwks } from '../support/keys.support.ts';

// Default rotation (30 days, published a day ahead); a one-second poll picks up CLI changes.
let baseEnv: Record<string, string>;
let env: Record<string, string>;
let server: InProcessServer;
let partner: SeededPartner;

beforeAll(async () => {
  const dir = tempDir();
  baseEnv = instanceEnv(dir, freshDatabaseUrl(dir), { KEY_POLL_INTERVAL: '1s' });
  server = await startInProcess(baseEnv);
  env = server.env;
  partner = await seedPartner(env);
});

afterAll(async () => {
  await server?.stop();
});

type KeyListing = {
  kid: string;
  state: string;
  activates_at: string;
  signs_until: string | null;
  retires_at: string | null;
  removed_at: string | null;
};
const listKeys = async () => (await cli(env, 'keys', 'list')).json as KeyListing[];
const stateOf = async (kid: string) => (await listKeys()).find((key) => key.kid === kid)?.state;
const token = async () => (await requestToken(server.url, partner)).token!;
const published = async (kid: string) => (await fetchJwks(server.url)).kids.includes(kid);
const signing = async (kid: string) => kidOf(await token()) === kid;
/** Runs a key command, then waits for the server to take the change in (its next poll). */
async function keysCommand(...argv: string[]) {
  const since = server.logs().length;
  const result = await cli(env, 'keys', ...argv);
  await server.log.next(/"msg":"signing keys changed"/, { since });
  return result;
}

describe('keys CLI on a running server', () => {
  let original: string;
  let scheduled: string;
  let emergency: string;

  test('keys list: the first key is active; JWKS Cache-Control stays below KEY_PREPUBLISH', async () => {
    const keys = await listKeys();
    expect(keys).toEqual([expect.objectContaining({ alg: 'ES256', state: 'active', retires_at: null, removed_at: null })]);
    for (const field of ['created_at', 'activates_at'] as const)
      expect((keys[0] as Record<string, unknown>)[field]).toMatch(/^\d{4}-\d\d-\d\dT.*Z$/);
    // no successor yet: retires_at is not scheduled, but the policy says when it stops signing
    expect(Date.parse(keys[0].signs_until!) - Date.parse(keys[0].activates_at)).toBe(30 * 86_400_000);
    original = keys[0].kid;
    expect(kidOf(await token())).toBe(original);
    expect((await fetchJwks(server.url)).maxAge).toBe(300);
  });

  test('keys rotate: the new key is published within a poll, and does not sign before KEY_PREPUBLISH', async () => {
    const rotated = await keysCommand('rotate');
    expect(rotated.code).toBe(0);
    expect(rotated.json.state).toBe('next');
    expect(Date.parse(rotated.json.activates_at) - Date.parse(rotated.json.created_at)).toBe(86_400_000);
    scheduled = rotated.json.kid;
    const originalNow = (await listKeys()).find((key) => key.kid === original)!;
    expect(originalNow.signs_until).toBe(rotated.json.activates_at); // its successor takes over then
    expect(originalNow.retires_at).toBe(rotated.json.activates_at);
    expect(await published(scheduled)).toBe(true);
    expect(await signing(original)).toBe(true);
    expect(await stateOf(original)).toBe('active');
  });

  test('keys rotate --now: a new key signs within a poll; the old one retires but still verifies', async () => {
    const before = await token();
    const rotated = await keysCommand('rotate', '--now');
    expect(rotated.json.state).toBe('active');
    emergency = rotated.json.kid;
    expect(await signing(emergency)).toBe(true);
    const keys = await listKeys();
    expect(keys.find((key) => key.kid === original)?.state).toBe('retired');
    expect(keys.find((key) => key.kid === scheduled)?.state).toBe('next');
    expect((await fetchJwks(server.url)).kids.sort()).toEqual([original, scheduled, emergency].sort());
    await expect(verifyWithFreshJwks(server.url, before, partner.uri)).resolves.toBeDefined();
  });

  test('keys revoke of the signer: out of the JWKS within a poll, its tokens fail, a new key signs, never it again', async () => {
    const signedByRevoked = await token();
    expect(kidOf(signedByRevoked)).toBe(emergency);
    const revoked = await keysCommand('revoke', emergency);
    expect(revoked.code).toBe(0);
    const replacement = (revoked.json as KeyListing[]).find((key) => key.state === 'active')!;
    expect(replacement.kid).not.toBe(emergency);
    expect((revoked.json as KeyListing[]).find((key) => key.kid === emergency)?.state).toBe('revoked');

    expect(await published(emergency)).toBe(false);
    await expect(verifyWithFreshJwks(server.url, signedByRevoked, partner.uri)).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
    const after = await Promise.all(Array.from({ length: 20 }, () => token()));
    expect(after.map(kidOf)).toEqual(after.map(() => replacement.kid));
    for (const fresh of after.slice(0, 3)) await expect(verifyWithFreshJwks(server.url, fresh, partner.uri)).resolves.toBeDefined();

    // nor after a restart
    await server.stop();
    server = await startInProcess(baseEnv);
    expect(kidOf(await token())).toBe(replacement.kid);
    expect(await published(emergency)).toBe(false);
  });

  test('keys revoke of the pending key takes it out of the JWKS; the signer stays', async () => {
    const signer = kidOf(await token());
    expect((await keysCommand('revoke', scheduled)).code).toBe(0);
    expect(await published(scheduled)).toBe(false);
    expect(await stateOf(scheduled)).toBe('revoked');
    expect(await signing(signer)).toBe(true);
  });

  test('bad usage is a one-line error', async () => {
    const unknown = await cli(env, 'keys', 'revoke', 'no-such-kid');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('portcullis keys revoke: no signing key no-such-kid\n');
    expect((await cli(env, 'keys', 'revoke')).code).toBe(2);
    expect((await cli(env, 'keys', 'rotate', '--later')).code).toBe(2);
  });
});
