import { createLogger, type LogLevel } from '../../src/log/logger.ts';

function logged(level: LogLevel, write: (log: ReturnType<typeof createLogger>) => void): Array<Record<string, unknown>> {
  const lines: string[] = [];
  write(createLogger(level, (line) => lines.push(line)));
  return lines.map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('createLogger', () => {
  test('debug lines are written at debug only', () => {
    expect(logged('debug', (log) => log.debug('detail'))).toEqual([expect.objectContaining({ level: 'debug', msg: 'detail' })]);
    expect(logged('info', (log) => log.debug('detail'))).toEqual([]);
  });

  test.each(['debug', 'info', 'warn', 'error'] as const)('at %s, a notice (that the server listens) is still written', (level) => {
    expect(logged(level, (log) => log.child({ worker: 1 }).notice('listening', { port: 1 }))).toEqual([
      expect.objectContaining({ level: 'info', msg: 'listening', port: 1, worker: 1 }),
    ]);
  });

  test('silent is silent, notices included', () => {
    expect(
      logged('silent', (log) => {
        log.notice('listening');
        log.error('broken');
      }),
    ).toEqual([]);
  });

  test('at warn, info lines are still left out', () => {
    expect(
      logged('warn', (log) => {
        log.info('request');
        log.warn('careful');
      }),
    ).toEqual([expect.objectContaining({ msg: 'careful' })]);
  });
});
