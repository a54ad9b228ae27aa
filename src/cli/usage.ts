import { SETTINGS, shownDefault } from '../config/config.ts';

/**
 * Every `portcullis` command: its argument, its options (each with its doc) and one line on what
 * it does. The CLI's parser and help, and the README's command table (`npm run docs`), are all
 * made from this table, and `src/cli/cli.ts` must implement exactly these commands (its handler
 * map is typed by it, down to each option). Docs are Markdown; backticks are dropped in the terminal.
 */
type Option = Readonly<{
  type: 'string' | 'boolean';
  /** may be given more than once (`--grant a --grant b`) */
  multiple?: true;
  required?: true;
  /** the value as shown in the synopsis */
  value?: string;
  doc: string;
}>;

type Command = Readonly<{
  /** the one positional argument, if any (shown as is: `ID`, `NAME`, `KID`) */
  argument?: string;
  options?: Readonly<Record<string, Option>>;
  doc: string;
  /** settings this command reads besides the database and the KEK */
  env?: readonly SettingName[];
}>;

type SettingName = keyof typeof SETTINGS;

const RESOURCE_OPTIONS = {
  uri: { type: 'string', required: true, value: 'URI', doc: 'the API’s identifier (https), as partners name it in `resource=`' },
  scope: { type: 'string', value: '"a b"', doc: 'the scopes the API understands, space-separated; a scope belongs to one API' },
  ttl: { type: 'string', value: 'SECONDS', doc: 'access-token lifetime for this API (default 600, 30 s to 24 h)' },
  format: {
    type: 'string',
    value: 'jwt|opaque',
    doc: '`jwt` (default: verified offline, not revocable) or `opaque` (stored, introspected, revocable)',
  },
  introspector: {
    type: 'string',
    value: 'CLIENT_ID',
    doc: 'a confidential partner (the API’s own credential) that may introspect this API’s tokens',
  },
  'signed-introspection': {
    type: 'boolean',
    doc: 'answers to the introspector about this API’s tokens are JWTs signed ES256 (RFC 9701): it must ask with `Accept: application/token-introspection+jwt`; plain JSON is refused. Needs `--introspector`',
  },
  default: { type: 'boolean', doc: 'make this the audience of token requests that name no `resource`' },
  describe: {
    type: 'string',
    multiple: true,
    value: '"scope=words"',
    doc: 'how the consent page words a scope, e.g. `"payments:read=See your payments"`',
  },
  'details-type': {
    type: 'string',
    multiple: true,
    value: 'TYPE',
    doc: 'an `authorization_details` type (RFC 9396) the API accepts; a type belongs to one API. `payment_initiation` alone registers the schema shipped with Portcullis',
  },
  'details-schema': {
    type: 'string',
    multiple: true,
    value: 'FILE',
    doc: 'the JSON Schema file for the `--details-type` just before it (each `--details-type TYPE --details-schema FILE` is a pair)',
  },
} as const satisfies Record<string, Option>;

const PARTNER_OPTIONS = {
  name: { type: 'string', value: 'NAME', doc: 'the institution’s name, shown to people on the consent page (up to 200 characters)' },
  scope: { type: 'string', value: '"a b"', doc: 'the allow-list: scopes of registered APIs the partner may ever get, space-separated' },
  grant: {
    type: 'string',
    multiple: true,
    value: 'TYPE',
    doc: '`client_credentials` (the default), `authorization_code` (to act for people; brings `refresh_token`)',
  },
  'redirect-uri': {
    type: 'string',
    multiple: true,
    value: 'URI',
    doc: 'where people are sent back after login (https, or http on localhost); needed by `authorization_code`',
  },
  'allow-duplicate-name': {
    type: 'boolean',
    doc: 'let the partner have the name of another (else refused; names compare case-insensitively)',
  },
} as const satisfies Record<string, Option>;

