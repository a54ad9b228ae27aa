import { randomInt } from 'node:crypto';
import { generateSecret, generateSync, generateURI, verifySync } from 'otplib';
import { sha256Base64url } from '../shared/hashing.ts';

/** RFC 6238 as authenticator apps expect it: SHA-1, 30-second steps, 6 digits. */
const PERIOD = 30;
const DIGITS = 6;

export function newTotpSecret(): string {
  return generateSecret({ length: 20 });
}

export function totpUri(secret: string, username: string, issuer: string): string {
  return generateURI({ issuer, label: username, secret, algorithm: 'sha1', digits: DIGITS, period: PERIOD });
}

/** The code an authenticator shows at `nowMs` (tests and scripted provisioning). */
export function totpCode(secret: string, nowMs: number): string {
  return generateSync({ secret, epoch: Math.floor(nowMs / 1000), period: PERIOD, digits: DIGITS, algorithm: 'sha1' });
}

export type TotpCheck = { ok: true; step: number } | { ok: false };

/**
 * Accepts the code of the current step or one step either side (clock drift), but never a
 * step at or before `lastStep`: a code, once used, cannot be replayed, nor can an older one.
 */
export function checkTotp(secret: string, code: string, nowMs: number, lastStep: number | null): TotpCheck {
  const token = code.replace(/\s+/g, '');
  if (!/^\d{6}$/.test(token)) return { ok: false };
  const epoch = Math.floor(nowMs / 1000);
  // otplib throws when afterTimeStep lies beyond the window: every step in it is used already
  if (lastStep !== null && lastStep >= Math.floor(epoch / PERIOD) + 1) return { ok: false };
  const result = verifySync({
    secret,
    token,
    epoch,
    period: PERIOD,
    digits: DIGITS,
    algorithm: 'sha1',
    epochTolerance: PERIOD,
    ...(lastStep === null ? {} : { afterTimeStep: lastStep }),
  });
  // otplib types the result as TOTP-or-HOTP; a TOTP match carries the epoch of its step
  return result.valid ? { ok: true, step: Math.round((result as { epoch: number }).epoch / PERIOD) } : { ok: false };
}

const CODE_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789'; // no 0/o, 1/l/i look-alikes
const RECOVERY_CODE_COUNT = 10;

/**
 * A one-time code of 16 characters (about 79 bits), written xxxx-xxxx-xxxx-xxxx: recovery codes
 * and enrolment codes. Typed by people, so case, spaces and dashes do not matter.
 */
export function newOneTimeCode(): string {
  const group = () => Array.from({ length: 4 }, () => CODE_ALPHABET[randomInt(CODE_ALPHABET.length)]).join('');
  return Array.from({ length: 4 }, group).join('-');
}

/** Ten recovery codes, shown once. */
export function newRecoveryCodes(count = RECOVERY_CODE_COUNT): string[] {
  return Array.from({ length: count }, newOneTimeCode);
}

export function normaliseOneTimeCode(code: string): string {
  return code.toLowerCase().replace(/[^a-z0-9]/g, '');
}

/** One-time codes are high-entropy random strings: one SHA-256 is enough to store them. */
export function hashOneTimeCode(code: string): string {
  return sha256Base64url(normaliseOneTimeCode(code));
}
