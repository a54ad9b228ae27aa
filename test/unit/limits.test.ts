import type { Context } from 'koa';
import { ConfigError, loadConfig } from '../../src/config/config.ts';
import { addressKey, sourceAddress } from '../../src/limits/source-address.ts';
import { basicClientId } from '../../src/limits/throttle.middleware.ts';
import { createWorkQueue, QueueFullError } from '../../src/limits/work-queue.ts';

/** A task that finishes when the test says so. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, task: () => opened };
}

describe('work queue', () => {
  test('runs at most `concurrency` at once, lets `maxWaiting` wait, refuses the next at once, then serves the line in order', async () => {
    const queue = createWorkQueue({ concurrency: 2, maxWaiting: 2 });
    const gates = Array.from({ length: 4 }, gate);
    const finished: number[] = [];
    const runs = gates.map((g, i) =>
      queue.run(async () => {
        await g.task();
        finished.push(i);
        return i;
      }),
    );
    expect(queue.depth()).toEqual({ running: 2, waiting: 2 });

    const refused = await queue.run(async () => 'never').catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(QueueFullError);
    expect((refused as QueueFullError).retryAfterSeconds).toBeGreaterThanOrEqual(1);

    gates[1].open();
    await runs[1];
    await new Promise((resolve) => setImmediate(resolve));
    expect(queue.depth()).toEqual({ running: 2, waiting: 1 }); // the first in line took the free turn
    for (const g of gates) g.open();
    expect(await Promise.all(runs)).toEqual([0, 1, 2, 3]);
    expect(finished[0]).toBe(1);
    expect(queue.depth()).toEqual({ running: 0, waiting: 0 });
  });

  test('a task that fails frees its turn and passes its error on', async () => {
    const queue = createWorkQueue({ concurrency: 1, maxWaiting: 0 });
    await expect(
      queue.run(async () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await queue.run(async () => 'next')).toBe('next');
  });

  test('with no room to wait, anything past the running ones is refused', async () => {
    const queue = createWorkQueue({ concurrency: 1, maxWaiting: 0 });
    const g = gate();
    const running = queue.run(g.task);
    await expect(queue.run(async () => 'x')).rejects.toBeInstanceOf(QueueFullError);
    g.open();
    await running;
  });
});

function ctx(peer: string, headers: Record<string, string> = {}): Context {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  return { req: { socket: { remoteAddress: peer } }, get: (name: string) => lower[name.toLowerCase()] ?? '' } as unknown as Context;
}

describe('source address', () => {
  test('the TCP peer, whatever X-Forwarded-For says, unless the proxy is trusted', () => {
    expect(sourceAddress(ctx('192.0.2.10', { 'X-Forwarded-For': '203.0.113.1' }), false)).toBe('192.0.2.10');
  });

  test('behind a trusted proxy: the entry the proxy appended (the last), not the one the client wrote', () => {
    expect(sourceAddress(ctx('10.0.0.2', { 'X-Forwarded-For': '203.0.113.1, 198.51.100.7' }), true)).toBe('198.51.100.7');
    expect(sourceAddress(ctx('10.0.0.2', { 'X-Forwarded-For': '198.51.100.7' }), true)).toBe('198.51.100.7');
    expect(sourceAddress(ctx('10.0.0.2'), true)).toBe('10.0.0.2');
  });

  test('IPv4-mapped IPv6 is IPv4; IPv6 counts per /64', () => {
    expect(addressKey('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(addressKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:DB8:0001:0002:0:0:0:9')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressKey('not an address')).toBe('not an address');
  });
});

describe('client of HTTP Basic authentication', () => {
  const basic = (raw: string) => ctx('127.0.0.1', { Authorization: `Basic ${Buffer.from(raw).toString('base64')}` });

  test('the form-encoded client_id before the colon; nothing for other schemes or malformed values', () => {
    expect(basicClientId(basic('prt_abc:secret'))).toBe('prt_abc');
    expect(basicClientId(basic('a%20b+c:secret'))).toBe('a b c');
    expect(basicClientId(basic(':secret'))).toBeUndefined();
    expect(basicClientId(basic('no-colon'))).toBeUndefined();
    expect(basicClientId(basic('%E0%A4%A:x'))).toBeUndefined();
    expect(basicClientId(ctx('127.0.0.1', { Authorization: 'Bearer abc' }))).toBeUndefined();
    expect(basicClientId(ctx('127.0.0.1'))).toBeUndefined();
  });
});

describe('settings', () => {
  test('defaults', () => {
    const { limits } = loadConfig({});
    expect(limits.loginPerIp).toEqual({ points: 100, durationSeconds: 600 });
    expect(limits.loginPerUsername).toEqual({ points: 10, durationSeconds: 300 });
    expect(limits.tokenPerClient).toEqual({ points: 1200, durationSeconds: 60 });
    expect(limits.endpointStore).toBe('memory');
    expect(limits.hashConcurrency).toBeGreaterThanOrEqual(1);
    expect(limits.hashQueueMax).toBe(32);
  });

  test('N/WINDOW, off, and a clear error naming the variable', () => {
    const { limits } = loadConfig({
      RATE_LIMIT_TOKEN_PER_IP: '50/30s',
      RATE_LIMIT_AUTH_PER_IP: 'off',
      RATE_LIMIT_ENDPOINT_STORE: 'database',
      HASH_CONCURRENCY: '2',
      HASH_QUEUE_MAX: '0',
    });
    expect(limits.tokenPerIp).toEqual({ points: 50, durationSeconds: 30 });
    expect(limits.authPerIp).toBeNull();
    expect(limits.endpointStore).toBe('database');
    expect([limits.hashConcurrency, limits.hashQueueMax]).toEqual([2, 0]);
    for (const [name, value] of [
      ['RATE_LIMIT_LOGIN_PER_IP', '100'],
      ['RATE_LIMIT_LOGIN_PER_IP', '0/1m'],
      ['RATE_LIMIT_LOGIN_PER_IP', '5/soon'],
      ['RATE_LIMIT_ENDPOINT_STORE', 'redis'],
      ['HASH_CONCURRENCY', '0'],
    ]) {
      expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
      expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`^${name}: `));
    }
  });
});
