import { parseDuration } from '../config/duration.ts';
import type { Db } from '../db/knex.ts';
import { safeError } from '../log/safe-error.ts';
import { AppError, invalidInput } from '../shared/errors.ts';
import { sha256Hex } from '../shared/hashing.ts';
import { decodeCursor, pageOf, pageSize } from '../shared/page-cursor.ts';
import { appendRow, queryRows, readRows, type AuditFilter, type AuditRow } from './audit.store.ts';

/**
 * Who did it: the `portcullis` command, a signed-in person, a partner, nobody known (a failed
 * sign-in), or the server itself (a scheduled key rotation).
 */
type Actor =
  { type: 'cli' } | { type: 'person'; id: string } | { type: 'partner'; id: string } | { type: 'anonymous' } | { type: 'system' };

/** The actor and, for an HTTP request, where it came from: what each audited change is given. */
export type AuditBy = Readonly<{ actor: Actor; sourceIp?: string; requestId?: string }>;

/** Changes made by the `portcullis` command. */
export const BY_CLI: AuditBy = { actor: { type: 'cli' } };

type Json = string | number | boolean | null | readonly Json[] | { readonly [key: string]: Json | undefined };

export type AuditEvent = Readonly<{
  action: string;
  target?: string | null;
  /** never a secret: no token, code, password, TOTP seed, client secret or private key */
  details?: Readonly<Record<string, Json | undefined>>;
}>;

/** The prev_hash of seq 1. */
const GENESIS = '0'.repeat(64);

function actorText(actor: Actor): string {
  return actor.type === 'person' || actor.type === 'partner' ? `${actor.type}:${actor.id}` : actor.type;
}

/**
 * RFC 8785 (JCS) for the data an audit row holds (strings, finite numbers, booleans, null, arrays,
 * objects): object keys sorted by UTF-16 code units (JavaScript's default sort), no whitespace,
 * strings and numbers as ECMAScript's JSON.stringify writes them, which is what JCS specifies.
 * Properties whose value is undefined are left out (as JSON.stringify does).
 */
function canonicalJson(value: Json | undefined): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new Error('canonical JSON has no non-finite numbers');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${(value as readonly Json[]).map((item) => canonicalJson(item)).join(',')}]`;
  const object = value as { readonly [key: string]: Json | undefined };
  const keys = Object.keys(object)
    .filter((key) => object[key] !== undefined)
    .sort();
  return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(object[key])}`).join(',')}}`;
}

/** A row without its hash, `details` parsed: what is hashed (and, with the hash, what is exported). */
function contentOf(row: Omit<AuditRow, 'hash'>) {
  const { seq, at, actor, action, target, source_ip, request_id, prev_hash } = row;
  return { seq, at, actor, action, target, source_ip, request_id, details: JSON.parse(row.details) as Json, prev_hash };
}

/** SHA-256 (hex) of the previous row's hash followed by the canonical JSON of this row without its hash. */
export function rowHash(row: Omit<AuditRow, 'hash'>): string {
  return sha256Hex(`${row.prev_hash}${canonicalJson(contentOf(row))}`);
}

/** Appends one event to the chain; rejects if it could not be written (callers decide what that means). */
export async function appendAudit(db: Db, by: AuditBy, event: AuditEvent, at: number = Date.now()): Promise<AuditRow> {
  const details = canonicalJson(event.details ?? {});
  return appendRow(db, (head) => {
    const row = {
      seq: (head?.seq ?? 0) + 1,
      at,
      actor: actorText(by.actor).slice(0, 200),
      action: event.action,
      target: event.target?.slice(0, 300) ?? null,
      source_ip: by.sourceIp?.slice(0, 64) ?? null,
      request_id: by.requestId?.slice(0, 128) ?? null,
      details,
      prev_hash: head?.hash ?? GENESIS,
    };
    return { ...row, hash: rowHash(row) };
  });
}

/**
 * The audit row of a change already made (admin and CLI changes): a failure is not swallowed —
 * the command fails, saying the change was made but not recorded, so the operator knows.
 */
export async function recordChange(db: Db, by: AuditBy, event: AuditEvent, at?: number): Promise<void> {
  try {
    await appendAudit(db, by, event, at);
  } catch (error) {
    throw new AppError(
      'audit_failed',
      `${event.action} was done, but writing its audit log row failed (${safeError(error).message}): check the database, then record what was done`,
      { status: 500 },
    );
  }
}

export type Verdict =
  | Readonly<{ valid: true; rows: number; head: string }>
  | Readonly<{
      valid: false;
      rows: number;
      seq: number;
      problem: 'changed content' | 'broken link' | 'missing seq' | 'out of order';
      detail: string;
    }>;

const PAGE = 1000;

/**
 * Walks the chain in seq order and names the first row that does not match: a gap in seq (a row
 * deleted: `missing seq`), a prev_hash that is not the hash of the row before (`out of order` when
 * it is the hash of another row nearby, else `broken link`), or a hash that does not match the
 * row's content (`changed content`). The last rows deleted leave no trace here: compare the head
 * with one kept outside the database (docs/security-model.md).
 */
export async function verifyChain(db: Db): Promise<Verdict> {
  let previous = { seq: 0, hash: GENESIS };
  let count = 0;
  for (;;) {
    const rows = await readRows(db, previous.seq, PAGE);
    if (rows.length === 0) return { valid: true, rows: count, head: previous.hash };
    const nearby = new Map(rows.map((row) => [row.hash, row.seq]));
    for (const row of rows) {
      const bad = (problem: Extract<Verdict, { valid: false }>['problem'], detail: string): Verdict => ({
        valid: false,
        rows: count,
        seq: problem === 'missing seq' ? previous.seq + 1 : row.seq,
        problem,
        detail,
      });
      if (row.seq !== previous.seq + 1)
        return bad('missing seq', `seq ${String(previous.seq + 1)} is missing (the next row is seq ${String(row.seq)}): a row was deleted`);
      if (row.prev_hash !== previous.hash) {
        const after = nearby.get(row.prev_hash);
        if (after !== undefined && after !== row.seq)
          return bad('out of order', `seq ${String(row.seq)} was chained after the row now at seq ${String(after)}`);
        return bad('broken link', `seq ${String(row.seq)}'s prev_hash is not the hash of seq ${String(previous.seq)}`);
      }
      if (rowHash(row) !== row.hash) return bad('changed content', `seq ${String(row.seq)}'s content does not match its hash`);
      previous = row;
      count++;
    }
  }
}

