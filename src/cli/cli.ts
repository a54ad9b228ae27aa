import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig, type Config } from '../config/config.ts';
import type { Db } from '../db/knex.ts';
import { AppError } from '../shared/errors.ts';
import { safeError } from '../log/safe-error.ts';
import type { Keyring } from '../keys/kek.ts';
import { listKeys } from '../keys/signing-key.store.ts';
import { rotateCookieKeys } from '../keys/cookie-key.service.ts';
import { describeKeys, revokeKey, rotateKeys, rotationPolicy } from '../keys/signing-key.service.ts';
import {
  createPartner,
  deletePartner,
  describePartner,
  getPartner,
  listPartners,
  rotatePartnerSecret,
  setPartnerKeys,
  setPartnerProfile,
  setPartnerStatus,
  updatePartnerDetails,
} from '../partners/partner.service.ts';
import { listGrantsDescribed, revokeGrantById } from '../grants/grant.service.ts';
import { createResource, describeResources, updateResource, type DetailsTypeRequest } from '../resources/resource.service.ts';
import {
  createUser,
  disableUser,
  enableUser,
  listAllUsers,
  resetTotp,
  setPassword,
  unlockUser,
  userNamed,
  type AccountDeps,
} from '../accounts/user.service.ts';
import { BY_CLI, exportRows, parseSince, verifyChain } from '../audit/audit.service.ts';
import { openStorage, rewrapAll } from '../storage.ts';
import { closest, COMMAND_NAMES, COMMAND_TABLE, commandUsage, GROUPS, groupUsage, optionsOf, usage, type CommandName } from './usage.ts';

type Io = { stdout(text: string): void; stderr(text: string): void; stdin?: () => Promise<string> };
type Storage = { db: Db; keyring: Keyring; config: Config; stdin(): Promise<string>; stdout: (text: string) => void };

/** The options of a command as parsed: typed by its entry in COMMAND_TABLE. */
type OptionsOf<N extends CommandName> = (typeof COMMAND_TABLE)[N] extends { options: infer O } ? O : Record<string, never>;
type ValueOf<O> = O extends { type: 'boolean' }
  ? boolean
  : O extends { multiple: true }
    ? string[]
    : O extends { required: true }
      ? string
      : string | undefined;
type Parsed<N extends CommandName> = {
  values: { [K in keyof OptionsOf<N>]: ValueOf<OptionsOf<N>[K]> };
  /** the positional argument (empty for a command without one) */
  argument: string;
  /** the options in the order given (where one option's meaning depends on the one before it) */
  order: ReadonlyArray<{ flag: string; value: string | undefined }>;
  /** every positional argument (`partner set-profile ID PROFILE`) */
  args: string[];
};
type Handler<N extends CommandName> = (parsed: Parsed<N>, storage: Storage) => Promise<unknown>;

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new UsageError('--password-stdin reads the password from standard input: pipe it in');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const accounts = ({ db, keyring, config }: Storage): AccountDeps => ({ db, keyring, now: Date.now, totpIssuer: config.brand.name });

class UsageError extends Error {}

/**
 * Our options are all long (`--name`); an argument with a single leading dash is a value, such as
 * a key id (a base64url thumbprint may start with `-`), never a cluster of short options.
 */
const DASHED_VALUE = /^-[^-]/;

/** The arguments after the command name, checked against its entry in COMMAND_TABLE. */
function parse<N extends CommandName>(name: N, args: string[]): Parsed<N> {
  const spec = optionsOf(name);
  const expected = (COMMAND_TABLE[name] as { argument?: string }).argument;
  const dashed = new Map<string, string>();
  const masked = args.map((arg, i) => {
    if (!DASHED_VALUE.test(arg)) return arg;
    const placeholder = `\u0000${i}`;
    dashed.set(placeholder, arg);
    return placeholder;
  });
  const unmask = (value: unknown): unknown =>
    typeof value === 'string' ? (dashed.get(value) ?? value) : Array.isArray(value) ? value.map(unmask) : value;
  let parsed;
  try {
    const options = Object.fromEntries(
      Object.entries(spec).map(([flag, option]) => [flag, { type: option.type, multiple: option.multiple ?? false }]),
    );
    parsed = parseArgs({ args: masked, options, allowPositionals: expected !== undefined, strict: true, tokens: true });
  } catch (error) {
    throw new UsageError(parseError(error as Error & { code?: string }, Object.keys(spec)));
  }
  const positionals = parsed.positionals.map((value) => dashed.get(value) ?? value);
  const count = expected === undefined ? 0 : expected.split(' ').length;
  if (expected !== undefined && positionals.length !== count)
    throw new UsageError(
      `expected ${count === 1 ? 'one argument' : `${String(count)} arguments`} ${expected}, got ${positionals.length} (portcullis ${name} --help)`,
    );
  const values: Record<string, unknown> = {};
  for (const [flag, option] of Object.entries(spec)) {
    const value = unmask((parsed.values as Record<string, unknown>)[flag]);
    if (option.required && (value === undefined || (typeof value === 'string' && value.trim() === '')))
      throw new UsageError(
        flag === 'password-stdin' ? '--password-stdin is required (passwords never go on the command line)' : `--${flag} is required`,
      );
    values[flag] = option.type === 'boolean' ? (value ?? false) : option.multiple ? (value ?? []) : value;
  }
  const order = parsed.tokens.flatMap((token) =>
    token.kind === 'option' ? [{ flag: token.name, value: unmask(token.value) as string | undefined }] : [],
  );
  return { values, argument: positionals[0] ?? '', args: positionals, order } as Parsed<N>;
}

