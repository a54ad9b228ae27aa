import { createDb } from '../../src/db/knex.ts';

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
