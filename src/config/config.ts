import os from 'node:os';
import path from 'node:path';
import { parseDuration } from './duration.ts';

/**
 * Every environment variable Portcullis reads, in one place. Nothing else reads process.env.
 * A bad value stops start-up with one line naming the variable.
 */
export type Config = Readonly<{
  /** PORT: TCP port to listen on. Default 3000. */
  port: number;
  /** HOST: interface to bind. Default all interfaces (as `npm start` users expect). */
  host: string | undefined;
  /** ISSUER: the public issuer URL (what clients and resource servers see). Default http://localhost:PORT. */
  issuer: string;
  /**
   * DATABASE_URL: `sqlite:PATH` (default `sqlite:data/portcullis.sqlite`) or
   * `postgres://user:password@host:5432/db[?sslmode=require][&schema=NAME]`. `schema` selects
   * (and creates) a schema instead of `public`. Every instance of one deployment uses the same URL.
   */
  databaseUrl: string;
  /** KEYS_DIR: where the key-encryption key file is kept. Default `keys`. */
  keysDir: string;
  /** PORTCULLIS_KEK: base64url 32-byte KEKs, comma-separated; the first encrypts. Replaces the file. */
  kekList: readonly string[] | undefined;
  /** PURGE_INTERVAL: how often expired rows are deleted. Default 10m. */
  purgeIntervalSeconds: number;
  /** TRUST_PROXY: `1` to trust X-Forwarded-* from a reverse proxy (TLS terminated in front). Default off. */
  trustProxy: boolean;
  /** LOG_LEVEL: `info` (default), `warn`, `error` or `silent`. */
  logLevel: 'info' | 'warn' | 'error' | 'silent';
  /** Signing-key rotation; see `keys` below. */
  keys: KeyConfig;
  /** PostgreSQL connection settings (ignored on SQLite); see `database` below. */
  database: DatabaseConfig;
  /**
   * WORKERS: processes serving on this machine (node:cluster). Default 1 (no cluster). The
   * primary migrates and creates keys once, then forks; a worker that dies is replaced.
   * Recommended: the number of cores, on PostgreSQL (SQLite serialises writes to one file).
   */
  workers: number;
  /**
   * SHUTDOWN_GRACE: on SIGTERM/SIGINT, how long in-flight requests may take to finish before
   * the process exits anyway (code 1). Default 10s. Keep it below the orchestrator's kill timeout.
   */
  shutdownGraceSeconds: number;
  /**
   * METRICS_TOKEN: when set, `GET /metrics` needs `Authorization: Bearer <METRICS_TOKEN>`.
   * When unset, `/metrics` answers loopback peers only (judged by the socket, never by
   * X-Forwarded-For): a reverse proxy on the same host must not forward `/metrics`.
   */
  metricsToken: string | undefined;
  /** Rate limits and the password-hash queue; see `limits` below. */
  limits: LimitsConfig;
}>;

/** `points` requests per `durationSeconds` window, counted per key (an address, a partner, a username). */
export type RateLimit = Readonly<{ points: number; durationSeconds: number }>;

/**
 * Throttling and load shedding (src/limits/). Each RATE_LIMIT_* takes `N/WINDOW` (e.g. `100/10m`:
 * 100 requests per 10-minute window, per key) or `off`. Over a limit: 429 with `Retry-After`.
 * The login limits (password and second-factor posts) count in the database, shared by every
 * instance; the endpoint limits (/auth, /token, introspection) count in each process's memory
 * (see RATE_LIMIT_ENDPOINT_STORE). An address is the TCP peer, or with TRUST_PROXY=1 the
 * address the proxy appended to X-Forwarded-For; IPv6 addresses count per /64.
 */
