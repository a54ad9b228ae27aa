import { X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AA_TEXT_CONTRAST, contrastRatio, darkenedFor, isHexColour } from '../shared/colour-contrast.ts';
import { parseDuration } from './duration.ts';

/**
 * Every environment variable Portcullis reads is one entry of `SETTINGS` below (name, default,
 * parser, one-line doc); `loadConfig` builds the frozen `Config` from that table, and
 * `npm run docs` writes the README's configuration table from it. Nothing else reads
 * process.env. A bad value stops start-up with one line naming the variable.
 */
export type Config = Readonly<{
  /** PORT */
  port: number;
  /** HOST; undefined: all interfaces. */
  host: string | undefined;
  /** ISSUER, without a trailing slash. */
  issuer: string;
  /** DATABASE_URL */
  databaseUrl: string;
  /** KEYS_DIR, resolved to an absolute path. */
  keysDir: string;
  /** PORTCULLIS_KEK; undefined: the file in KEYS_DIR. */
  kekList: readonly string[] | undefined;
  /** PURGE_INTERVAL */
  purgeIntervalSeconds: number;
  /** TRUST_PROXY */
  trustProxy: boolean;
  /** LOG_LEVEL */
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  /** Signing-key rotation: the KEY_* settings. */
  keys: KeyConfig;
  /** PostgreSQL connection settings (ignored on SQLite). */
  database: DatabaseConfig;
  /** WORKERS */
  workers: number;
  /** SHUTDOWN_GRACE */
  shutdownGraceSeconds: number;
  /** METRICS_TOKEN; undefined: `/metrics` answers loopback peers only. */
  metricsToken: string | undefined;
  /** Rate limits and the password-hash queue: RATE_LIMIT_* and HASH_*. */
  limits: LimitsConfig;
  /** DEFAULT_PROFILE: the profile of a partner created without `--profile`. */
  defaultProfile: 'baseline' | 'fapi2';
  /** Native HTTPS and partners' client certificates: the TLS_* settings. */
  tls: TlsConfig;
  /** `/admin` and `/account` sign-ins: CONSOLE_SESSION_TTL, ADMIN_AUTH_MAX_AGE (seconds). */
  consoles: Readonly<{ sessionTtlSeconds: number; adminAuthMaxAgeSeconds: number }>;
  /** The look of every page: the BRAND_* settings. */
  brand: BrandConfig;
}>;

/** A logo file, read once at start-up: served by the server at a URL that changes with its content. */
type LogoFile = Readonly<{ path: string; type: 'image/svg+xml' | 'image/png'; bytes: Buffer }>;

type BrandConfig = Readonly<{
  /** BRAND_NAME */
  name: string;
  /** BRAND_ACCENT, lower case `#rrggbb`: white text on it reaches WCAG AA (4.5:1). */
  accent: string;
  /** BRAND_LOGO */
  logo: LogoFile;
}>;

/** PEM certificates read from a file: the text and each certificate parsed, in file order. */
export type CertificateFile = Readonly<{ path: string; pem: string; certificates: readonly X509Certificate[] }>;

/**
 * Where a request's client certificate comes from (src/shared/client-certificate.ts): the TLS
 * connection when this server speaks TLS itself, else a header a trusted proxy sets, else nowhere.
 */
export type TlsConfig = Readonly<{
  /** TLS_CERT + TLS_KEY: the listener speaks HTTPS (and asks for, never requires, a client certificate). */
  listener: Readonly<{ cert: CertificateFile; key: string }> | undefined;
  /** TLS_CLIENT_CA: the CAs whose certificates `tls_client_auth` partners present. */
  clientCa: CertificateFile | undefined;
  /** TLS_CLIENT_CERT_HEADER, lower case; only ever set with TRUST_PROXY=1. */
  clientCertHeader: string | undefined;
}>;

/** `points` requests per `durationSeconds` window, counted per key (an address, a partner, a username). */
export type RateLimit = Readonly<{ points: number; durationSeconds: number }>;

