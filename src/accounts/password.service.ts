import { randomBytes } from 'node:crypto';
import { constantTimeEqual } from '../shared/constant-time.ts';
import { createHashPool } from './password-hash.pool.ts';

/**
 * Password hashes: argon2id at OWASP's first recommended setting (m=19 MiB, t=2, p=1), with
 * Node's built-in argon2 on low-priority threads of their own (password-hash.pool.ts), stored in the PHC string
 * format `$argon2id$v=19$m=19456,t=2,p=1$salt$hash` (unpadded base64), so the parameters travel
 * with the hash and can rise later. Hashes of the scrypt era (`scrypt$N=…,r=…,p=…$salt$hash`)
 * still verify; `needsRehash` tells the login to replace them.
 */
export type Argon2Params = Readonly<{ memoryKiB: number; passes: number; parallelism: number }>;

export const DEFAULT_PARAMS: Argon2Params = { memoryKiB: 19_456, passes: 2, parallelism: 1 };
const HASH_NAME = 'argon2id';
const TAG_LENGTH = 32;
const MIN_PASSWORD_LENGTH = 10;
/** PCI DSS 8.3.6 asks 12 characters of administrative (CDE) accounts. */
const MIN_ADMIN_PASSWORD_LENGTH = 12;
export const MAX_PASSWORD_LENGTH = 1024;

/** Names the setting, for logs and benchmarks: `argon2id m=19456 KiB, t=2, p=1`. */
export function describeHash(params: Argon2Params = DEFAULT_PARAMS): string {
  return `${HASH_NAME} m=${params.memoryKiB} KiB, t=${params.passes}, p=${params.parallelism}`;
}

const hashes = createHashPool();

function argon2id(password: string, salt: Buffer, params: Argon2Params, length = TAG_LENGTH): Promise<Buffer> {
  return hashes.hash({ kind: 'argon2id', password, salt, ...params, length });
}

const b64 = (bytes: Buffer) => bytes.toString('base64').replace(/=+$/, '');

function phc(params: Argon2Params, salt: Buffer, key: Buffer): string {
  return `$argon2id$v=19$m=${params.memoryKiB},t=${params.passes},p=${params.parallelism}$${b64(salt)}$${b64(key)}`;
}

export async function hashPassword(password: string, params: Argon2Params = DEFAULT_PARAMS): Promise<string> {
  const salt = randomBytes(16);
  return phc(params, salt, await argon2id(password, salt, params));
}

type Parsed =
  | { kind: 'argon2id'; params: Argon2Params; salt: Buffer; key: Buffer }
  | { kind: 'scrypt'; params: { N: number; r: number; p: number }; salt: Buffer; key: Buffer };

/** Parameters that would stall the server (a tampered row) are refused, not run. */
function parse(stored: string): Parsed | undefined {
  const argon = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]{11,})\$([A-Za-z0-9+/]{22,})$/.exec(stored);
  if (argon) {
    const [memoryKiB, passes, parallelism] = [Number(argon[1]), Number(argon[2]), Number(argon[3])];
    if (parallelism < 1 || parallelism > 16 || memoryKiB < 8 * parallelism || memoryKiB > 262_144 || passes < 1 || passes > 32)
      return undefined;
    return {
      kind: 'argon2id',
      params: { memoryKiB, passes, parallelism },
      salt: Buffer.from(argon[4], 'base64'),
      key: Buffer.from(argon[5], 'base64'),
    };
  }
  const legacy = /^scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([\w-]+)\$([\w-]+)$/.exec(stored);
  if (legacy) {
    const [N, r, p] = [Number(legacy[1]), Number(legacy[2]), Number(legacy[3])];
    if (N > 2 ** 20 || r > 32 || p > 16) return undefined;
    return { kind: 'scrypt', params: { N, r, p }, salt: Buffer.from(legacy[4], 'base64url'), key: Buffer.from(legacy[5], 'base64url') };
  }
  return undefined;
}

