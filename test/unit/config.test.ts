import { ConfigError, loadConfig } from '../../src/config/config.ts';
import { parseDuration } from '../../src/config/duration.ts';

describe('parseDuration', () => {
  test.each([
    ['90s', 90],
    ['15m', 900],
    ['12h', 43200],
    ['30d', 2592000],
    ['45', 45],
  ])('%s = %i seconds', (text, seconds) => expect(parseDuration(text)).toBe(seconds));

  test.each(['', 'abc', '1w', '-5s', '0s', '1.5h', '10 days'])('"%s" is refused', (text) => {
    expect(() => parseDuration(text)).toThrow(/duration/);
  });
});

describe('loadConfig', () => {
  test('defaults', () => {
    const config = loadConfig({});
    expect(config.port).toBe(3000);
    expect(config.issuer).toBe('http://localhost:3000');
    expect(config.databaseUrl).toBe('sqlite:data/portcullis.sqlite');
    expect(config.kekList).toBeUndefined();
    expect(Object.isFrozen(config)).toBe(true);
  });

  test('ISSUER follows PORT unless given; a trailing slash is dropped', () => {
    expect(loadConfig({ PORT: '4000' }).issuer).toBe('http://localhost:4000');
    expect(loadConfig({ ISSUER: 'https://auth.bank.test/' }).issuer).toBe('https://auth.bank.test');
  });

  test.each([
    [{ PORT: 'eighty' }, /^PORT:/],
    [{ PORT: '70000' }, /^PORT:/],
    [{ ISSUER: 'ftp://x' }, /^ISSUER:/],
    [{ ISSUER: 'https://x/?a=b' }, /^ISSUER:/],
    [{ DATABASE_URL: 'mysql://x' }, /^DATABASE_URL:/],
    [{ DATABASE_URL: 'sqlite:' }, /^DATABASE_URL:/],
    [{ PORTCULLIS_KEK: 'short' }, /^PORTCULLIS_KEK:/],
    [{ PORTCULLIS_KEK: ',' }, /^PORTCULLIS_KEK:/],
    [{ PURGE_INTERVAL: 'often' }, /^PURGE_INTERVAL:/],
    [{ TRUST_PROXY: 'maybe' }, /^TRUST_PROXY:/],
    [{ LOG_LEVEL: 'loud' }, /^LOG_LEVEL:/],
  ])('%j is a one-line error naming the variable', (env, pattern) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(pattern);
  });

  test('PORTCULLIS_KEK takes a comma-separated list', () => {
    const a = Buffer.alloc(32, 1).toString('base64url');
    const b = Buffer.alloc(32, 2).toString('base64url');
    expect(loadConfig({ PORTCULLIS_KEK: `${a}, ${b}` }).kekList).toEqual([a, b]);
  });
});