/** Throttling and load shedding (src/limits/); null: that limit is off. */
export type LimitsConfig = Readonly<{
  /** RATE_LIMIT_AUTH_PER_IP */
  authPerIp: RateLimit | null;
  /** RATE_LIMIT_LOGIN_PER_IP */
  loginPerIp: RateLimit | null;
  /** RATE_LIMIT_LOGIN_PER_USERNAME */
  loginPerUsername: RateLimit | null;
  /** RATE_LIMIT_SECOND_FACTOR_PER_ACCOUNT */
  secondFactorPerAccount: RateLimit | null;
  /** RATE_LIMIT_TOKEN_PER_CLIENT */
  tokenPerClient: RateLimit | null;
  /** RATE_LIMIT_TOKEN_PER_IP */
  tokenPerIp: RateLimit | null;
  /** RATE_LIMIT_INTROSPECTION_PER_CLIENT */
  introspectionPerClient: RateLimit | null;
  /** RATE_LIMIT_INTROSPECTION_PER_IP */
  introspectionPerIp: RateLimit | null;
  /** RATE_LIMIT_ENDPOINT_STORE */
  endpointStore: 'memory' | 'database';
  /** HASH_CONCURRENCY */
  hashConcurrency: number;
  /** HASH_QUEUE_MAX */
  hashQueueMax: number;
}>;

/** PostgreSQL pool and session settings. SSL comes from the URL as libpq spells it (`?sslmode=`). */
type DatabaseConfig = Readonly<{
  /** DATABASE_POOL_MAX */
  poolMax: number;
  /** DATABASE_STATEMENT_TIMEOUT, in milliseconds; 0: none. */
  statementTimeoutMs: number;
}>;

/**
 * Signing keys rotate by themselves (src/keys/). Start-up refuses combinations under which a
 * resource server could meet a key it has not yet fetched (see `keyConfig`).
 */
type KeyConfig = Readonly<{
  /** KEY_ROTATION_INTERVAL */
  rotationIntervalSeconds: number;
  /** KEY_PREPUBLISH */
  prepublishSeconds: number;
  /** KEY_RETAIN */
  retainSeconds: number;
  /** KEY_POLL_INTERVAL */
  pollIntervalSeconds: number;
  /** Derived, not set: the JWKS `Cache-Control: max-age`, min(300, KEY_PREPUBLISH / 2) seconds. */
  jwksMaxAgeSeconds: number;
}>;

export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

// ---------------------------------------------------------------------------------------------
// Parsers: each takes the raw text and returns the value, or throws a message that follows
// "NAME: " in the one-line error.

function port(raw: string): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > 65535) throw new Error(`"${raw}" is not a TCP port`);
  return value;
}

