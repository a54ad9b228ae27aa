import { createLogger, redactParameters, type LogLevel } from '../../src/log/logger.ts';

function logged(fields: Record<string, unknown>, msg = 'line'): Record<string, any> {
  const lines: string[] = [];
  createLogger('info', (line) => lines.push(line)).warn(msg, fields);
  return JSON.parse(lines[0]) as Record<string, any>;
}

describe('the log redacts secrets by what a value is', () => {
  test('an exit code, a signal and an error code are kept', () => {
    const line = logged({ worker_pid: 123, code: 1, signal: 'SIGKILL', error: { code: 'SQLITE_BUSY' } });
    expect(line).toMatchObject({ code: 1, signal: 'SIGKILL', error: { code: 'SQLITE_BUSY' } });
  });

  test('secret-bearing fields are redacted at any depth; look-alike names are kept', () => {
    const line = logged({
      password: 'hunter2',
      client_secret: 's3cret',
      access_token: 'eyJ.a.b',
      refresh_token: 'rt',
      id_token_hint: 'eyJ.c.d',
      token: 'opaque',
      totp_secret: 'JBSWY3DP',
      recovery_codes: ['a1', 'b2'],
      enrolment_code: 'EC-1',
      private_jwk: { d: 'x' },
      kek: 'k',
      seed: 'sd',
      headers: { authorization: 'Basic eDp5', cookie: '_session=abc', accept: 'text/html' },
      nested: { deeper: { secret: 'deep' } },
      token_type: 'Bearer',
      token_format: 'jwt',
      signing_kid: 'kid-1',
    });
    for (const key of [
      'password',
      'client_secret',
      'access_token',
      'refresh_token',
      'id_token_hint',
      'token',
      'totp_secret',
      'recovery_codes',
      'enrolment_code',
      'private_jwk',
      'kek',
      'seed',
    ])
      expect([key, line[key]]).toEqual([key, '[redacted]']);
    expect(line.headers).toEqual({ authorization: '[redacted]', cookie: '[redacted]', accept: 'text/html' });
    expect(line.nested.deeper.secret).toBe('[redacted]');
    expect(line).toMatchObject({ token_type: 'Bearer', token_format: 'jwt', signing_kid: 'kid-1' });
  });

  test('an OAuth authorization code is redacted where it travels: URLs, form bodies, parameter objects', () => {
    const line = logged({
      url: 'https://app.test/callback?code=abc123&state=xyz&iss=https%3A%2F%2Fauth',
      location: '/cb#code=frag',
      body: 'grant_type=authorization_code&code=abc123&redirect_uri=https%3A%2F%2Fapp&code_verifier=v&client_secret=s',
      params: { code: 'abc123', grant_type: 'authorization_code' },
      json: '{"code":"abc","error":"invalid_grant"}',
    });
    expect(line.url).toBe('https://app.test/callback?code=[redacted]&state=xyz&iss=https%3A%2F%2Fauth');
    expect(line.body).toBe(
      'grant_type=authorization_code&code=[redacted]&redirect_uri=https%3A%2F%2Fapp&code_verifier=[redacted]&client_secret=[redacted]',
    );
    expect(line.params).toEqual({ code: '[redacted]', grant_type: 'authorization_code' });
    expect(line.json).toBe('{"code":"[redacted]","error":"invalid_grant"}');
    expect(JSON.stringify(line)).not.toContain('abc123');
  });

  test('an error keeps its code, loses secrets in its message', () => {
    const error = Object.assign(new Error('redirect to https://app.test/cb?code=abc123 failed'), { code: 'ECONNREFUSED' });
    const line = logged({ err: error });
    expect(line.err.message).toBe('redirect to https://app.test/cb?code=[redacted] failed');
    expect(JSON.stringify(line)).not.toContain('abc123');
  });

  test('child bindings are redacted too', () => {
    const lines: string[] = [];
    createLogger('info', (l) => lines.push(l))
      .child({ worker: 2, password: 'p' })
      .info('x');
    expect(JSON.parse(lines[0])).toMatchObject({ worker: 2, password: '[redacted]' });
  });

  test('redactParameters leaves text without secret parameters alone', () => {
    expect(redactParameters('/auth?client_id=abc&scope=openid&response_type=code')).toBe(
      '/auth?client_id=abc&scope=openid&response_type=code',
    );
  });
});

function loggedAt(level: LogLevel, write: (log: ReturnType<typeof createLogger>) => void): Array<Record<string, unknown>> {
  const lines: string[] = [];
  write(createLogger(level, (line) => lines.push(line)));
  return lines.map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('createLogger', () => {
  test('debug lines are written at debug only', () => {
    expect(loggedAt('debug', (log) => log.debug('detail'))).toEqual([expect.objectContaining({ level: 'debug', msg: 'detail' })]);
    expect(loggedAt('info', (log) => log.debug('detail'))).toEqual([]);
  });

  test.each(['debug', 'info', 'warn', 'error'] as const)('at %s, a notice (that the server listens) is still written', (level) => {
    expect(loggedAt(level, (log) => log.child({ worker: 1 }).notice('listening', { port: 1 }))).toEqual([
      expect.objectContaining({ level: 'info', msg: 'listening', port: 1, worker: 1 }),
    ]);
  });

  test('silent is silent, notices included', () => {
    expect(
      loggedAt('silent', (log) => {
        log.notice('listening');
        log.error('broken');
      }),
    ).toEqual([]);
  });

  test('at warn, info lines are still left out', () => {
    expect(
      loggedAt('warn', (log) => {
        log.info('request');
        log.warn('careful');
      }),
    ).toEqual([expect.objectContaining({ msg: 'careful' })]);
  });
});
