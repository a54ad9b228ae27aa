import { createDb, type Db } from '../../src/db/knex.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createLogger } from '../../src/log/logger.ts';
import { safeError } from '../../src/log/safe-error.ts';
import { freshDatabaseUrl, tempDir } from '../support/harness.ts';

// The engine of this run: SQLite, or PostgreSQL when PORTCULLIS_TEST_PG is set.
const SECRET = 'hunter2-secret-value';

let db: Db;

beforeAll(async () => {
  db = createDb(freshDatabaseUrl(tempDir()));
  await migrate(db);
});

afterAll(async () => {
  await db.destroy();
});

async function failure(run: () => Promise<unknown>): Promise<Error> {
  try {
    await run();
  } catch (error) {
    return error as Error;
  }
  throw new Error('the query was expected to fail');
}

describe('database errors never carry bound values out', () => {
  const row = (id: string) => ({
    id,
    username: 'dup',
    password_hash: SECRET,
    is_admin: false,
    status: 'active',
    created_at: 1,
    updated_at: 1,
  });

  test('a constraint violation: knex keeps placeholders; safeError keeps the code and SQL only', async () => {
    await db('users').insert(row('usr_1'));
    const error = await failure(() => db('users').insert(row('usr_2')));
    expect(error.message).not.toContain(SECRET); // compileSqlOnError: false
    const safe = safeError(error, { withStack: true });
    expect(safe.type).toBe('DatabaseError');
    expect(safe.code).toMatch(/^(SQLITE_CONSTRAINT|23505)$/);
    expect(safe.message).toBe(`database error ${safe.code}`);
    expect(safe.sql).toMatch(/^insert into ["`]users["`] .* values \((\?|\$1), /);
    expect(JSON.stringify(safe)).not.toContain(SECRET);
    expect(JSON.stringify(safe)).not.toContain('dup');
  });

  test('a value the engine rejects is not echoed by the log line', async () => {
    // PostgreSQL: `invalid input syntax for type bigint: "<value>"`; SQLite: a datatype mismatch
    const error = await failure(() =>
      db.client.config.client === 'pg'
        ? db.raw('select ?::bigint as n', [SECRET])
        : db.raw('insert into users (id) values (?), (?)', [SECRET, SECRET]),
    );
    const lines: string[] = [];
    createLogger('info', (line) => lines.push(line)).warn('query failed', { err: error });
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain(SECRET);
    expect(JSON.parse(lines[0]).err.type).toBe('DatabaseError');
  });

  test('other errors keep their first line', () => {
    expect(safeError(new Error('first\nsecond')).message).toBe('first');
    expect(safeError('thrown string').message).toBe('a non-Error value was thrown');
  });
});
