/**
 * Every `portcullis` command: its arguments and one line on what it does. The CLI's usage text
 * and the README's command table (`npm run docs`) are both made from this table, and
 * `src/cli/cli.ts` must implement exactly these commands (its handler map is typed by it).
 * Docs are Markdown; backticks are dropped in the terminal.
 */
export const COMMAND_TABLE = {
  migrate: { args: '', doc: 'apply pending database migrations (every command does this first)' },
  'resource create': {
    args: '--uri URI --scope "a b" [--ttl SECONDS] [--format jwt|opaque] [--introspector CLIENT_ID] [--default] [--describe "scope=words"]...',
    doc: 'register an API (resource server) and its scopes; tokens for it live `--ttl` seconds (default 600, 30 s to 24 h); `--default`: the audience when a token request names no `resource`',
  },
  'resource update': {
    args: '--uri URI [--scope "a b"] [--ttl SECONDS] [--format jwt|opaque] [--introspector CLIENT_ID | --no-introspector] [--default] [--describe "scope=words"]...',
    doc: 'change only the options given; `--scope` replaces the API’s scopes, and a scope left out leaves every partner’s allow-list',
  },
  'resource list': { args: '', doc: 'the registered APIs' },
  'partner create': {
    args: '--name NAME --scope "a b" [--grant TYPE]... [--redirect-uri URI]... [--public]',
    doc: 'register a partner (an OAuth client) with its allow-list of scopes; prints `client_id` and `client_secret` (shown this once)',
  },
  'partner list': { args: '', doc: 'partners, without secrets' },
  'partner show': { args: 'ID', doc: 'one partner, without its secret' },
  'partner suspend': { args: 'ID', doc: 'refuse the partner (`invalid_client`) and revoke everything issued to it, at once' },
  'partner resume': { args: 'ID', doc: 'let a suspended partner in again; nothing issued before the suspension comes back' },
  'partner rotate-secret': { args: 'ID', doc: 'a new secret, shown once; the old one stops working at once' },
  'user create': {
    args: '--username NAME --password-stdin [--admin] [--with-totp]',
    doc: 'add a person, the password read from standard input; prints a one-time `enrolment_code` (72 h), or with `--with-totp` a `totp_uri`',
  },
  'user list': { args: '', doc: 'people, with their lock and enrolment state' },
  'user unlock': { args: 'NAME', doc: 'clear a lock and both failure counters' },
  'user reset-totp': { args: 'NAME', doc: 'forget the authenticator and recovery codes; prints a new `enrolment_code`' },
  'user disable': { args: 'NAME', doc: 'the person can no longer log in; their sessions, grants and stored tokens are deleted at once' },
  'keys list': { args: '', doc: 'signing keys and their state (`next`, `active`, `retired`, `revoked`)' },
  'keys rotate': { args: '[--now]', doc: 'add a signing key: it signs after `KEY_PREPUBLISH`, or at once with `--now`' },
  'keys revoke': { args: 'KID', doc: 'take a key out of the JWKS at once (a new key signs if it did)' },
  'keys rewrap': { args: '', doc: 're-seal every sealed secret (signing keys, cookie keys, TOTP secrets) under the first KEK' },
  'keys rotate-cookie-keys': { args: '', doc: 'a new cookie-signing key signs; the previous two still verify' },
} as const satisfies Record<string, Readonly<{ args: string; doc: string }>>;

export type CommandName = keyof typeof COMMAND_TABLE;

/** `resource create --uri URI …`: the command as typed. */
export function synopsis(name: CommandName): string {
  const { args } = COMMAND_TABLE[name];
  return args ? `${name} ${args}` : name;
}

const DOC_COLUMN = 44;

function usageLine(name: CommandName): string {
  const command = `  ${synopsis(name)}`;
  const doc = COMMAND_TABLE[name].doc.replaceAll('`', '');
  return command.length < DOC_COLUMN ? `${command.padEnd(DOC_COLUMN)}${doc}` : `${command}\n${' '.repeat(DOC_COLUMN)}${doc}`;
}

const FOOTER = [
  '',
  'Reads the same settings as the server (DATABASE_URL, KEYS_DIR or PORTCULLIS_KEK, KEY_*).',
  'Prints JSON on stdout; on error one line on stderr, exit code 1 (2 for a usage error).',
];

/** The usage text: every command. */
export function usage(): string {
  return ['usage: portcullis <command> [arguments]', ...(Object.keys(COMMAND_TABLE) as CommandName[]).map(usageLine), ...FOOTER].join('\n');
}

/** `portcullis <command> --help`: that command alone. */
export function commandUsage(name: CommandName): string {
  return [`usage: portcullis ${synopsis(name)}`, `  ${COMMAND_TABLE[name].doc.replaceAll('`', '')}`, ...FOOTER].join('\n');
}
