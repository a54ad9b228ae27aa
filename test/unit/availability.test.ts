import { isDatabaseUnavailable } from '../../src/db/availability.ts';

const withCode = (code: string, extra: Record<string, unknown> = {}) => Object.assign(new Error('x'), { code, ...extra });

describe('isDatabaseUnavailable: an outage, not a bug', () => {
  test.each([
    ['connection refused', withCode('ECONNREFUSED')],
    ['connection reset', withCode('ECONNRESET')],
    ['a refused dual-stack connect (AggregateError)', new AggregateError([withCode('ECONNREFUSED'), withCode('ECONNREFUSED')])],
    ['pool acquire timeout', Object.assign(new Error('Knex: Timeout acquiring a connection'), { name: 'KnexTimeoutError' })],
    ['57P01 admin shutdown (a fast stop, a failover)', withCode('57P01', { severity: 'FATAL' })],
    ['57P02 crash shutdown', withCode('57P02', { severity: 'FATAL' })],
    ['57P03 cannot connect now (starting up)', withCode('57P03', { severity: 'FATAL' })],
    ['08006 connection failure', withCode('08006', { severity: 'FATAL' })],
    ['53300 too many connections', withCode('53300', { severity: 'FATAL' })],
    ['node-postgres: socket closed under the client', new Error('Connection terminated unexpectedly')],
    ['node-postgres: a client that errored', new Error('Client has encountered a connection error and is not queryable')],
    ['SQLITE_BUSY past its busy timeout', withCode('SQLITE_BUSY')],
    ['SQLITE_CANTOPEN (the file unreadable)', withCode('SQLITE_CANTOPEN')],
    ['an outage as the cause', new Error('wrapped', { cause: withCode('ECONNREFUSED') })],
  ])('%s', (_, error) => expect(isDatabaseUnavailable(error)).toBe(true));

  test.each([
    ['a unique violation', withCode('23505', { severity: 'ERROR' })],
    ['a syntax error', withCode('42601', { severity: 'ERROR' })],
    ['a statement timeout', withCode('57014', { severity: 'ERROR' })],
    ['SQLITE_CONSTRAINT', withCode('SQLITE_CONSTRAINT')],
    ['a TypeError', new TypeError('cannot read properties of undefined')],
    ['not an error', 'ECONNREFUSED'],
    ['null', null],
  ])('%s is not', (_, error) => expect(isDatabaseUnavailable(error)).toBe(false));
});
