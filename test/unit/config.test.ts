import { ConfigError, SETTINGS, loadConfig, shownDefault } from '../../src/config/config.ts';
import { parseDuration } from '../../src/config/duration.ts';
import fs from 'node:fs';
import path from 'node:path';
import { contrastRatio } from '../../src/shared/colour-contrast.ts';
import { tempDir } from '../support/harness.ts';

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

  test.each([
    ['debug', 'debug'],
    ['WARN', 'warn'],
    ['Info', 'info'],
    [' error ', 'error'],
    ['SILENT', 'silent'],
  ])('LOG_LEVEL=%j is %s', (raw, level) => expect(loadConfig({ LOG_LEVEL: raw }).logLevel).toBe(level));

  test('PORTCULLIS_KEK takes a comma-separated list', () => {
    const a = Buffer.alloc(32, 1).toString('base64url');
    const b = Buffer.alloc(32, 2).toString('base64url');
    expect(loadConfig({ PORTCULLIS_KEK: `${a}, ${b}` }).kekList).toEqual([a, b]);
  });
});

describe('scale-out settings', () => {
  test('defaults: pool of 10, 5 s statement timeout, one worker, 10 s grace, metrics for loopback only', () => {
    const config = loadConfig({});
    expect(config.database).toEqual({ poolMax: 10, statementTimeoutMs: 5000 });
    expect(config.workers).toBe(1);
    expect(config.shutdownGraceSeconds).toBe(10);
    expect(config.metricsToken).toBeUndefined();
  });

  test('values are read and checked', () => {
    const config = loadConfig({
      DATABASE_POOL_MAX: '25',
      DATABASE_STATEMENT_TIMEOUT: '30s',
      WORKERS: '4',
      SHUTDOWN_GRACE: '20s',
      METRICS_TOKEN: 'x'.repeat(20),
    });
    expect(config.database).toEqual({ poolMax: 25, statementTimeoutMs: 30_000 });
    expect(config.workers).toBe(4);
    expect(config.shutdownGraceSeconds).toBe(20);
    expect(loadConfig({ DATABASE_STATEMENT_TIMEOUT: '0' }).database.statementTimeoutMs).toBe(0);
    expect(() => loadConfig({ DATABASE_POOL_MAX: '1' })).toThrow(/^DATABASE_POOL_MAX: "1" is not a whole number from 2 to 1000/);
    expect(() => loadConfig({ WORKERS: 'many' })).toThrow(/^WORKERS:/);
    expect(() => loadConfig({ WORKERS: '0' })).toThrow(/^WORKERS:/);
    expect(() => loadConfig({ METRICS_TOKEN: 'short' })).toThrow(/^METRICS_TOKEN: use at least 16 characters/);
  });

  test('DATABASE_URL takes libpq sslmode values only', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://u@db:5432/auth?sslmode=require' }).databaseUrl).toContain('sslmode=require');
    expect(() => loadConfig({ DATABASE_URL: 'postgres://u@db:5432/auth?sslmode=yes' })).toThrow(/^DATABASE_URL: sslmode must be one of/);
  });
});