export type LimitsConfig = Readonly<{
  /** RATE_LIMIT_AUTH_PER_IP: authorization requests (/auth) per address. Default 300/1m. */
  authPerIp: RateLimit | null;
  /** RATE_LIMIT_LOGIN_PER_IP: password and second-factor posts per address. Default 100/10m. */
  loginPerIp: RateLimit | null;
  /**
   * RATE_LIMIT_LOGIN_PER_USERNAME: password posts per username typed (a right password gives its
   * count back). Default 10/5m: above what a person types, and a short window, so that someone
   * who knows a username holds its owner up only while they keep sending (README: throttling).
   */
  loginPerUsername: RateLimit | null;
  /** RATE_LIMIT_SECOND_FACTOR_PER_ACCOUNT: code posts (TOTP, recovery, enrolment) per account. Default 10/5m. */
  secondFactorPerAccount: RateLimit | null;
  /** RATE_LIMIT_TOKEN_PER_CLIENT: /token requests per partner (client_id of HTTP Basic auth). Default 1200/1m. */
  tokenPerClient: RateLimit | null;
  /** RATE_LIMIT_TOKEN_PER_IP: /token requests per address. Default 3000/1m. */
  tokenPerIp: RateLimit | null;
  /** RATE_LIMIT_INTROSPECTION_PER_CLIENT: /token/introspection requests per partner. Default 6000/1m. */
  introspectionPerClient: RateLimit | null;
  /** RATE_LIMIT_INTROSPECTION_PER_IP: /token/introspection requests per address. Default 12000/1m. */
  introspectionPerIp: RateLimit | null;
  /**
   * RATE_LIMIT_ENDPOINT_STORE: where the /auth, /token and introspection limits count: `memory`
   * (default: each process alone, no I/O on the hot path; the effective limit is the setting
   * times the processes serving) or `database` (shared by all, one write per request).
   */
  endpointStore: 'memory' | 'database';
  /**
   * HASH_CONCURRENCY: password hashes computed at once per process. Default half the cores
   * (at least 1): a login flood then leaves the other cores, and libuv's thread pool, to tokens.
   */
  hashConcurrency: number;
  /** HASH_QUEUE_MAX: password checks waiting for a turn; past it a sign-in gets 503 + Retry-After. Default 32. */
  hashQueueMax: number;
}>;

/**
 * PostgreSQL pool and session settings. SSL comes from the URL as libpq spells it:
 * `?sslmode=require` (encrypt, no certificate check), `verify-ca` / `verify-full` (check it
 * against the system CAs, or `sslrootcert=PATH`), `disable` (default).
 */
export type DatabaseConfig = Readonly<{
  /**
   * DATABASE_POOL_MAX: connections per process, 2 or more (migrations hold one for their lock). Default 10. The server's total is this times
   * WORKERS times instances: keep it under PostgreSQL's max_connections (100 by default).
   */
  poolMax: number;
  /**
   * DATABASE_STATEMENT_TIMEOUT: PostgreSQL cancels a statement running longer. Default 5s;
   * `0` disables it. A stuck query then fails one request instead of holding a connection.
   */
  statementTimeoutMs: number;
}>;

/**
 * Signing keys rotate by themselves (src/keys/). Each duration takes `90s`, `15m`, `12h`, `30d`.
 * Start-up refuses combinations under which a resource server could meet a key it has not yet
 * fetched: KEY_PREPUBLISH must exceed KEY_POLL_INTERVAL plus the JWKS cache time.
 */
export type KeyConfig = Readonly<{
  /** KEY_ROTATION_INTERVAL: how long a key signs before the next one takes over. Default 30d. */
  rotationIntervalSeconds: number;
  /**
   * KEY_PREPUBLISH: how long a new key is in the JWKS before it signs. Default 1d. Must be
   * longer than any resource server caches the JWKS, and shorter than KEY_ROTATION_INTERVAL.
   */
  prepublishSeconds: number;
  /**
   * KEY_RETAIN: how long a retired key stays in the JWKS. Default 1d (the longest access-token
   * lifetime a resource may have is 24h; ID tokens live 1h). Enforced by construction: no token
   * lives longer than KEY_RETAIN (token lifetimes are capped to it, with a warning at start-up),
   * so every token a key signed expires before the key leaves the JWKS.
   */
  retainSeconds: number;
  /**
   * KEY_POLL_INTERVAL: how often a running server re-reads the keys, so a change made by the CLI
   * or another instance applies without a restart. Default 5s. Scheduled switches do not wait
   * for it (a timer fires at the instant); it is also added to KEY_RETAIN before removal.
   */
  pollIntervalSeconds: number;
  /** Derived, not set: the JWKS `Cache-Control: max-age`, min(300, KEY_PREPUBLISH / 2) seconds. */
  jwksMaxAgeSeconds: number;
}>;

