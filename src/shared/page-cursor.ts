import { invalidInput } from './errors.ts';

/**
 * Keyset paging: a page is "the next `limit` rows after this one" in a stable order, so rows
 * added or removed meanwhile never shift a page (no duplicates, no gaps, unlike OFFSET). The
 * cursor is the last row's sort key, opaque to callers (base64url of a JSON array).
 */

const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 200;

/** One page of a list: the items, and the cursor of the page after it (null: this was the last). */
export type Page<T> = Readonly<{ items: readonly T[]; next: string | null }>;

type KeyPart = 'string' | 'number';

function encodeCursor(key: ReadonlyArray<string | number>): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

/** The sort key a cursor holds, checked against its shape; anything else is invalid input. */
export function decodeCursor<const S extends readonly KeyPart[]>(
  cursor: string,
  shape: S,
): { [I in keyof S]: S[I] extends 'number' ? number : string } {
  let key: unknown;
  try {
    key = cursor.length <= 2048 && /^[\w-]*$/.test(cursor) ? JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) : undefined;
  } catch {
    key = undefined;
  }
  const fits =
    Array.isArray(key) &&
    key.length === shape.length &&
    key.every((part: unknown, i) => (shape[i] === 'number' ? Number.isSafeInteger(part) : typeof part === 'string' && part.length <= 512));
  if (!fits) throw invalidInput('cursor is not one this server gave (pass the `next` value of the previous page, unchanged)');
  return key as { [I in keyof S]: S[I] extends 'number' ? number : string };
}

/** The page size asked for, or the default; refused outside 1…MAX_PAGE_SIZE. */
export function pageSize(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE)
    throw invalidInput(`limit must be a whole number from 1 to ${String(MAX_PAGE_SIZE)}`);
  return limit;
}

/** Rows read with one more than the page size → the page and the cursor after its last item. */
export function pageOf<R, T>(
  rows: readonly R[],
  limit: number,
  keyOf: (row: R) => ReadonlyArray<string | number>,
  describe: (row: R) => T,
): Page<T> {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return { items: items.map(describe), next: rows.length > limit && last !== undefined ? encodeCursor(keyOf(last)) : null };
}

/** `text` with LIKE's own characters escaped (use with ESCAPE '\'). */
export function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** A LIKE pattern matching `text` anywhere (use with ESCAPE '\'). */
export function containsPattern(text: string): string {
  return `%${escapeLike(text)}%`;
}