const KEY_OPTIONS = {
  'jwks-file': {
    type: 'string',
    value: 'FILE',
    doc: 'the partner’s public keys, a JSON Web Key Set (P-256 keys for ES256, RSA ≥ 2048 bits for PS256; for `self_signed_tls_client_auth`, each key with its certificate in `x5c`)',
  },
  'jwks-uri': {
    type: 'string',
    value: 'URL',
    doc: 'where the partner publishes its public keys instead (https; http only on localhost): fetched with a 2.5 s timeout and a 64 KiB limit, kept as its `Cache-Control` says, from 60 s to 5 minutes: publish a new key 5 minutes before signing with it',
  },
} as const satisfies Record<string, Option>;

const SECURITY_OPTIONS = {
  profile: {
    type: 'string',
    value: 'baseline|fapi2',
    doc: '`fapi2`: the FAPI 2.0 Security Profile (PAR required, PKCE S256, `private_key_jwt` or mTLS authentication, sender-constrained tokens, assertion `aud` = issuer); default `DEFAULT_PROFILE`',
  },
  'auth-method': {
    type: 'string',
    value: 'METHOD',
    doc: '`client_secret_basic` (a secret is made), `private_key_jwt` (with `--jwks-file` or `--jwks-uri`), `tls_client_auth` (with `--tls-subject-dn`), `self_signed_tls_client_auth` (with `--jwks-file`); implied by the options given when left out',
  },
  ...KEY_OPTIONS,
  'tls-subject-dn': {
    type: 'string',
    value: 'DN',
    doc: '`tls_client_auth`: the subject of the partner’s certificate, RFC 4514 (e.g. `"CN=acme-payments,O=ACME Bank,C=GB"`), issued by a CA in `TLS_CLIENT_CA`',
  },
  'token-binding': {
    type: 'string',
    value: 'dpop|mtls',
    doc: 'bind every access token to the partner’s DPoP key (RFC 9449, `cnf.jkt`) or its TLS certificate (RFC 8705, `cnf.x5t#S256`); `fapi2` partners default to `dpop` with `private_key_jwt`, `mtls` with certificates',
  },
  'message-signing': {
    type: 'boolean',
    doc: 'FAPI 2.0 Message Signing: the partner’s authorization requests must be request objects it signs (JAR, PS256/ES256, pushed through PAR) and its authorization responses are JWTs we sign (JARM, `response_mode=jwt`); needs the partner’s keys',
  },
} as const satisfies Record<string, Option>;

const PASSWORD_STDIN = {
  type: 'boolean',
  required: true,
  doc: 'read the password from standard input (never from the command line): `printf %s "$PASSWORD" | portcullis …`',
} as const satisfies Option;

const KEY_SETTINGS = ['KEY_ROTATION_INTERVAL', 'KEY_PREPUBLISH', 'KEY_RETAIN'] as const satisfies readonly SettingName[];