export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

function read<T>(env: Env, name: string, fallback: T, parse: (raw: string) => T): T {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  try {
    return parse(raw);
  } catch (error) {
    throw new ConfigError(`${name}: ${(error as Error).message}`);
  }
}

function port(raw: string): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > 65535) throw new Error(`"${raw}" is not a TCP port`);
  return value;
}

function issuerUrl(raw: string): string {
  const url = URL.parse(raw);
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) throw new Error(`"${raw}" is not an http(s) URL`);
  if (url.search || url.hash) throw new Error('must not have a query or fragment');
  return raw.replace(/\/$/, '');
}

const SSL_MODES = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full'];

function databaseUrl(raw: string): string {
  if (raw.startsWith('sqlite:') && raw.length > 'sqlite:'.length) return raw;
  if (/^postgres(ql)?:\/\//.test(raw)) {
    const url = URL.parse(raw);
    if (!url) throw new Error('is not a URL');
    const sslmode = url.searchParams.get('sslmode');
    if (sslmode !== null && !SSL_MODES.includes(sslmode)) throw new Error(`sslmode must be one of ${SSL_MODES.join(', ')}`);
    return raw;
  }
  throw new Error('use sqlite:PATH or postgres://user@host:port/db');
}

function kekList(raw: string): string[] {
  const keys = raw.split(',').map((item) => item.trim()).filter(Boolean);
  if (keys.length === 0) throw new Error('no key given');
  for (const item of keys) {
    if (!/^[A-Za-z0-9_-]{43}$/.test(item)) throw new Error('each key must be 32 bytes in base64url (43 characters)');
  }
  return keys;
}

function metricsToken(raw: string): string {
  if (raw.length < 16) throw new Error('use at least 16 characters');
  return raw;
}

function flag(raw: string): boolean {
  if (['1', 'true', 'yes'].includes(raw)) return true;
  if (['0', 'false', 'no'].includes(raw)) return false;
  throw new Error(`"${raw}" is not a boolean (1 or 0)`);
}

function logLevel(raw: string): Config['logLevel'] {
  if (raw === 'info' || raw === 'warn' || raw === 'error' || raw === 'silent') return raw;
  throw new Error('use info, warn, error or silent');
}

function keyConfig(env: Env): KeyConfig {
  const rotationIntervalSeconds = read(env, 'KEY_ROTATION_INTERVAL', 30 * 86400, parseDuration);
  const prepublishSeconds = read(env, 'KEY_PREPUBLISH', 86400, parseDuration);
  const retainSeconds = read(env, 'KEY_RETAIN', 86400, parseDuration);
  const pollIntervalSeconds = read(env, 'KEY_POLL_INTERVAL', 5, parseDuration);
  const jwksMaxAgeSeconds = Math.min(300, Math.floor(prepublishSeconds / 2));
  if (prepublishSeconds >= rotationIntervalSeconds) {
    throw new ConfigError(`KEY_PREPUBLISH (${prepublishSeconds}s) must be shorter than KEY_ROTATION_INTERVAL (${rotationIntervalSeconds}s)`);
  }
  if (pollIntervalSeconds + jwksMaxAgeSeconds >= prepublishSeconds) {
    throw new ConfigError(
      `KEY_PREPUBLISH (${prepublishSeconds}s) must be longer than KEY_POLL_INTERVAL (${pollIntervalSeconds}s) plus the JWKS cache time (${jwksMaxAgeSeconds}s)`,
    );
  }
  return Object.freeze({ rotationIntervalSeconds, prepublishSeconds, retainSeconds, pollIntervalSeconds, jwksMaxAgeSeconds });
}