function text(raw: string): string {
  return raw;
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

function directory(raw: string): string {
  return path.resolve(raw);
}

function kekList(raw: string): readonly string[] {
  const keys = raw
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
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

const LOG_LEVELS: ReadonlyArray<Config['logLevel']> = ['debug', 'info', 'warn', 'error', 'silent'];

function logLevel(raw: string): Config['logLevel'] {
  const level = LOG_LEVELS.find((name) => name === raw.trim().toLowerCase());
  if (level) return level;
  throw new Error(`"${raw}" is not a log level: use ${LOG_LEVELS.join(', ')} (any case)`);
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

function partnerProfile(raw: string): Config['defaultProfile'] {
  if (raw === 'baseline' || raw === 'fapi2') return raw;
  throw new Error(`"${raw}" is not a profile: use baseline or fapi2`);
}

function readFile(raw: string): string {
  try {
    return fs.readFileSync(path.resolve(raw), 'utf8');
  } catch (error) {
    throw new Error(`cannot read ${raw} (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { cause: error });
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

function certificateFile(raw: string): CertificateFile {
  const pem = readFile(raw);
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new Error(`${raw} holds no PEM certificate`);
  const certificates = blocks.map((block, index) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      throw new Error(`certificate ${index + 1} in ${raw} is not a valid X.509 certificate`, { cause: error });
    }
  });
  return Object.freeze({ path: path.resolve(raw), pem, certificates: Object.freeze(certificates) });
}

function caFile(raw: string): CertificateFile {
  const file = certificateFile(raw);
  const notCa = file.certificates.findIndex((certificate) => !certificate.ca);
  if (notCa >= 0) throw new Error(`certificate ${notCa + 1} in ${raw} is not a CA certificate (basicConstraints CA:TRUE)`);
  return file;
}

function privateKeyFile(raw: string): string {
  const pem = readFile(raw);
  try {
    createPrivateKey(pem);
  } catch (error) {
    throw new Error(`${raw} holds no unencrypted PEM private key`, { cause: error });
  }
  return pem;
}

function brandName(raw: string): string {
  const name = raw.trim();
  if (name.length === 0 || name.length > 60) throw new Error('use 1 to 60 characters');
  if (/\p{Cc}/u.test(name)) throw new Error('must not contain control characters');
  return name;
}

function accentColour(raw: string): string {
  if (!isHexColour(raw)) throw new Error(`"${raw}" is not a colour: use #rrggbb, e.g. ${DEFAULT_ACCENT}`);
  const accent = raw.toLowerCase();
  const ratio = contrastRatio(accent, '#ffffff');
  if (ratio < AA_TEXT_CONTRAST)
    throw new Error(
      `${accent} is too light for white text on the primary button (contrast ${ratio.toFixed(2)}:1, WCAG AA needs ${AA_TEXT_CONTRAST}:1): use a darker colour, e.g. ${darkenedFor(accent, AA_TEXT_CONTRAST)}`,
    );
  return accent;
}

const LOGO_MAX_BYTES = 256 * 1024;
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** An SVG or PNG file, told by its content (an SVG: an `<svg` element before any other; a PNG: its signature). */
function logoFile(raw: string): LogoFile {
  const file = path.resolve(raw);
  let bytes: Buffer;
  try {
    if (fs.statSync(file).size > LOGO_MAX_BYTES) throw new Error(`${raw} is larger than ${LOGO_MAX_BYTES / 1024} KiB`);
    bytes = fs.readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw code ? new Error(`cannot read ${raw} (${code})`, { cause: error }) : error;
  }
  if (bytes.subarray(0, PNG_SIGNATURE.length).equals(PNG_SIGNATURE)) return Object.freeze({ path: file, type: 'image/png', bytes });
  const text = bytes.toString('utf8').replace(/^\uFEFF/, '');
  const prologue = /^\s*(<\?xml[^>]*\?>\s*)?(<!--[\s\S]*?-->\s*|<!DOCTYPE[^>]*>\s*)*<svg[\s>]/i;
  if (prologue.test(text)) return Object.freeze({ path: file, type: 'image/svg+xml', bytes });
  throw new Error(`${raw} is neither an SVG nor a PNG image`);
}

/** The shipped logo (views/logo.svg), drawn in the accent colour. */
const SHIPPED_LOGO = fileURLToPath(new URL('../../views/logo.svg', import.meta.url));
const DEFAULT_ACCENT = '#2457a6';

function shippedLogo(accent: string): LogoFile {
  const logo = logoFile(SHIPPED_LOGO);
  return Object.freeze({ ...logo, bytes: Buffer.from(logo.bytes.toString('utf8').replaceAll(DEFAULT_ACCENT, accent)) });
}

function headerName(raw: string): string {
  if (!/^[A-Za-z0-9-]+$/.test(raw)) throw new Error(`"${raw}" is not an HTTP header name`);
  return raw.toLowerCase();
}

function counterStore(raw: string): LimitsConfig['endpointStore'] {
  if (raw === 'memory' || raw === 'database') return raw;
  throw new Error('use memory or database');
}

// ---------------------------------------------------------------------------------------------
// The table.

/** Sections of the README's configuration table, in order, each with a line that applies to all its settings. */
export const SETTING_GROUPS = {
  server: { title: 'Server', doc: '' },
  database: { title: 'Database', doc: 'PostgreSQL settings are ignored on SQLite.' },
  keys: {
    title: 'Keys',
    doc: 'The key-encryption key (KEK) seals what the database keeps secret; signing keys rotate by themselves (see the operator guide).',
  },
  limits: {
    title: 'Limits',
    doc: 'Each `RATE_LIMIT_*` takes `N/WINDOW` (N requests per window, per key, e.g. `100/10m`) or `off`; over a limit: `429` with `Retry-After`. Login limits count in the database, shared by every instance; an address is the TCP peer (see `TRUST_PROXY`), IPv6 per /64.',
  },
  partners: { title: 'Partners', doc: '' },
  tls: {
    title: 'TLS',
    doc: 'HTTPS without a proxy, and the client certificates of mutual-TLS partners (RFC 8705), natively or from a TLS-terminating proxy: see [TLS and mutual TLS](#tls-and-mutual-tls). Files are read once at start-up: restart after renewing them.',
  },
  operations: { title: 'Logs and metrics', doc: '' },
  consoles: {
    title: 'Consoles',
    doc: 'The admin console (`/admin`) and the person’s own page (`/account`): each signs in through Portcullis itself (authorization code with PKCE, the built-in client `portcullis-console`) and keeps its session in an encrypted cookie.',
  },
  brand: {
    title: 'Brand',
    doc: 'The look of every page (sign-in, second factor, consent, errors): a header with the logo and the name, the accent colour on the primary action, links and focus outlines. Read once at start-up; a bad value stops it with one line. See [Customising the pages](#customising-the-pages).',
  },
} as const;

/** What applies when a variable is unset: `raw` is parsed like a set value; `computed` is worded for the docs. */
type Fallback<T> = Readonly<{ raw: string }> | Readonly<{ shown: string; computed: (earlier: Readonly<Record<string, unknown>>) => T }>;

export type Setting<T> = Readonly<{
  group: keyof typeof SETTING_GROUPS;
  default: Fallback<T>;
  parse: (raw: string) => T;
  /** One line for the README (Markdown). */
  doc: string;
}>;

function setting<T>(entry: Setting<T>): Setting<T> {
  return entry;
}

const none = <T>(shown: string): Fallback<T | undefined> => ({ shown, computed: () => undefined });

/** Durations take `90s`, `15m`, `12h`, `30d` or bare seconds (src/config/duration.ts). */
export const SETTINGS = {
  PORT: setting({ group: 'server', default: { raw: '3000' }, parse: port, doc: 'TCP port to listen on' }),
  HOST: setting({ group: 'server', default: none<string>('all interfaces'), parse: text, doc: 'interface to bind' }),
  // (read before ISSUER, whose default follows TLS_CERT; the README lists them under TLS)
  TLS_CERT: setting({
    group: 'tls',
    default: none<CertificateFile>('—'),
    parse: certificateFile,
    doc: 'PEM file of the server certificate and its chain (leaf first): with `TLS_KEY`, the server speaks HTTPS on `PORT` and asks every client for a certificate without requiring one (browsers and partners using secrets or `private_key_jwt` are unaffected)',
  }),
  TLS_KEY: setting({
    group: 'tls',
    default: none<string>('—'),
    parse: privateKeyFile,
    doc: 'PEM file of the private key of `TLS_CERT` (unencrypted; readable by the server only)',
  }),
  TLS_CLIENT_CA: setting({
    group: 'tls',
    default: none<CertificateFile>('—'),
    parse: caFile,
    doc: 'PEM file of the CA certificates that issue partners’ client certificates: a `tls_client_auth` partner’s certificate must be issued directly by one of them (put intermediates here) and be within its validity. Without it, `tls_client_auth` is off (`self_signed_tls_client_auth` and certificate-bound tokens need no CA)',
  }),
  TLS_CLIENT_CERT_HEADER: setting({
    group: 'tls',
    default: none<string>('—'),
    parse: headerName,
    doc: 'behind a TLS-terminating proxy (needs `TRUST_PROXY=1`, not with `TLS_CERT`): the request header in which the proxy passes the client certificate, as URL-encoded PEM (nginx `$ssl_client_escaped_cert`), PEM, or base64 DER. The proxy must set or clear it on every request',
  }),
  ISSUER: setting({
    group: 'server',
    default: {
      shown: 'http://localhost:$PORT (https with `TLS_CERT`)',
      computed: (earlier) => `${earlier.TLS_CERT ? 'https' : 'http'}://localhost:${String(earlier.PORT)}`,
    },
    parse: issuerUrl,
    doc: 'public issuer URL (`iss` of every token, what partners and resource servers see); no query or fragment, a trailing `/` is dropped. Use https in production: cookies are then `Secure` and HSTS is sent',
  }),
  TRUST_PROXY: setting({
    group: 'server',
    default: { raw: '0' },
    parse: flag,
    doc: '`1` behind a TLS-terminating reverse proxy: trust `X-Forwarded-*`; rate limits then count the address the proxy appended to `X-Forwarded-For` (its last entry)',
  }),
  WORKERS: setting({
    group: 'server',
    default: { raw: '1' },
    parse: count(1, 64),
    doc: 'processes serving on this machine (node:cluster, up to 64); the primary migrates and makes keys once, then forks, and replaces a worker that dies. Use the number of cores, on PostgreSQL (SQLite serialises writes to one file)',
  }),
  SHUTDOWN_GRACE: setting({
    group: 'server',
    default: { raw: '10s' },
    parse: parseDuration,
    doc: 'on SIGTERM/SIGINT, how long requests in flight may take before the process exits anyway (code 1); keep it below the orchestrator’s kill timeout',
  }),
  DATABASE_URL: setting({
    group: 'database',
    default: { raw: 'sqlite:data/portcullis.sqlite' },
    parse: databaseUrl,
    doc: '`sqlite:PATH`, or `postgres://user:password@host:5432/db` with optional `sslmode` (`disable`, the default; `require`: TLS without a certificate check; `verify-ca`: the chain, against the system CAs or `sslrootcert=PATH`; `verify-full`: chain and host name; `prefer` means off) and `schema=NAME` (used, and created, instead of `public`). Every instance of a deployment uses the same URL',
  }),
  DATABASE_POOL_MAX: setting({
    group: 'database',
    default: { raw: '10' },
    parse: count(2, 1000),
    doc: 'PostgreSQL connections per process, 2 or more (migrations hold one for their lock); the total is this × `WORKERS` × instances: keep it under PostgreSQL’s `max_connections` (100 by default)',
  }),
  DATABASE_STATEMENT_TIMEOUT: setting({
    group: 'database',
    default: { raw: '5s' },
    parse: durationOrZero,
    doc: 'PostgreSQL cancels a statement running longer, so a stuck query fails one request instead of holding a connection; `0` disables it',
  }),
  PURGE_INTERVAL: setting({ group: 'database', default: { raw: '10m' }, parse: parseDuration, doc: 'how often expired rows are deleted' }),
  KEYS_DIR: setting({
    group: 'keys',
    default: { raw: 'keys' },
    parse: directory,
    doc: 'folder of the key-encryption key file `kek` (made on first start, mode 0600; see keys/README.md)',
  }),
  PORTCULLIS_KEK: setting({
    group: 'keys',
    default: none<readonly string[]>('—'),
    parse: kekList,
    doc: 'key-encryption keys, each 32 bytes in base64url (43 characters), comma-separated: the first seals, any opens. Replaces the file in `KEYS_DIR`',
  }),
  KEY_ROTATION_INTERVAL: setting({
    group: 'keys',
    default: { raw: '30d' },
    parse: parseDuration,
    doc: 'how long a signing key signs before the next one takes over',
  }),
  KEY_PREPUBLISH: setting({
    group: 'keys',
    default: { raw: '1d' },
    parse: parseDuration,
    doc: 'how long a new key is in the JWKS before it signs: longer than any resource server caches the JWKS, shorter than `KEY_ROTATION_INTERVAL`, and longer than `KEY_POLL_INTERVAL` plus the JWKS cache time (min(300 s, `KEY_PREPUBLISH` / 2))',
  }),
  KEY_RETAIN: setting({
    group: 'keys',
    default: { raw: '1d' },
    parse: parseDuration,
    doc: 'how long a retired key stays in the JWKS; no token lives longer (token lifetimes are capped to it, with a warning at start-up)',
  }),
  KEY_POLL_INTERVAL: setting({
    group: 'keys',
    default: { raw: '5s' },
    parse: parseDuration,
    doc: 'how often a running server re-reads the signing and cookie keys and the registered `authorization_details` types, so a change made by the CLI or another instance applies without a restart',
  }),
  RATE_LIMIT_AUTH_PER_IP: setting({
    group: 'limits',
    default: { raw: '300/1m' },
    parse: rateLimit,
    doc: 'authorization requests (`/auth`) per address',
  }),
  RATE_LIMIT_LOGIN_PER_IP: setting({
    group: 'limits',
    default: { raw: '100/10m' },
    parse: rateLimit,
    doc: 'password and code posts (sign-in, TOTP, recovery, enrolment) per address',
  }),
  RATE_LIMIT_LOGIN_PER_USERNAME: setting({
    group: 'limits',
    default: { raw: '10/5m' },
    parse: rateLimit,
    doc: 'password posts per username typed; a right password gives its count back. Short on purpose: someone who knows a username holds its owner up only while they keep sending',
  }),
  RATE_LIMIT_SECOND_FACTOR_PER_ACCOUNT: setting({
    group: 'limits',
    default: { raw: '10/5m' },
    parse: rateLimit,
    doc: 'code posts (TOTP, recovery, enrolment) per account',
  }),
  RATE_LIMIT_TOKEN_PER_CLIENT: setting({
    group: 'limits',
    default: { raw: '1200/1m' },
    parse: rateLimit,
    doc: '`/token` requests per partner (the `client_id` of HTTP Basic auth)',
  }),
  RATE_LIMIT_TOKEN_PER_IP: setting({
    group: 'limits',
    default: { raw: '3000/1m' },
    parse: rateLimit,
    doc: '`/token` requests per address',
  }),
  RATE_LIMIT_INTROSPECTION_PER_CLIENT: setting({
    group: 'limits',
    default: { raw: '6000/1m' },
    parse: rateLimit,
    doc: '`/token/introspection` requests per partner',
  }),
  RATE_LIMIT_INTROSPECTION_PER_IP: setting({
    group: 'limits',
    default: { raw: '12000/1m' },
    parse: rateLimit,
    doc: '`/token/introspection` requests per address',
  }),
  RATE_LIMIT_ENDPOINT_STORE: setting({
    group: 'limits',
    default: { raw: 'memory' },
    parse: counterStore,
    doc: 'where the `/auth`, `/token` and introspection limits count: `memory` (each process alone, no I/O on the hot path: the effective limit is the setting × the processes serving) or `database` (shared by all; one write per request, which halves token throughput)',
  }),
  HASH_CONCURRENCY: setting({
    group: 'limits',
    default: { shown: 'half the cores, at least 1', computed: () => Math.max(1, Math.floor(os.availableParallelism() / 2)) },
    parse: count(1, 64),
    doc: 'password hashes computed at once per process (up to 64): a login flood then leaves the other cores to tokens',
  }),
  HASH_QUEUE_MAX: setting({
    group: 'limits',
    default: { raw: '32' },
    parse: count(0, 10000),
    doc: 'password checks that may wait for a turn (up to 10000); past it a sign-in gets `503` + `Retry-After`',
  }),
  DEFAULT_PROFILE: setting({
    group: 'partners',
    default: { raw: 'baseline' },
    parse: partnerProfile,
    doc: 'the profile of a partner created without `--profile` (`partner create` reads it): `baseline`, or `fapi2` (FAPI 2.0 Security Profile: PAR, PKCE S256, private_key_jwt or mTLS client authentication, DPoP- or certificate-bound tokens). Partners keep the profile they were created with; `partner set-profile` changes one',
  }),
  LOG_LEVEL: setting({
    group: 'operations',
    default: { raw: 'info' },
    parse: logLevel,
    doc: "`debug`, `info`, `warn`, `error` or `silent`, in any case; JSON lines on stdout (pino), never a secret. The `listening` line is written at every level but `silent`; `debug` adds the database driver's connection errors (one a failed request during an outage)",
  }),
  METRICS_TOKEN: setting({
    group: 'operations',
    default: none<string>('—'),
    parse: metricsToken,
    doc: 'when set (16 characters or more), `GET /metrics` needs `Authorization: Bearer <METRICS_TOKEN>`; unset, it answers loopback peers only (judged by the socket, never by `X-Forwarded-For`): a reverse proxy on the same host must not forward `/metrics`',
  }),
  CONSOLE_SESSION_TTL: setting({
    group: 'consoles',
    default: { raw: '30m' },
    parse: parseDuration,
    doc: 'how long a sign-in to `/admin` or `/account` lasts (from the sign-in; then it asks for one again)',
  }),
  ADMIN_AUTH_MAX_AGE: setting({
    group: 'consoles',
    default: { raw: '5m' },
    parse: parseDuration,
    doc: 'how recent the password and second factor must be to sign in to `/admin`, and again before each destructive action there (suspend, revoke, rotate, disable…): an older one asks for both again',
  }),
  BRAND_NAME: setting({
    group: 'brand',
    default: { raw: 'Portcullis' },
    parse: brandName,
    doc: 'the platform’s name, beside the logo on every page, at the end of each page title, and beside the account in authenticator apps (the otpauth issuer of new enrolments) (1 to 60 characters)',
  }),
  BRAND_ACCENT: setting({
    group: 'brand',
    default: { raw: DEFAULT_ACCENT },
    parse: accentColour,
    doc: 'accent colour, `#rrggbb`: the primary button (white text on it), links and focus outlines. A colour on which white text falls below WCAG AA’s 4.5:1 is refused, with a darker one suggested',
  }),
  BRAND_LOGO: setting({
    group: 'brand',
    default: {
      shown: 'the shipped logo, in `BRAND_ACCENT`',
      computed: (earlier) => shippedLogo(String(earlier.BRAND_ACCENT)),
    },
    parse: logoFile,
    doc: 'an SVG or PNG file (up to 256 KiB), shown about 40 px high in the header of every page; served at `/assets/logo-HASH.svg` (or `.png`), cached for a year since its URL changes with its content',
  }),
} as const;

type Settings = typeof SETTINGS;
type Values = { readonly [Name in keyof Settings]: Settings[Name] extends Setting<infer T> ? T : never };

/** The default as the docs show it. */
export function shownDefault(entry: Setting<unknown>): string {
  return 'raw' in entry.default ? entry.default.raw : entry.default.shown;
}

function readSetting<T>(env: Env, name: string, entry: Setting<T>, earlier: Readonly<Record<string, unknown>>): T {
  const raw = env[name];
  if (raw === undefined || raw === '') return 'raw' in entry.default ? entry.parse(entry.default.raw) : entry.default.computed(earlier);
  try {
    return entry.parse(raw);
  } catch (error) {
    throw new ConfigError(`${name}: ${(error as Error).message}`);
  }
}

/** Reads every setting in table order (a computed default may use the ones before it). */
function readSettings(env: Env): Values {
  const values: Record<string, unknown> = {};
  for (const [name, entry] of Object.entries(SETTINGS) as [string, Setting<unknown>][])
    values[name] = readSetting(env, name, entry, values);
  return values as Values;
}

// ---------------------------------------------------------------------------------------------
// The Config, built from the values.

/** The rules between KEY_* settings: a resource server must never meet a key it has not yet fetched. */
function keyConfig(values: Values): KeyConfig {
  const rotationIntervalSeconds = values.KEY_ROTATION_INTERVAL;
  const prepublishSeconds = values.KEY_PREPUBLISH;
  const pollIntervalSeconds = values.KEY_POLL_INTERVAL;
  const jwksMaxAgeSeconds = Math.min(300, Math.floor(prepublishSeconds / 2));
  if (prepublishSeconds >= rotationIntervalSeconds) {
    throw new ConfigError(
      `KEY_PREPUBLISH (${prepublishSeconds}s) must be shorter than KEY_ROTATION_INTERVAL (${rotationIntervalSeconds}s)`,
    );
  }
  if (pollIntervalSeconds + jwksMaxAgeSeconds >= prepublishSeconds) {
    throw new ConfigError(
      `KEY_PREPUBLISH (${prepublishSeconds}s) must be longer than KEY_POLL_INTERVAL (${pollIntervalSeconds}s) plus the JWKS cache time (${jwksMaxAgeSeconds}s)`,
    );
  }
  return Object.freeze({
    rotationIntervalSeconds,
    prepublishSeconds,
    retainSeconds: values.KEY_RETAIN,
    pollIntervalSeconds,
    jwksMaxAgeSeconds,
  });
}

/** The rules between TLS_* settings (and TRUST_PROXY, ISSUER): each refusal names the setting to change. */
function tlsConfig(values: Values): TlsConfig {
  const { TLS_CERT: cert, TLS_KEY: key, TLS_CLIENT_CA: clientCa, TLS_CLIENT_CERT_HEADER: header } = values;
  if (cert && !key) throw new ConfigError('TLS_KEY: required with TLS_CERT');
  if (key && !cert) throw new ConfigError('TLS_CERT: required with TLS_KEY');
  if (cert && key && !cert.certificates[0].checkPrivateKey(createPrivateKey(key)))
    throw new ConfigError(`TLS_KEY: not the key of the first certificate in ${cert.path}`);
  if (cert && !values.ISSUER.startsWith('https:')) throw new ConfigError('ISSUER: must be https:// when TLS_CERT is set');
  if (header && cert)
    throw new ConfigError('TLS_CLIENT_CERT_HEADER: not with TLS_CERT (this server reads client certificates from its own TLS connections)');
  if (header && !values.TRUST_PROXY)
    throw new ConfigError(
      'TLS_CLIENT_CERT_HEADER: needs TRUST_PROXY=1 (only a trusted proxy may tell which certificate a client presented)',
    );
  if (clientCa && !cert && !header)
    throw new ConfigError(
      'TLS_CLIENT_CA: set TLS_CERT and TLS_KEY, or TLS_CLIENT_CERT_HEADER behind a proxy: no client certificate would reach this server',
    );
  return Object.freeze({ listener: cert && key ? Object.freeze({ cert, key }) : undefined, clientCa, clientCertHeader: header });
}

export function loadConfig(env: Env = process.env): Config {
  const values = readSettings(env);
  return Object.freeze({
    port: values.PORT,
    host: values.HOST,
    issuer: values.ISSUER,
    databaseUrl: values.DATABASE_URL,
    keysDir: values.KEYS_DIR,
    kekList: values.PORTCULLIS_KEK,
    purgeIntervalSeconds: values.PURGE_INTERVAL,
    trustProxy: values.TRUST_PROXY,
    logLevel: values.LOG_LEVEL,
    keys: keyConfig(values),
    database: Object.freeze({ poolMax: values.DATABASE_POOL_MAX, statementTimeoutMs: values.DATABASE_STATEMENT_TIMEOUT * 1000 }),
    workers: values.WORKERS,
    shutdownGraceSeconds: values.SHUTDOWN_GRACE,
    metricsToken: values.METRICS_TOKEN,
    defaultProfile: values.DEFAULT_PROFILE,
    limits: Object.freeze({
      authPerIp: values.RATE_LIMIT_AUTH_PER_IP,
      loginPerIp: values.RATE_LIMIT_LOGIN_PER_IP,
      loginPerUsername: values.RATE_LIMIT_LOGIN_PER_USERNAME,
      secondFactorPerAccount: values.RATE_LIMIT_SECOND_FACTOR_PER_ACCOUNT,
      tokenPerClient: values.RATE_LIMIT_TOKEN_PER_CLIENT,
      tokenPerIp: values.RATE_LIMIT_TOKEN_PER_IP,
      introspectionPerClient: values.RATE_LIMIT_INTROSPECTION_PER_CLIENT,
      introspectionPerIp: values.RATE_LIMIT_INTROSPECTION_PER_IP,
      endpointStore: values.RATE_LIMIT_ENDPOINT_STORE,
      hashConcurrency: values.HASH_CONCURRENCY,
      hashQueueMax: values.HASH_QUEUE_MAX,
    }),
    tls: tlsConfig(values),
    consoles: Object.freeze({ sessionTtlSeconds: values.CONSOLE_SESSION_TTL, adminAuthMaxAgeSeconds: values.ADMIN_AUTH_MAX_AGE }),
    brand: Object.freeze({ name: values.BRAND_NAME, accent: values.BRAND_ACCENT, logo: values.BRAND_LOGO }),
  });
}