export const COMMAND_TABLE = {
  migrate: { doc: 'apply pending database migrations (every command does this first)' },
  'resource create': {
    options: { ...RESOURCE_OPTIONS, scope: { ...RESOURCE_OPTIONS.scope, required: true } },
    doc: 'register an API (resource server) and its scopes; tokens for it live `--ttl` seconds (default 600, 30 s to 24 h); `--default`: the audience when a token request names no `resource`; `--details-type`: the `authorization_details` types (RFC 9396) it accepts, each with its JSON Schema',
  },
  'resource update': {
    options: {
      ...RESOURCE_OPTIONS,
      scope: { ...RESOURCE_OPTIONS.scope, doc: 'replaces the API’s scopes; a scope left out leaves every partner’s allow-list' },
      'no-introspector': { type: 'boolean', doc: 'no partner introspects for this API any more (excludes `--introspector`)' },
      'no-signed-introspection': { type: 'boolean', doc: 'plain JSON introspection answers again (excludes `--signed-introspection`)' },
      'details-type': {
        ...RESOURCE_OPTIONS['details-type'],
        doc: 'replaces the API’s `authorization_details` types (RFC 9396); a type listed again without `--details-schema` keeps its schema',
      },
      'no-details-types': { type: 'boolean', doc: 'the API accepts no `authorization_details` any more (excludes `--details-type`)' },
    },
    doc: 'change only the options given; `--scope` replaces the API’s scopes, and a scope left out leaves every partner’s allow-list; `--details-type` replaces its `authorization_details` types',
  },
  'resource list': { doc: 'the registered APIs' },
  'partner create': {
    options: {
      name: { ...PARTNER_OPTIONS.name, required: true },
      scope: { ...PARTNER_OPTIONS.scope, required: true },
      grant: PARTNER_OPTIONS.grant,
      'redirect-uri': PARTNER_OPTIONS['redirect-uri'],
      public: {
        type: 'boolean',
        doc: 'no client secret (an app on a phone or in a browser): needs `--grant authorization_code`; PKCE protects its codes',
      },
      'allow-duplicate-name': PARTNER_OPTIONS['allow-duplicate-name'],
      ...SECURITY_OPTIONS,
    },
    doc: 'register a partner (an OAuth client) with its allow-list of scopes and how it authenticates; prints `client_id`, the `client_secret` for `client_secret_basic` (shown this once) and the grants it can use',
    env: ['DEFAULT_PROFILE'],
  },
  'partner set-profile': {
    argument: 'ID baseline|fapi2',
    doc: 'change the partner’s profile: `fapi2` needs a partner authenticating with keys or a certificate (`partner set-keys` moves a secret partner to `private_key_jwt`) and binds its new tokens (DPoP, or mTLS for certificates); tokens already issued keep what they carry',
  },
  'partner set-keys': {
    argument: 'ID',
    options: KEY_OPTIONS,
    doc: 'replace the partner’s public keys at once (publish the next key beside the current one to rotate without a gap); a partner using a client secret moves to `private_key_jwt` and its secret stops working',
  },
  'partner update': {
    argument: 'ID',
    options: {
      ...PARTNER_OPTIONS,
      'message-signing': SECURITY_OPTIONS['message-signing'],
      'no-message-signing': {
        type: 'boolean',
        doc: 'plain authorization requests and responses again (excludes `--message-signing`)',
      },
    },
    doc: 'change only the options given (`--scope`, `--grant`, `--redirect-uri` replace the lists), under the rules of `partner create`; new tokens follow at once on every instance, tokens already issued keep what they carry',
  },
  'partner delete': {
    argument: 'ID',
    doc: 'delete the partner with its grants and stored tokens, in one transaction: its secret, refresh and opaque tokens are refused at once',
  },
  'partner list': { doc: 'partners, without secrets' },
  'partner show': { argument: 'ID', doc: 'one partner, without its secret' },
  'partner suspend': { argument: 'ID', doc: 'refuse the partner (`invalid_client`) and revoke everything issued to it, at once' },
  'partner resume': { argument: 'ID', doc: 'let a suspended partner in again; nothing issued before the suspension comes back' },
  'partner rotate-secret': { argument: 'ID', doc: 'a new secret, shown once; the old one stops working at once' },
  'user create': {
    options: {
      username: { type: 'string', required: true, value: 'NAME', doc: '1 to 64 of a-z 0-9 . _ @ - (stored in lower case)' },
      'password-stdin': PASSWORD_STDIN,
      admin: { type: 'boolean', doc: 'an administrator (a longer password is required: 15 characters)' },
      'with-totp': { type: 'boolean', doc: 'make the authenticator now and print its `totp_uri`, instead of an enrolment code' },
    },
    doc: 'add a person, the password read from standard input; prints a one-time `enrolment_code` (72 h), or with `--with-totp` a `totp_uri`',
  },
  'user list': { doc: 'people, with their lock and enrolment state' },
  'user unlock': { argument: 'NAME', doc: 'clear a lock and both failure counters' },
  'user reset-totp': { argument: 'NAME', doc: 'forget the authenticator and recovery codes; prints a new `enrolment_code`' },
  'user set-password': {
    argument: 'NAME',
    options: { 'password-stdin': PASSWORD_STDIN },
    doc: 'a new password (rules of `user create`), read from standard input; signs the person out everywhere (sessions, grants, stored tokens, logins under way) and restarts the wrong-password count; a lock stays (`user unlock`)',
  },
  'user disable': {
    argument: 'NAME',
    doc: 'the person can no longer log in; their sessions, grants and stored tokens are deleted at once',
  },
  'user enable': { argument: 'NAME', doc: 'the reverse of `user disable`: the person may log in again (nothing deleted comes back)' },
  'grant list': {
    options: {
      user: { type: 'string', value: 'NAME', doc: 'only the grants this person gave' },
      partner: { type: 'string', value: 'ID', doc: 'only the grants given to this partner (client_id)' },
    },
    doc: 'who gave which partner what, and when: the live grants (consents) with their scopes and live token count, never a token value',
  },
  'grant revoke': {
    argument: 'ID',
    doc: 'revoke a grant (an `id` from `grant list`) with every refresh token, opaque token and code issued from it; the person is asked to consent again',
  },
  'keys list': {
    doc: 'signing keys and their state (`next`, `active`, `retired`, `revoked`); `signs_until`: when a key stops signing (its successor’s activation, or planned by `KEY_ROTATION_INTERVAL`)',
    env: KEY_SETTINGS,
  },
  'keys rotate': {
    options: { now: { type: 'boolean', doc: 'sign with the new key at once (compromise), not after `KEY_PREPUBLISH`' } },
    doc: 'add a signing key: it signs after `KEY_PREPUBLISH`, or at once with `--now`',
    env: KEY_SETTINGS,
  },
  'keys revoke': { argument: 'KID', doc: 'take a key out of the JWKS at once (a new key signs if it did)', env: KEY_SETTINGS },
  'keys rewrap': { doc: 're-seal every sealed secret (signing keys, cookie keys, TOTP secrets) under the first KEK' },
  'keys rotate-cookie-keys': { doc: 'a new cookie-signing key signs; the previous two still verify' },
  'audit verify': {
    doc: 'walk the audit log’s hash chain: `{"valid": true, "rows": N, "head": HASH}`, or exit 1 naming the first row that does not match (changed content, broken link, missing seq, out of order)',
  },
  'audit export': {
    options: {
      since: {
        type: 'string',
        value: 'TIME',
        doc: 'only rows at or after TIME: an ISO 8601 time (`2026-11-29T17:00:00Z`) or a duration back from now (`24h`, `7d`)',
      },
    },
    doc: 'the audit log as JSON lines for a SIEM, in seq order: `seq`, `at`, `actor`, `action`, `target`, `source_ip`, `request_id`, `details`, `prev_hash`, `hash`',
  },
} as const satisfies Record<string, Command>;

