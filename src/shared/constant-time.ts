import { timingSafeEqual } from 'node:crypto';

/**
 * Whether two secrets are equal, in time that does not depend on where they differ. A length
 * difference answers at once: callers compare values of a fixed length (hashes, MACs) or
 * accept that the length is not secret.
 */
export function constantTimeEqual(a: Buffer | string, b: Buffer | string): boolean {
  const left = typeof a === 'string' ? Buffer.from(a) : a;
  const right = typeof b === 'string' ? Buffer.from(b) : b;
  return left.length === right.length && timingSafeEqual(left, right);
}