/** parseArgs' message, on one line, with a suggestion for a mistyped option. */
function parseError(error: Error & { code?: string }, flags: string[]): string {
  const unknown = /^Unknown option '(--?[^']+)'/.exec(error.message)?.[1];
  if (error.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && unknown) {
    const suggestion = closest(unknown.replace(/^--?/, ''), flags);
    return `unknown option ${unknown}${suggestion ? ` (did you mean --${suggestion}?)` : ''}`;
  }
  if (error.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return `${error.message.split('.')[0]} (this command takes no argument)`;
  return error.message.split('\n')[0];
}

/** A `--jwks-file`: its text (at most 64 KiB), or a one-line error. */
function readKeyFile(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  try {
    if (fs.statSync(file).size > 64 * 1024) throw new UsageError(`--jwks-file ${file} is larger than 64 KiB`);
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`--jwks-file ${file} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

const words = (text: string | undefined) => (text ?? '').split(/\s+/).filter(Boolean);

function seconds(value: string | undefined): number | undefined {
  const ttl = value === undefined ? undefined : Number(value);
  if (ttl !== undefined && !Number.isInteger(ttl)) throw new UsageError('--ttl takes whole seconds');
  return ttl;
}

/**
 * `--details-type TYPE [--details-schema FILE]`, in the order given: a schema file belongs to the
 * type just before it. The files are read here; the service checks what they hold.
 */
function detailsTypes(order: Parsed<'resource create'>['order']): DetailsTypeRequest[] {
  const requests: Array<{ type: string; schema?: { text: string; file: string } }> = [];
  for (const { flag, value = '' } of order) {
    if (flag === 'details-type') requests.push({ type: value });
    if (flag !== 'details-schema') continue;
    const last = requests.at(-1);
    if (!last || last.schema)
      throw new UsageError(
        `--details-schema ${value} must come right after the --details-type it describes (--details-type TYPE --details-schema FILE)`,
      );
    let text: string;
    try {
      text = fs.readFileSync(value, 'utf8');
    } catch (error) {
      throw new UsageError(`--details-schema ${value}: cannot read the file (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    last.schema = { text, file: value };
  }
  return requests;
}

async function password(storage: Storage, command: string): Promise<string> {
  const text = (await storage.stdin()).replace(/\r?\n$/, '');
  if (!text) throw new UsageError(`no password on standard input (pipe it in: printf %s "$PASSWORD" | portcullis ${command} …)`);
  return text;
}

/** One handler for each command of the table in usage.ts, no more, no fewer. */
const COMMANDS: { [N in CommandName]: Handler<N> } = {
  migrate() {
    return Promise.resolve({ migrated: true }); // the migration itself ran when storage was opened
  },
  async 'resource create'({ values, order }, { db }) {
    return createResource(
      db,
      {
        uri: values.uri,
        scopes: words(values.scope),
        ttl: seconds(values.ttl),
        format: values.format,
        introspector: values.introspector,
        signedIntrospection: values['signed-introspection'] || undefined,
        isDefault: values.default,
        describe: values.describe,
        detailsTypes: detailsTypes(order),
      },
      BY_CLI,
    );
  },
  async 'resource update'({ values, order }, { db }) {
    if (values.introspector !== undefined && values['no-introspector'])
      throw new UsageError('--introspector and --no-introspector exclude each other');
    if (values['signed-introspection'] && values['no-signed-introspection'])
      throw new UsageError('--signed-introspection and --no-signed-introspection exclude each other');
    if (values['details-type'].length && values['no-details-types'])
      throw new UsageError('--details-type and --no-details-types exclude each other');
    const types = detailsTypes(order);
    return updateResource(
      db,
      {
        uri: values.uri,
        scopes: values.scope === undefined ? undefined : words(values.scope),
        ttl: seconds(values.ttl),
        format: values.format,
        introspector: values['no-introspector'] ? null : values.introspector,
        signedIntrospection: values['signed-introspection'] ? true : values['no-signed-introspection'] ? false : undefined,
        isDefault: values.default,
        describe: values.describe,
        detailsTypes: values['no-details-types'] ? [] : types.length ? types : undefined,
      },
      BY_CLI,
    );
  },
  async 'resource list'(_, { db }) {
    return describeResources(db);
  },
  async 'partner create'({ values }, { db, config }) {
    const created = await createPartner(
      db,
      {
        name: values.name,
        scopes: words(values.scope),
        grantTypes: values.grant,
        redirectUris: values['redirect-uri'],
        isPublic: values.public,
        allowDuplicateName: values['allow-duplicate-name'],
        security: {
          profile: values.profile,
          authMethod: values['auth-method'],
          jwksText: readKeyFile(values['jwks-file']),
          jwksUri: values['jwks-uri'],
          tlsSubjectDn: values['tls-subject-dn'],
          tokenBinding: values['token-binding'],
          messageSigning: values['message-signing'] || undefined,
        },
      },
      BY_CLI,
      { defaultProfile: config.defaultProfile },
    );
    const { client_id: clientId, ...partner } = created.partner;
    return created.client_secret === null
      ? { client_id: clientId, ...partner }
      : { client_id: clientId, client_secret: created.client_secret, ...partner };
  },
  async 'partner update'({ values, argument }, { db }) {
    if (values.name !== undefined && !values.name.trim()) throw new UsageError('--name may not be empty');
    if (values['message-signing'] && values['no-message-signing'])
      throw new UsageError('--message-signing and --no-message-signing exclude each other');
    return updatePartnerDetails(
      db,
      argument,
      {
        name: values.name,
        scopes: values.scope === undefined ? undefined : words(values.scope),
        grantTypes: values.grant.length ? values.grant : undefined,
        redirectUris: values['redirect-uri'].length ? values['redirect-uri'] : undefined,
        allowDuplicateName: values['allow-duplicate-name'],
        messageSigning: values['message-signing'] ? true : values['no-message-signing'] ? false : undefined,
      },
      BY_CLI,
    );
  },
  async 'partner delete'({ argument }, { db }) {
    return deletePartner(db, argument, BY_CLI);
  },
  async 'partner list'(_, { db }) {
    return (await listPartners(db)).map(describePartner);
  },
  async 'partner show'({ argument }, { db }) {
    return describePartner(await getPartner(db, argument));
  },
  async 'partner suspend'({ argument }, { db }) {
    return setPartnerStatus(db, argument, 'suspended', BY_CLI);
  },
  async 'partner resume'({ argument }, { db }) {
    return setPartnerStatus(db, argument, 'active', BY_CLI);
  },
  async 'partner rotate-secret'({ argument }, { db }) {
    return rotatePartnerSecret(db, argument, BY_CLI);
  },
  async 'partner set-profile'({ args }, { db }) {
    return setPartnerProfile(db, args[0], args[1], BY_CLI);
  },
  async 'partner set-keys'({ values, argument }, { db }) {
    return setPartnerKeys(db, argument, { jwksText: readKeyFile(values['jwks-file']), jwksUri: values['jwks-uri'] }, BY_CLI);
  },
  async 'user create'({ values }, storage) {
    return createUser(
      accounts(storage),
      {
        username: values.username,
        password: await password(storage, 'user create'),
        isAdmin: values.admin,
        withTotp: values['with-totp'],
      },
      BY_CLI,
    );
  },
  async 'user list'(_, storage) {
    return listAllUsers(accounts(storage));
  },
  async 'user unlock'({ argument }, storage) {
    return unlockUser(accounts(storage), argument, BY_CLI);
  },
  async 'user reset-totp'({ argument }, storage) {
    return resetTotp(accounts(storage), argument, BY_CLI);
  },
  async 'user set-password'({ argument }, storage) {
    return setPassword(accounts(storage), argument, await password(storage, 'user set-password NAME'), BY_CLI);
  },
  async 'user disable'({ argument }, storage) {
    return disableUser(accounts(storage), argument, BY_CLI);
  },
  async 'user enable'({ argument }, storage) {
    return enableUser(accounts(storage), argument, BY_CLI);
  },
  async 'grant list'({ values }, { db }) {
    const username = values.user === undefined ? undefined : (await userNamed(db, values.user)).username;
    if (values.partner !== undefined) await getPartner(db, values.partner);
    return listGrantsDescribed(db, { username, clientId: values.partner });
  },
  async 'grant revoke'({ argument }, { db }) {
    return revokeGrantById(db, argument, BY_CLI);
  },
  async 'keys list'(_, { db, config }) {
    return describeKeys(await listKeys(db), Date.now(), rotationPolicy(config.keys));
  },
  async 'keys rotate'({ values }, { db, keyring, config }) {
    return rotateKeys(db, keyring, rotationPolicy(config.keys), { immediately: values.now }, BY_CLI);
  },
  async 'keys revoke'({ argument }, { db, keyring, config }) {
    return revokeKey(db, keyring, rotationPolicy(config.keys), argument, BY_CLI);
  },
  async 'keys rewrap'(_, { db, keyring }) {
    return rewrapAll(db, keyring, BY_CLI);
  },
  async 'keys rotate-cookie-keys'(_, { db, keyring }) {
    return rotateCookieKeys(db, keyring, BY_CLI);
  },
  async 'audit verify'(_, { db }) {
    const verdict = await verifyChain(db);
    if (!verdict.valid)
      throw new AppError(
        'audit_invalid',
        `seq ${String(verdict.seq)}: ${verdict.problem}: ${verdict.detail} (${String(verdict.rows)} rows before it are valid)`,
      );
    return verdict;
  },
  async 'audit export'({ values }, { db, stdout }) {
    await exportRows(db, stdout, values.since === undefined ? undefined : parseSince(values.since));
    return undefined; // the lines are written as they are read
  },
};

const HELP = ['help', '--help', '-h'];

function version(): string {
  const manifest = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return manifest.version;
}

/** One line for a command that does not exist, with the nearest one if it looks like a typo. */
function unknownCommand(argv: string[]): string {
  const typed = argv.slice(0, 2).join(' ');
  const group = GROUPS.includes(argv[0]) ? argv[0] : closest(argv[0], GROUPS);
  const inGroup = group ? COMMAND_NAMES.filter((name) => name.startsWith(`${group} `)).map((name) => name.slice(group.length + 1)) : [];
  const sub = group && argv.length > 1 ? closest(argv[1], inGroup) : undefined;
  const suggestion = sub ? `${group} ${sub}` : group !== argv[0] ? group : undefined;
  return `portcullis: unknown command "${typed}"${suggestion ? `: did you mean "${suggestion}"?` : ''} (run portcullis --help)\n`;
}

/**
 * Runs one command: JSON on stdout, one line on stderr and exit code 1 (2 for usage) on error.
 * `env` defaults to the process's environment, which only config/ reads.
 */
export async function runCli(argv: string[], io: Io, env?: Record<string, string | undefined>): Promise<number> {
  if (argv.length === 0 || HELP.includes(argv[0])) {
    io.stdout(`${usage()}\n`);
    return argv.length === 0 ? 2 : 0;
  }
  if (argv[0] === '--version') {
    io.stdout(`portcullis ${version()}\n`);
    return 0;
  }
  const name = COMMAND_NAMES.find((candidate) => candidate === `${argv[0]} ${argv[1] ?? ''}` || candidate === argv[0]);
  if (!name) {
    // `portcullis partner`, `portcullis partner --help`: the group's commands
    if (GROUPS.includes(argv[0]) && (argv.length === 1 || HELP.includes(argv[1]))) {
      io.stdout(`${groupUsage(argv[0])}\n`);
      return argv.length === 1 ? 2 : 0;
    }
    io.stderr(unknownCommand(argv));
    return 2;
  }
  const rest = argv.slice(name.split(' ').length);
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout(`${commandUsage(name)}\n`);
    return 0;
  }
  let storage: Storage | undefined;
  try {
    const parsed = parse(name, rest);
    const config = loadConfig(env);
    storage = {
      ...(await openStorage(config)),
      config,
      stdin: io.stdin ?? readStdin,
      stdout: (text: string) => {
        io.stdout(text);
      },
    };
    const result = await (COMMANDS[name] as Handler<CommandName>)(parsed, storage);
    // undefined: the command wrote its own output (JSON lines)
    if (result !== undefined) io.stdout(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  } catch (error) {
    const message = error instanceof AppError || error instanceof UsageError ? error.message : safeError(error).message;
    io.stderr(`portcullis ${name}: ${message.split('\n')[0]}\n`);
    return error instanceof UsageError ? 2 : 1;
  } finally {
    await storage?.db.destroy();
  }
}