/** `--since`: an ISO 8601 time, or a duration back from now (`24h`, `7d`, `90m`). */
export function parseSince(text: string, now: number = Date.now()): number {
  if (/^\s*\d+\s*[smhd]?\s*$/.test(text)) {
    try {
      return now - parseDuration(text) * 1000;
    } catch (error) {
      throw invalidInput(`--since ${(error as Error).message}`);
    }
  }
  const at = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(at)) throw invalidInput(`--since "${text}" is neither an ISO 8601 time (2026-11-29T17:00:00Z) nor a duration (24h, 7d)`);
  return at;
}

/** One exported row: what a SIEM reads (a JSON object per line). */
function exportLine(row: AuditRow): string {
  return JSON.stringify({ ...contentOf(row), at: new Date(row.at).toISOString(), hash: row.hash });
}

/** Every row at or after `since` (epoch ms), in seq order, page by page to `write`. */
export async function exportRows(db: Db, write: (line: string) => void, since?: number): Promise<number> {
  let after = 0;
  let count = 0;
  for (;;) {
    const rows = await readRows(db, after, PAGE, since);
    if (rows.length === 0) return count;
    for (const row of rows) write(`${exportLine(row)}\n`);
    count += rows.length;
    after = rows[rows.length - 1].seq;
  }
}

/** One row as the admin API and console show it (times in ISO 8601, details parsed). */
function describeRow(row: AuditRow) {
  return { ...contentOf(row), at: new Date(row.at).toISOString(), hash: row.hash };
}

/** An instant of a filter: ISO 8601, or a duration back from now (as `--since`). */
function instant(name: string, text: string | undefined, now: number): number | undefined {
  if (text === undefined) return undefined;
  try {
    return parseSince(text, now);
  } catch {
    throw invalidInput(`${name} "${text.slice(0, 64)}" is neither an ISO 8601 time (2026-11-29T17:00:00Z) nor a duration (24h, 7d)`);
  }
}

/**
 * A page of the audit log, newest first, filtered by actor (`cli`, `partner:<client_id>`,
 * `person:<id>`), action (`partner.suspend`, or a family `partner.*`), target and time
 * (`since` inclusive, `until` exclusive): for the admin API and console. `cursor`: the `next`
 * of the page before (keyset on seq).
 */
export async function auditPage(
  db: Db,
  options: Omit<AuditFilter, 'since' | 'until'> & { since?: string; until?: string; cursor?: string; limit?: number },
  now: number = Date.now(),
) {
  const limit = pageSize(options.limit);
  const beforeSeq = options.cursor === undefined ? undefined : decodeCursor(options.cursor, ['number'] as const)[0];
  const filter: AuditFilter = {
    actor: options.actor,
    action: options.action,
    target: options.target,
    since: instant('since', options.since, now),
    until: instant('until', options.until, now),
  };
  const rows = await queryRows(db, filter, { beforeSeq, limit: limit + 1 });
  return pageOf(rows, limit, (row) => [row.seq], describeRow);
}