export type CommandName = keyof typeof COMMAND_TABLE;

export const COMMAND_NAMES = Object.keys(COMMAND_TABLE) as CommandName[];

/** A command's options (an empty record for none). */
export function optionsOf(name: CommandName): Readonly<Record<string, Option>> {
  const command: Command = COMMAND_TABLE[name];
  return command.options ?? {};
}

function optionSynopsis(flag: string, option: Option): string {
  const text = option.type === 'boolean' ? `--${flag}` : `--${flag} ${option.value ?? 'VALUE'}`;
  const shown = option.required ? text : `[${text}]`;
  return option.multiple ? `${shown}...` : shown;
}

/** `resource create --uri URI …`: the command as typed. */
export function synopsis(name: CommandName): string {
  const command: Command = COMMAND_TABLE[name];
  const options = Object.entries(optionsOf(name)).map(([flag, option]) => optionSynopsis(flag, option));
  return [name, ...(command.argument ? [command.argument] : []), ...options].join(' ');
}

const DOC_COLUMN = 44;
const plain = (doc: string) => doc.replaceAll('`', '');

/** An indented term and its doc, the doc starting at DOC_COLUMN (on the next line if the term is long). */
function row(term: string, doc: string): string {
  const left = `  ${term}`;
  return left.length < DOC_COLUMN ? `${left.padEnd(DOC_COLUMN)}${plain(doc)}` : `${left}\n${' '.repeat(DOC_COLUMN)}${plain(doc)}`;
}