describe('BRAND_*', () => {
  const dir = tempDir();
  const file = (name: string, content: string | Buffer) => {
    fs.writeFileSync(path.join(dir, name), content);
    return path.join(dir, name);
  };
  const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');

  test('defaults: a name, an accent white text reads on, the shipped SVG logo drawn in the accent', () => {
    const { brand } = loadConfig({});
    expect(brand.name).toBe('Portcullis');
    expect(contrastRatio(brand.accent, '#ffffff')).toBeGreaterThanOrEqual(4.5);
    expect(brand.logo.type).toBe('image/svg+xml');
    expect(brand.logo.bytes.toString()).toContain(`fill="${brand.accent}"`);
    expect(loadConfig({ BRAND_ACCENT: '#0F5E7A' }).brand.logo.bytes.toString()).toContain('fill="#0f5e7a"');
  });

  test('set values: the name trimmed, the colour in lower case, an SVG or PNG told by its content', () => {
    const svg = file('logo.svg', '<?xml version="1.0"?>\n<!-- Acme -->\n<svg xmlns="http://www.w3.org/2000/svg"></svg>');
    const brand = loadConfig({ BRAND_NAME: '  Acme Pay ', BRAND_ACCENT: '#0F5E7A', BRAND_LOGO: svg }).brand;
    expect(brand).toEqual({ name: 'Acme Pay', accent: '#0f5e7a', logo: { path: svg, type: 'image/svg+xml', bytes: fs.readFileSync(svg) } });
    expect(loadConfig({ BRAND_LOGO: file('logo.img', PNG) }).brand.logo.type).toBe('image/png');
  });

  test.each([
    [{ BRAND_NAME: 'x'.repeat(61) }, /^BRAND_NAME: use 1 to 60 characters$/],
    [{ BRAND_NAME: 'Acme\u0007' }, /^BRAND_NAME: must not contain control characters$/],
    [{ BRAND_ACCENT: 'blue' }, /^BRAND_ACCENT: "blue" is not a colour: use #rrggbb/],
    [{ BRAND_ACCENT: '#12345' }, /^BRAND_ACCENT: "#12345" is not a colour/],
    // white on #66aaff is 2.40:1; the suggestion reaches 4.5:1
    [
      { BRAND_ACCENT: '#66AAFF' },
      /^BRAND_ACCENT: #66aaff is too light for white text on the primary button \(contrast 2\.40:1, WCAG AA needs 4\.5:1\): use a darker colour, e\.g\. #4777b2$/,
    ],
    [{ BRAND_LOGO: '/no/such/logo.svg' }, /^BRAND_LOGO: cannot read \/no\/such\/logo\.svg \(ENOENT\)$/],
  ])('%j is refused in one line', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  test('a logo file that is a folder, too large, or neither SVG nor PNG is refused in one line', () => {
    const cases: Array<[string, RegExp]> = [
      [dir, /^BRAND_LOGO: cannot read .* \(EISDIR\)$/],
      [file('huge.svg', `<svg>${' '.repeat(256 * 1024)}</svg>`), /^BRAND_LOGO: .*huge\.svg is larger than 256 KiB$/],
      [file('logo.gif', 'GIF89a'), /^BRAND_LOGO: .*logo\.gif is neither an SVG nor a PNG image$/],
      [file('page.html', '<html><svg></svg></html>'), /is neither an SVG nor a PNG image$/],
    ];
    for (const [logo, message] of cases) expect(() => loadConfig({ BRAND_LOGO: logo })).toThrow(message);
    expect(contrastRatio('#4777b2', '#ffffff')).toBeGreaterThanOrEqual(4.5);
  });
});

describe('the SETTINGS table', () => {
  const names = Object.keys(SETTINGS);

  test('an empty value is the default, for every setting', () => {
    for (const name of names) expect(loadConfig({ [name]: '' })).toEqual(loadConfig({}));
  });

  test('every setting but HOST, KEYS_DIR and BRAND_NAME (any words) refuses nonsense with a one-line error naming it', () => {
    const refused = names.filter((name) => {
      try {
        loadConfig({ [name]: 'nonsense!' });
        return false;
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        expect((error as Error).message).toMatch(new RegExp(`^${name}: [^\\n]+$`));
        return true;
      }
    });
    expect(refused).toEqual(names.filter((name) => !['HOST', 'KEYS_DIR', 'BRAND_NAME'].includes(name)));
  });

  test('each is documented, with a default the docs can show', () => {
    for (const entry of Object.values(SETTINGS)) {
      expect(entry.doc.length).toBeGreaterThan(10);
      expect(entry.doc).not.toContain('\n');
      expect(shownDefault(entry)).not.toBe('');
    }
  });
});
