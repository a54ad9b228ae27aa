import { createHash } from 'node:crypto';

/** SHA-256 as base64url: the form stored for ids, one-time codes and secrets of high entropy. */
export function sha256Base64url(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('base64url');
}

/** SHA-256 as lower-case hex. */
export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
