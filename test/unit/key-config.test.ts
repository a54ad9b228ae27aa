import { ConfigError, loadConfig } from '../../src/config/config.ts';

describe('KEY_* configuration', () => {
  test('defaults: 30d interval, 1d prepublish, 1d retain, 5s poll, JWKS cached 300s', () => {
    expect(loadConfig({}).keys).toEqual({
      rotationIntervalSeconds: 30 * 86400,
      prepublishSeconds: 86400,
      retainSeconds: 86400,
      pollIntervalSeconds: 5,
      jwksMaxAgeSeconds: 300,
    });
  });

  test('durations in s, h, d; the JWKS cache time stays below KEY_PREPUBLISH', () => {
    const keys = loadConfig({ KEY_ROTATION_INTERVAL: '12h', KEY_PREPUBLISH: '90s', KEY_RETAIN: '2d', KEY_POLL_INTERVAL: '2s' }).keys;
    expect(keys).toEqual({
      rotationIntervalSeconds: 43200,
      prepublishSeconds: 90,
      retainSeconds: 172800,
      pollIntervalSeconds: 2,
      jwksMaxAgeSeconds: 45,
    });
    const short = loadConfig({ KEY_ROTATION_INTERVAL: '4s', KEY_PREPUBLISH: '3s', KEY_RETAIN: '3s', KEY_POLL_INTERVAL: '1s' }).keys;
    expect(short.jwksMaxAgeSeconds).toBe(1);
  });

  test.each([
    [{ KEY_ROTATION_INTERVAL: 'soon' }, /^KEY_ROTATION_INTERVAL: "soon" is not a duration/],
    [{ KEY_RETAIN: '0s' }, /^KEY_RETAIN: "0s" must be a positive duration/],
    [
      { KEY_ROTATION_INTERVAL: '1d', KEY_PREPUBLISH: '1d' },
      /^KEY_PREPUBLISH \(86400s\) must be shorter than KEY_ROTATION_INTERVAL \(86400s\)$/,
    ],
    [
      { KEY_ROTATION_INTERVAL: '10s', KEY_PREPUBLISH: '4s', KEY_POLL_INTERVAL: '2s' },
      /^KEY_PREPUBLISH \(4s\) must be longer than KEY_POLL_INTERVAL \(2s\) plus the JWKS cache time \(2s\)$/,
    ],
  ])('%j is refused in one line', (env, message) => {
    let error: unknown;
    try {
      loadConfig(env);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain('\n');
  });
});
