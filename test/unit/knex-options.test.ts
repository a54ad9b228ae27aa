import { createDb } from '../../src/db/knex.ts';
import { createLogger } from '../../src/log/logger.ts';

// createDb only configures: nothing connects until a query runs.
function connectionOf(url: string, options = {}) {
  const db = createDb(url, options);
  const { connection, searchPath, pool } = db.client.config;
  void db.destroy();
  return { connection, searchPath, pool };
}

describe('createDb for PostgreSQL', () => {
  test('sslmode maps to node-postgres TLS options and leaves the connection string', () => {
    expect(connectionOf('postgres://u@db/auth').connection.ssl).toBe(false);
    expect(connectionOf('postgres://u@db/auth?sslmode=disable').connection.ssl).toBe(false);
    expect(connectionOf('postgres://u@db/auth?sslmode=require').connection.ssl).toEqual({ rejectUnauthorized: false });
    expect(connectionOf('postgres://u@db/auth?sslmode=verify-full').connection.ssl).toEqual({ rejectUnauthorized: true, ca: undefined });
    const verifyCa = connectionOf('postgres://u@db/auth?sslmode=verify-ca').connection.ssl;
    expect(verifyCa.rejectUnauthorized).toBe(true);
    expect(verifyCa.checkServerIdentity()).toBeUndefined();
    expect(connectionOf('postgres://u@db/auth?sslmode=require&schema=s1').connection.connectionString).toBe('postgres://u@db/auth');
  });

  test('pool size, statement timeout and schema', () => {
    const { connection, searchPath, pool } = connectionOf('postgres://u@db/auth?schema=tenant', { poolMax: 7, statementTimeoutMs: 1500 });
    expect(pool.max).toBe(7);
    expect(connection.statement_timeout).toBe(1500);
    expect(searchPath).toEqual(['tenant']);
    expect(connectionOf('postgres://u@db/auth', { statementTimeoutMs: 0 }).connection.statement_timeout).toBeUndefined();
  });
});

describe('what knex says goes to our log', () => {
  test('a migration lock held by another process is debug (a racing command waits its turn quietly); other warnings stay warnings', async () => {
    const lines: string[] = [];
    const db = createDb('sqlite::memory:', { log: createLogger('debug', (line) => lines.push(line)) });
    const logger = (db.client as { logger: { warn(message: string): void } }).logger;
    logger.warn("Can't take lock to run migrations: Migration table is already locked");
    logger.warn("If you are sure migrations are not running you can release the lock manually by running 'knex migrate:unlock'");
    logger.warn('something else');
    await db.destroy();
    const levels = lines.map((line) => (JSON.parse(line) as { level: string; msg: string }).level);
    expect(levels).toEqual(['debug', 'debug', 'warn']);
  });
});
