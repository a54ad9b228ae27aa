import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Logger } from '../log/logger.ts';
import type pg from 'pg';
import { isSqlite, type Db } from './knex.ts';

/**
 * What changed: a partner (key: its client_id), the APIs (key: a resource URI, or ''), or a
 * stored bearer token that died before its time (key: the SHA-256 of its value, as stored).
 */
type ChangeTopic = 'partner' | 'resource' | 'token';

/** `undefined`: anything of the topic may have changed (the feed was interrupted). */
type ChangeHandler = (key: string | undefined) => void;

/**
 * Tells this instance about every committed write to the partner and API tables, made by
 * anyone (the triggers of migrations/20261129180000_change_feed.ts), so that what it caches of
 * them can be dropped at once. PostgreSQL: LISTEN on a connection of its own, notified at
 * commit. SQLite: the `changes` rows, read when the database file changes (and every second).
 */
export type ChangeFeed = Readonly<{
  /**
   * True while every change reaches this instance. While false (PostgreSQL: the listening
   * connection is down) a cache must not answer: read the database as if there were none.
   */
  live(): boolean;
  subscribe(topic: ChangeTopic, handler: ChangeHandler): void;
  /** Resolves once every change committed before the call has been handed to the subscribers. */
  settle(): Promise<void>;
  stop(): Promise<void>;
}>;

type Dispatch = (topic: string, key: string | undefined) => void;

function dispatcher() {
  const handlers = new Map<string, ChangeHandler[]>();
  const dispatch: Dispatch = (topic, key) => {
    for (const handler of handlers.get(topic) ?? []) handler(key);
  };
  return {
    subscribe: (topic: ChangeTopic, handler: ChangeHandler) => {
      handlers.set(topic, [...(handlers.get(topic) ?? []), handler]);
    },
    dispatch,
    /** Everything may have changed. */
    dispatchAll: () => {
      for (const topic of handlers.keys()) dispatch(topic, undefined);
    },
  };
}

/** How long `changes` rows are kept (SQLite): far longer than any instance takes to read them. */
const CHANGE_ROWS_KEPT_MS = 3600_000;

export async function startChangeFeed(db: Db, options: { databaseUrl: string; log: Logger }): Promise<ChangeFeed> {
  return isSqlite(db) ? startSqliteFeed(db, options) : startPostgresFeed(db, options);
}

/**
 * SQLite has no NOTIFY: the triggers write `changes` rows (ids grow in commit order: one writer
 * at a time), read from the last id seen. A write to the database file (fs.watch, from any
 * process) starts a read at once, at most one every 10 ms; a read every second catches
 * anything a watch missed.
 */
async function startSqliteFeed(db: Db, { databaseUrl, log }: { databaseUrl: string; log: Logger }): Promise<ChangeFeed> {
  const { subscribe, dispatch, dispatchAll } = dispatcher();
  let last = Number((await db('changes').max({ id: 'id' }).first())?.id ?? 0);
  let healthy = true;
  let lastPurge = 0;

  const readOnce = async () => {
    for (;;) {
      const rows: Array<{ id: number; topic: string; key: string }> = await db('changes')
        .where('id', '>', last)
        .orderBy('id')
        .limit(500)
        .select('id', 'topic', 'key');
      for (const row of rows) {
        last = row.id;
        dispatch(row.topic, row.key);
      }
      if (rows.length < 500) break;
    }
    if (Date.now() - lastPurge > CHANGE_ROWS_KEPT_MS / 4) {
      lastPurge = Date.now();
      await db('changes')
        .where('created_at', '<', Date.now() - CHANGE_ROWS_KEPT_MS)
        .del();
    }
  };
  let running: Promise<void> | undefined;
  // a read asked for while one runs starts when it ends (it may have begun before the change);
  // callers meanwhile share that one follow-up read
  const read = (): Promise<void> => {
    if (running) return running.then(() => running ?? read());
    running = readOnce()
      .then(() => {
        if (!healthy) {
          healthy = true;
          dispatchAll(); // what happened while reads failed is unknown
        }
      })
      .catch((error: unknown) => {
        if (healthy) log.warn('change feed: cannot read changes; caches are bypassed until it can', { err: error });
        healthy = false;
      })
      .finally(() => {
        running = undefined;
      });
    return running;
  };
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    timer ??= setTimeout(() => {
      timer = undefined;
      void read();
    }, 10);
  };

  const file = databaseUrl.slice('sqlite:'.length);
  let watcher: fs.FSWatcher | undefined;
  if (file !== ':memory:') {
    const names = new Set([path.basename(file), `${path.basename(file)}-wal`]);
    try {
      watcher = fs.watch(path.dirname(path.resolve(file)), (_event, name) => {
        if (name !== null && names.has(name)) schedule();
      });
      watcher.on('error', (error) => log.warn('change feed: cannot watch the database file; reading changes every second', { err: error }));
    } catch (error) {
      log.warn('change feed: cannot watch the database file; reading changes every second', { err: error });
    }
  }
  const poll = setInterval(() => void read(), 1000);
  poll.unref();

  return {
    live: () => healthy,
    subscribe,
    settle: read,
    async stop() {
      clearInterval(poll);
      if (timer) clearTimeout(timer);
      watcher?.close();
      await running;
    },
  };
}