function count(min: number, max: number) {
  return (raw: string): number => {
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || value < min || value > max) throw new Error(`"${raw}" is not a whole number from ${min} to ${max}`);
    return value;
  };
}

function durationOrZero(raw: string): number {
  return raw === '0' ? 0 : parseDuration(raw);
}

function rateLimit(raw: string): RateLimit | null {
  if (raw === 'off') return null;
  const match = /^(\d+)\/(.+)$/.exec(raw);
  const points = Number(match?.[1]);
  if (!match || !Number.isSafeInteger(points) || points < 1) throw new Error(`"${raw}" is not a limit (use e.g. 100/10m, or off)`);
  return { points, durationSeconds: parseDuration(match[2]) };
}

function counterStore(raw: string): LimitsConfig['endpointStore'] {
  if (raw === 'memory' || raw === 'database') return raw;
  throw new Error('use memory or database');
}

function limitsConfig(env: Env): LimitsConfig {
  const limit = (name: string, fallback: string) => read(env, name, rateLimit(fallback), rateLimit);
  return Object.freeze({
    authPerIp: limit('RATE_LIMIT_AUTH_PER_IP', '300/1m'),
    loginPerIp: limit('RATE_LIMIT_LOGIN_PER_IP', '100/10m'),
    loginPerUsername: limit('RATE_LIMIT_LOGIN_PER_USERNAME', '10/5m'),
    secondFactorPerAccount: limit('RATE_LIMIT_SECOND_FACTOR_PER_ACCOUNT', '10/5m'),
    tokenPerClient: limit('RATE_LIMIT_TOKEN_PER_CLIENT', '1200/1m'),
    tokenPerIp: limit('RATE_LIMIT_TOKEN_PER_IP', '3000/1m'),
    introspectionPerClient: limit('RATE_LIMIT_INTROSPECTION_PER_CLIENT', '6000/1m'),
    introspectionPerIp: limit('RATE_LIMIT_INTROSPECTION_PER_IP', '12000/1m'),
    endpointStore: read(env, 'RATE_LIMIT_ENDPOINT_STORE', 'memory', counterStore),
    hashConcurrency: read(env, 'HASH_CONCURRENCY', Math.max(1, Math.floor(os.availableParallelism() / 2)), count(1, 64)),
    hashQueueMax: read(env, 'HASH_QUEUE_MAX', 32, count(0, 10000)),
  });
}

function databaseConfig(env: Env): DatabaseConfig {
  return Object.freeze({
    poolMax: read(env, 'DATABASE_POOL_MAX', 10, count(2, 1000)),
    statementTimeoutMs: read(env, 'DATABASE_STATEMENT_TIMEOUT', 5, durationOrZero) * 1000,
  });
}

export function loadConfig(env: Env = process.env): Config {
  const listenPort = read(env, 'PORT', 3000, port);
  return Object.freeze({
    port: listenPort,
    host: env.HOST || undefined,
    issuer: read(env, 'ISSUER', `http://localhost:${listenPort}`, issuerUrl),
    databaseUrl: read(env, 'DATABASE_URL', 'sqlite:data/portcullis.sqlite', databaseUrl),
    keysDir: path.resolve(env.KEYS_DIR || 'keys'),
    kekList: read<string[] | undefined>(env, 'PORTCULLIS_KEK', undefined, kekList),
    purgeIntervalSeconds: read(env, 'PURGE_INTERVAL', 600, parseDuration),
    trustProxy: read(env, 'TRUST_PROXY', false, flag),
    logLevel: read(env, 'LOG_LEVEL', 'info', logLevel),
    keys: keyConfig(env),
    database: databaseConfig(env),
    workers: read(env, 'WORKERS', 1, count(1, 64)),
    shutdownGraceSeconds: read(env, 'SHUTDOWN_GRACE', 10, parseDuration),
    metricsToken: read<string | undefined>(env, 'METRICS_TOKEN', undefined, metricsToken),
    limits: limitsConfig(env),
  });
}
