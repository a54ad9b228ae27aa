import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { minuteCounts } from '../shared/minute-counts.ts';

export type MetricsSources = Readonly<{
  /** Seconds since the current signing key began signing. */
  signingKeyAgeSeconds: () => number;
  /** Database pool: connections in use, idle, and requests waiting for one. */
  pool: () => { used: number; free: number; pending: number };
  /** The clock of the last hour's counts (the admin console's overview). */
  now?: () => number;
}>;

/**
 * Everything /metrics reports, in one registry per process (no prom-client global). With
 * WORKERS>1 the primary sums the workers' registries (gauges of age take the maximum).
 * Names follow Prometheus conventions: `_total` counters, base units (seconds).
 */
export function createMetrics(sources: MetricsSources) {
  const registry = new Registry();
  // process CPU, memory, GC, and nodejs_eventloop_lag_seconds (+ percentiles)
  collectDefaultMetrics({ register: registry });

  const requests = new Counter({
    name: 'portcullis_http_requests_total',
    help: 'HTTP requests answered, by route (a fixed set of names, never the raw path), method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'portcullis_http_request_duration_seconds',
    help: 'HTTP request duration by route',
    labelNames: ['route'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const tokens = new Counter({
    name: 'portcullis_tokens_issued_total',
    help: 'Successful token endpoint responses, by grant type and partner (client_id)',
    labelNames: ['grant_type', 'client_id'] as const,
    registers: [registry],
  });
  const logins = new Counter({
    name: 'portcullis_logins_total',
    help: 'Login steps by result: success (login finished) or failure (a refused password or second factor)',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const lockouts = new Counter({
    name: 'portcullis_login_lockouts_total',
    help: 'Accounts locked after too many failures',
    registers: [registry],
  });
  const throttled = new Counter({
    name: 'portcullis_throttled_total',
    help: 'Requests refused by a rate limit (429) or by a full queue (503), by limit name',
    labelNames: ['limit'] as const,
    registers: [registry],
  });
  // the admin console's "last hour" (Prometheus counters have no window): per minute, this process only
  const recentTokens = minuteCounts(sources.now ?? Date.now);
  const recentLoginFailures = minuteCounts(sources.now ?? Date.now);
  const queues = new Map<string, () => { running: number; waiting: number }>();
  new Gauge({
    name: 'portcullis_queue_tasks',
    help: 'Bounded work queues (password hashing): tasks running and waiting',
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
    collect() {
      for (const [queue, depth] of queues) {
        const { running, waiting } = depth();
        this.set({ queue, state: 'running' }, running);
        this.set({ queue, state: 'waiting' }, waiting);
      }
    },
  });
  new Gauge({
    name: 'portcullis_signing_key_age_seconds',
    help: 'Seconds since the current signing key began signing',
    aggregator: 'max',
    registers: [registry],
    collect() {
      this.set(sources.signingKeyAgeSeconds());
    },
  });
  new Gauge({
    name: 'portcullis_db_pool_connections',
    help: 'Database pool: connections used, free, and requests pending a connection',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      const { used, free, pending } = sources.pool();
      this.set({ state: 'used' }, used);
      this.set({ state: 'free' }, free);
      this.set({ state: 'pending' }, pending);
    },
  });

  return {
    registry,
    httpRequest(route: string, method: string, status: number, seconds: number): void {
      requests.inc({ route, method, status: String(status) });
      duration.observe({ route }, seconds);
    },
    // plain functions (no `this`): they are handed on as callbacks
    tokenIssued: (grantType: string, clientId: string): void => {
      tokens.inc({ grant_type: grantType, client_id: clientId });
      recentTokens.add();
    },
    throttled: (limit: string): void => {
      throttled.inc({ limit });
    },
    watchQueue(queue: string, source: { depth(): { running: number; waiting: number } }): void {
      queues.set(queue, () => source.depth());
    },
    /** Tokens issued and refused login steps over the last 60 minutes, counted by this process since it started. */
    lastHour: (): { tokensIssued: number; failedLogins: number } => ({
      tokensIssued: recentTokens.total(),
      failedLogins: recentLoginFailures.total(),
    }),
    /** For the login routes: call on each outcome. */
    login: {
      success: (): void => logins.inc({ result: 'success' }),
      failure: (): void => {
        logins.inc({ result: 'failure' });
        recentLoginFailures.add();
      },
      lockout: (): void => lockouts.inc(),
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
export type LoginMetrics = Metrics['login'];