/**
 * PostgreSQL: LISTEN on `portcullis <schema>` on a connection of its own (outside the pool,
 * so DATABASE_POOL_MAX stays whole). Notifications arrive in commit order. When the connection
 * fails the feed is not live (caches bypassed) until it is back, and then everything cached
 * is dropped: what changed meanwhile is unknown.
 */
async function startPostgresFeed(db: Db, { log }: { log: Logger }): Promise<ChangeFeed> {
  // the pool's own settings (address, TLS, timeouts), for one more connection
  const settings = (db.client as { connectionSettings: pg.ClientConfig }).connectionSettings;
  const { subscribe, dispatch, dispatchAll } = dispatcher();
  const schema = (await db.raw<{ rows: Array<{ schema: string }> }>('SELECT current_schema() AS schema')).rows[0].schema;
  const channel = `portcullis ${schema}`;
  const settling = new Map<string, () => void>();
  let listening = false;
  let stopped = false;
  let own: pg.Client | undefined;
  let retryMs = 100;
  let reconnecting = false;
  let retry: NodeJS.Timeout | undefined;

  const onMessage = (message: { channel: string; payload?: string }) => {
    if (message.channel !== channel) return;
    const payload = message.payload ?? '';
    const space = payload.indexOf(' ');
    const topic = space < 0 ? payload : payload.slice(0, space);
    const key = space < 0 ? '' : payload.slice(space + 1);
    if (topic === 'settle') settling.get(key)?.();
    else dispatch(topic, key);
  };

  const drop = () => {
    const dropped = own;
    own = undefined;
    void dropped?.end().catch(() => undefined);
  };

  const lost = (error: unknown) => {
    if (stopped || !listening) return;
    listening = false;
    log.warn('change feed: lost its database connection; caches are bypassed until it is back', { err: error });
    reconnecting = true;
    drop();
    for (const resolve of settling.values()) resolve();
    reconnect();
  };

  const connect = async () => {
    // pg is loaded on PostgreSQL only (knex loads it for its pool there too), never by a SQLite server
    const { Client } = (await import('pg')).default;
    const connection = new Client({ ...settings, application_name: `portcullis change feed ${schema}`.slice(0, 63) });
    own = connection;
    connection.on('notification', onMessage);
    connection.on('error', lost);
    connection.on('end', () => lost(new Error('connection ended')));
    try {
      await connection.connect();
      await connection.query(`LISTEN "${channel.replaceAll('"', '""')}"`);
    } catch (error) {
      drop(); // a connection that got as far as LISTEN's failure is closed, not left open
      throw error;
    }
    // from here on every commit reaches us; what was cached before may be stale
    dispatchAll();
    if (reconnecting) log.info('change feed: listening again; caches in use');
    reconnecting = false;
    listening = true;
    retryMs = 100;
  };

  const reconnect = () => {
    if (stopped) return;
    retry = setTimeout(() => {
      retry = undefined;
      connect().catch((error: unknown) => {
        log.debug('change feed: reconnect failed', { err: error });
        retryMs = Math.min(retryMs * 2, 5000);
        reconnect();
      });
    }, retryMs);
    retry.unref();
  };

  await connect();
  return {
    live: () => listening,
    subscribe,
    async settle() {
      if (!listening) return;
      const id = randomUUID();
      const arrived = new Promise<void>((resolve) => settling.set(id, resolve));
      await db.raw('SELECT pg_notify(?, ?)', [channel, `settle ${id}`]);
      await arrived;
      settling.delete(id);
    },
    async stop() {
      stopped = true;
      listening = false;
      if (retry) clearTimeout(retry);
      for (const resolve of settling.values()) resolve();
      await own?.end().catch(() => undefined);
    },
  };
}