function legacyScrypt(password: string, salt: Buffer, params: { N: number; r: number; p: number }, length: number): Promise<Buffer> {
  return hashes.hash({ kind: 'scrypt', password, salt, ...params, length });
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parse(stored);
  if (!parsed) return false;
  try {
    const key =
      parsed.kind === 'argon2id'
        ? await argon2id(password, parsed.salt, parsed.params, parsed.key.length)
        : await legacyScrypt(password, parsed.salt, parsed.params, parsed.key.length);
    return constantTimeEqual(key, parsed.key);
  } catch {
    return false; // parameters the library refuses: no match, never a 500
  }
}

/** True for a hash that is not argon2id at today's parameters (scrypt, or weaker argon2id). */
export function needsRehash(stored: string, params: Argon2Params = DEFAULT_PARAMS): boolean {
  const parsed = parse(stored);
  if (parsed?.kind !== 'argon2id') return true;
  return (
    parsed.params.memoryKiB < params.memoryKiB || parsed.params.passes < params.passes || parsed.params.parallelism !== params.parallelism
  );
}

/** A well-formed hash of nothing anyone knows: checking against it costs one argon2id at the default setting. */
export const DUMMY_HASH = phc(DEFAULT_PARAMS, randomBytes(16), randomBytes(TAG_LENGTH));

/**
 * Checks a password against `stored`, or, for an unknown user, against a dummy hash with the
 * same parameters: both paths do one argon2id, so timing does not tell which usernames exist.
 */
export async function checkPassword(password: string, stored: string | undefined): Promise<boolean> {
  if (stored !== undefined) return verifyPassword(password, stored);
  await verifyPassword(password, DUMMY_HASH);
  return false;
}

type Estimator = {
  check(password: string, userInputs?: string[]): { score: number; feedback: { warning: string | null; suggestions: string[] } };
};
let estimator: Promise<Estimator> | undefined;

/** zxcvbn-ts with its common and English dictionaries: ~120 ms and some MiB, so loaded on first use. */
function strengthEstimator(): Promise<Estimator> {
  estimator ??= (async () => {
    const [{ ZxcvbnFactory }, common, en] = await Promise.all([
      import('@zxcvbn-ts/core'),
      import('@zxcvbn-ts/language-common'),
      import('@zxcvbn-ts/language-en'),
    ]);
    return new ZxcvbnFactory({
      dictionary: { ...common.dictionary, ...en.dictionary },
      graphs: common.adjacencyGraphs,
      translations: en.translations,
    });
  })();
  return estimator;
}

/** zxcvbn scores 0–4; 3 means "safely unguessable" against an offline attack on a slow hash. */
const MIN_STRENGTH_SCORE = 3;

/**
 * Why `password` may not be set, in one line, or undefined. Length first (10 characters, 12 for
 * an administrator), then strength: zxcvbn must score it 3 or more, with `userInputs` (the
 * username) counted as known to the attacker.
 */
export async function passwordProblem(
  password: string,
  options: { admin?: boolean; userInputs?: string[] } = {},
): Promise<string | undefined> {
  const min = options.admin ? MIN_ADMIN_PASSWORD_LENGTH : MIN_PASSWORD_LENGTH;
  if (password.length < min)
    return `the password must have at least ${min} characters${options.admin ? ' for an administrator (PCI DSS 8.3.6)' : ''}`;
  if (password.length > MAX_PASSWORD_LENGTH) return `the password must have at most ${MAX_PASSWORD_LENGTH} characters`;
  const { score, feedback } = (await strengthEstimator()).check(password, options.userInputs ?? []);
  if (score >= MIN_STRENGTH_SCORE) return undefined;
  const why = [feedback.warning, ...feedback.suggestions].filter(Boolean).join(' ');
  return `the password is too easy to guess (strength ${score} of 4, 3 needed)${why ? `: ${why}` : ''}`.replace(/\s+/g, ' ');
}
