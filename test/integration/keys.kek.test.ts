import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { kekId } from '../../src/keys/kek.ts';
import { cli, freshDatabaseUrl, instanceEnv, seedPartner, tempDir } from '../support/harness.ts';
import { startInProcess, startupRefusal } from '../support/in-process.ts';
import type { SeededPartner } from '../support/http.ts';
import { kidOf, requestToken } from '../support/keys.support.ts';
import { runUntilExit } from '../support/process.ts';

const newKek = () => randomBytes(32).toString('base64url');

let dir: string;
let base: Record<string, string>;
let partner: SeededPartner;
let kid: string;
const first = newKek();
const second = newKek();

beforeAll(async () => {
  dir = tempDir();
  base = instanceEnv(dir, freshDatabaseUrl(dir));
  const server = await startInProcess({ ...base, PORTCULLIS_KEK: first });
  try {
    partner = await seedPartner(server.env);
    kid = kidOf((await requestToken(server.url, partner)).token!);
  } finally {
    await server.stop();
  }
});

const keyCount = async () => ((await cli({ ...base, PORTCULLIS_KEK: second }, 'keys', 'list')).json as unknown[]).length;

/** Start-up must stop with exactly one line on stderr and a non-zero exit code (a real process). */
async function expectStartupError(env: Record<string, string>, message: RegExp) {
  const result = await runUntilExit(env);
  expect(result.code).not.toBe(0);
  expect(result.code).not.toBeNull();
  expect(result.stderr).toMatch(message);
  expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
}

/** The same, in process: the error `main.ts` prints as that one line. */
async function expectStartupRefused(env: Record<string, string>, message: RegExp) {
  expect(await startupRefusal(env)).toMatch(message);
}

describe('key-encryption keys', () => {
  test('keys rewrap moves every key to the first KEK; the old KEK can then go; no new key is made', async () => {
    const rewrap = await cli({ ...base, PORTCULLIS_KEK: `${second},${first}` }, 'keys', 'rewrap');
    expect(rewrap.code).toBe(0);
    // the signing key and the shared cookie keys (src/keys/cookie-key.service.ts)
    expect(rewrap.json).toEqual({
      rewrapped: 1,
      shared_secrets: 1,
      totp_secrets: 0,
      enrolments_restarted: 0,
      kek: kekId(Buffer.from(second, 'base64url')),
    });

    const server = await startInProcess({ ...base, PORTCULLIS_KEK: second });
    try {
      expect(kidOf((await requestToken(server.url, partner)).token!)).toBe(kid);
    } finally {
      await server.stop();
    }
    expect(await keyCount()).toBe(1);
  });

  test('the KEK the keys were sealed under before rewrap no longer opens them: one-line start-up error', async () => {
    await expectStartupError(
      { ...base, PORTCULLIS_KEK: first },
      /^portcullis: sealed under key-encryption key \S+, which is not configured/,
    );
    expect(await keyCount()).toBe(1);
  });

  test('a wrong KEK, a missing KEK file, a malformed KEK: one-line start-up errors, never a new key', async () => {
    await expectStartupRefused({ ...base, PORTCULLIS_KEK: newKek() }, /^portcullis: sealed under key-encryption key/);
    await expectStartupRefused({ ...base, KEYS_DIR: path.join(dir, 'empty') }, /^portcullis: .*kek is missing but the database holds keys/);
    await expectStartupRefused({ ...base, PORTCULLIS_KEK: 'short' }, /^portcullis: PORTCULLIS_KEK: each key must be 32 bytes/);
    expect(await keyCount()).toBe(1);
  });

  test('key commands refuse a wrong KEK rather than seal a key nobody can open', async () => {
    const env = { ...base, PORTCULLIS_KEK: newKek() };
    for (const args of [['rotate'], ['rotate', '--now'], ['rewrap']]) {
      const result = await cli(env, 'keys', ...args);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/^portcullis keys \w+: sealed under key-encryption key .*\n$/);
    }
    expect(await keyCount()).toBe(1);
  });

  test('configuration errors are one line too', async () => {
    await expectStartupRefused(
      { ...base, PORTCULLIS_KEK: second, KEY_PREPUBLISH: '40d' },
      /^portcullis: KEY_PREPUBLISH \(3456000s\) must be shorter than KEY_ROTATION_INTERVAL/,
    );
  });
});