/** The settings every command reads: where the database and the key-encryption key are. */
const STORAGE_SETTINGS = ['DATABASE_URL', 'KEYS_DIR', 'PORTCULLIS_KEK'] as const satisfies readonly SettingName[];

function environment(names: readonly SettingName[]): string[] {
  return [
    '',
    'environment (the server’s settings; see the README’s Configuration):',
    ...names.map((name) => {
      const shown = shownDefault(SETTINGS[name]);
      return row(name, `${ENVIRONMENT_DOCS[name] ?? ''}${shown === '—' ? '' : ` (default ${shown})`}`);
    }),
  ];
}

/** One short line for each setting a help text names (the README's table has the long form). */
const ENVIRONMENT_DOCS: Partial<Record<SettingName, string>> = {
  DATABASE_URL: 'the database: sqlite:PATH or postgres://user:password@host:5432/db',
  KEYS_DIR: 'folder of the key-encryption key file kek',
  PORTCULLIS_KEK: 'key-encryption keys (base64url, comma-separated) instead of the file in KEYS_DIR',
  KEY_ROTATION_INTERVAL: 'how long a signing key signs',
  KEY_PREPUBLISH: 'how long a new key is published before it signs',
  KEY_RETAIN: 'how long a retired key stays published',
};

const CONTRACT = 'Prints JSON on stdout; on error one line on stderr, exit code 1 (2 for a usage error).';

const FOOTER = ['', 'Reads the same settings as the server (DATABASE_URL, KEYS_DIR or PORTCULLIS_KEK, KEY_*).', CONTRACT];

/** The usage text: every command. */
export function usage(): string {
  return [
    'usage: portcullis <command> [arguments]',
    ...COMMAND_NAMES.map((name) => row(synopsis(name), COMMAND_TABLE[name].doc)),
    '',
    row('-h, --help', 'this text; `portcullis <command> --help`: one command, each option explained'),
    row('--version', 'the version of Portcullis'),
    ...FOOTER,
  ].join('\n');
}

/** The first words of the commands: `partner`, `user`, … */
export const GROUPS = [...new Set(COMMAND_NAMES.map((name) => name.split(' ')[0]))];

/** `portcullis partner --help`: the commands of one group. */
export function groupUsage(group: string): string {
  const names = COMMAND_NAMES.filter((name) => name.split(' ')[0] === group);
  return [
    `usage: portcullis ${group} <command> [arguments]`,
    ...names.map((name) => row(synopsis(name), COMMAND_TABLE[name].doc)),
    '',
    `Run portcullis ${group} <command> --help for its options.`,
    CONTRACT,
  ].join('\n');
}

/** `portcullis <command> --help`: that command, each option explained, and the settings it reads. */
export function commandUsage(name: CommandName): string {
  const command: Command = COMMAND_TABLE[name];
  const options = Object.entries(optionsOf(name)).map(([flag, option]) =>
    row(
      option.type === 'boolean' ? `--${flag}` : `--${flag} ${option.value ?? 'VALUE'}`,
      `${option.required ? '(required) ' : ''}${option.doc}`,
    ),
  );
  return [
    `usage: portcullis ${synopsis(name)}`,
    `  ${plain(command.doc)}`,
    '',
    'options:',
    ...options,
    row('-h, --help', 'this text'),
    ...environment([...STORAGE_SETTINGS, ...(command.env ?? [])]),
    '',
    CONTRACT,
  ].join('\n');
}

/** Edit distance (insertions, deletions, substitutions, and swaps of neighbours: "craete"). */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i += 1) {
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The candidate closest to `typed`, if it is close enough to be what was meant. */
export function closest(typed: string, candidates: readonly string[]): string | undefined {
  let best: { candidate: string; cost: number } | undefined;
  for (const candidate of candidates) {
    const cost = distance(typed, candidate);
    if (!best || cost < best.cost) best = { candidate, cost };
  }
  return best && best.cost <= Math.max(1, Math.floor(typed.length / 3)) ? best.candidate : undefined;
}
