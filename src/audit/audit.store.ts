import { isSqlite, withConnection, type Db } from '../db/knex.ts';
import { escapeLike } from '../shared/page-cursor.ts';

const TABLE = 'audit_log';

/** One row as stored (numbers as numbers: PostgreSQL's driver hands bigint back as text). */
export type AuditRow = Readonly<{
  seq: number;
  at: number;
  actor: string;
  action: string;
  target: string | null;
  source_ip: string | null;
  request_id: string | null;
  /** JSON text of an object */
  details: string;
  prev_hash: string;
  hash: string;
}>;

type Head = Readonly<{ seq: number; hash: string }>;

function revive(row: Record<string, unknown>): AuditRow {
  return { ...(row as AuditRow), seq: Number(row.seq), at: Number(row.at) };
}

async function headOf(query: Db): Promise<Head | undefined> {
  const row = (await query(TABLE).select('seq', 'hash').orderBy('seq', 'desc').first()) as { seq: unknown; hash: string } | undefined;
  return row ? { seq: Number(row.seq), hash: row.hash } : undefined;
}

/**
 * Appends the row `make` builds on the current head, with every other append of every instance
 * waiting its turn: PostgreSQL takes the table in EXCLUSIVE mode (readers go on, writers wait)
 * for the transaction; SQLite begins the transaction IMMEDIATE (the file's one write lock, waited
 * for up to busy_timeout), on the pool's one connection held throughout. The head is read after
 * the lock, so it is the latest committed one; `seq` as primary key refuses a duplicate anyway.
 */
export async function appendRow(db: Db, make: (head: Head | undefined) => AuditRow): Promise<AuditRow> {
  if (!isSqlite(db)) {
    return db.transaction(async (trx) => {
      await trx.raw('LOCK TABLE ?? IN EXCLUSIVE MODE', [TABLE]);
      const row = make(await headOf(trx));
      await trx(TABLE).insert(row);
      return row;
    });
  }
  return withConnection(db, async (connection) => {
    await db.raw('BEGIN IMMEDIATE').connection(connection);
    try {
      const head = (await db(TABLE).select('seq', 'hash').orderBy('seq', 'desc').limit(1).connection(connection)) as Array<{
        seq: unknown;
        hash: string;
      }>;
      const row = make(head[0] ? { seq: Number(head[0].seq), hash: head[0].hash } : undefined);
      await db(TABLE).insert(row).connection(connection);
      await db.raw('COMMIT').connection(connection);
      return row;
    } catch (error) {
      await db
        .raw('ROLLBACK')
        .connection(connection)
        .catch(() => undefined);
      throw error;
    }
  });
}

/** Rows in seq order after `afterSeq`, at most `limit` (paging through the chain). */
export async function readRows(db: Db, afterSeq: number, limit: number, since?: number): Promise<AuditRow[]> {
  const query = db(TABLE).select('*').where('seq', '>', afterSeq).orderBy('seq').limit(limit);
  if (since !== undefined) query.andWhere('at', '>=', since);
  return ((await query) as Array<Record<string, unknown>>).map(revive);
}

/** What the audit log can be filtered by: exact actor and target, an action or a family (`partner.*`), a time range (epoch ms, until exclusive). */
export type AuditFilter = Readonly<{ actor?: string; action?: string; target?: string; since?: number; until?: number }>;

/** Rows matching `filter`, newest first, with seq below `beforeSeq`, at most `limit` (keyset on seq). */
export async function queryRows(db: Db, filter: AuditFilter, page: { beforeSeq?: number; limit: number }): Promise<AuditRow[]> {
  const query = db(TABLE).select('*').orderBy('seq', 'desc').limit(page.limit);
  if (filter.actor !== undefined) void query.where('actor', filter.actor);
  if (filter.target !== undefined) void query.where('target', filter.target);
  if (filter.action?.endsWith('.*')) void query.whereRaw("action LIKE ? ESCAPE '\\'", [`${escapeLike(filter.action.slice(0, -1))}%`]);
  else if (filter.action !== undefined) void query.where('action', filter.action);
  if (filter.since !== undefined) void query.where('at', '>=', filter.since);
  if (filter.until !== undefined) void query.where('at', '<', filter.until);
  if (page.beforeSeq !== undefined) void query.where('seq', '<', page.beforeSeq);
  return ((await query) as Array<Record<string, unknown>>).map(revive);
}
