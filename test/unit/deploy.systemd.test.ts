import fs from 'node:fs';
import path from 'node:path';
import { SETTINGS, loadConfig } from '../../src/config/config.ts';
import { ROOT } from '../support/harness.ts';

// deploy/systemd/portcullis.service and its example environment file, checked against the code:
// a renamed setting or a moved entry point must break this test, not a production start.

const UNIT = fs.readFileSync(path.join(ROOT, 'deploy/systemd/portcullis.service'), 'utf8');
const ENV_FILE = fs.readFileSync(path.join(ROOT, 'deploy/systemd/portcullis.env'), 'utf8');

/** Every `Key=value` line of the unit, in order (comments and section headers left out). */
function directives(unit: string): Array<[string, string]> {
  return unit
    .split('\n')
    .filter((line) => /^[A-Za-z]+=/.test(line))
    .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]);
}
const values = (key: string) =>
  directives(UNIT)
    .filter(([name]) => name === key)
    .map(([, value]) => value);
const one = (key: string) => {
  const found = values(key);
  if (found.length !== 1) throw new Error(`${key}= appears ${found.length} times in the unit`);
  return found[0];
};

/** The example environment file's assignments; with `commented`, also those commented out (suggestions to uncomment). */
function assignments(text: string, options: { commented?: boolean } = {}): Record<string, string> {
  const line = options.commented ? /^#? ?([A-Z][A-Z0-9_]*)=(\S*)/gm : /^([A-Z][A-Z0-9_]*)=(.*)$/gm;
  return Object.fromEntries([...text.matchAll(line)].map((match) => [match[1], match[2]]));
}

describe('deploy/systemd/portcullis.service', () => {
  test('every variable in the example environment file (and any Environment= line) is a real setting', () => {
    const names = [
      ...Object.keys(assignments(ENV_FILE, { commented: true })),
      ...values('Environment').flatMap((line) => line.split(/\s+/).map((pair) => pair.split('=')[0])),
    ];
    expect(names.length).toBeGreaterThan(5);
    for (const name of names) expect([name, Object.hasOwn(SETTINGS, name)]).toEqual([name, true]);
  });

  test('the example environment file is a valid configuration', () => {
    const config = loadConfig(assignments(ENV_FILE));
    expect(config.trustProxy).toBe(true);
    expect(config.issuer).toMatch(/^https:\/\//);
  });

  test('ExecStart runs the entry point on the pinned Node, from the working directory', () => {
    const root = one('WorkingDirectory');
    const [binary, script, ...rest] = one('ExecStart').split(/\s+/);
    expect(binary).toBe(`${root}/node_modules/.bin/node`);
    expect(rest).toEqual([]);
    expect(fs.existsSync(path.join(ROOT, script))).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).scripts.start).toBe(`node ${script}`);
    expect(one('EnvironmentFile')).toBe('/etc/portcullis/portcullis.env');
  });

  test('the database and the KEK folders of the example are the writable paths', () => {
    const env = assignments(ENV_FILE);
    const writable = one('ReadWritePaths').split(/\s+/);
    const database = /^sqlite:(.+)$/.exec(env.DATABASE_URL)?.[1];
    expect(writable).toContain(path.dirname(database!));
    expect(writable).toContain(env.KEYS_DIR);
    expect(`/var/lib/${one('StateDirectory')}`).toBe(path.dirname(database!));
  });

  test('hardening: the options that matter are set, and MemoryDenyWriteExecute is not (V8 compiles at run time)', () => {
    for (const [key, value] of [
      ['NoNewPrivileges', 'yes'],
      ['PrivateTmp', 'yes'],
      ['ProtectSystem', 'strict'],
      ['ProtectHome', 'yes'],
      ['SystemCallFilter', '@system-service'],
      ['RestrictAddressFamilies', 'AF_UNIX AF_INET AF_INET6'],
      ['Restart', 'on-failure'],
      ['KillSignal', 'SIGTERM'],
    ])
      expect([key, one(key)]).toEqual([key, value]);
    expect(values('MemoryDenyWriteExecute')).toEqual([]);
    expect(Number(one('LimitNOFILE'))).toBeGreaterThanOrEqual(4096);
  });

  test('TimeoutStopSec outlasts the drain: SHUTDOWN_GRACE, plus the cluster primary’s 2 s', () => {
    const grace = loadConfig(assignments(ENV_FILE)).shutdownGraceSeconds;
    const stop = /^(\d+)s$/.exec(one('TimeoutStopSec'))?.[1];
    expect(Number(stop)).toBeGreaterThan(grace + 2);
  });
});
