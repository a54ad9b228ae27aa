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
  describePartner,
  getPartner,
  listPartners,
  rotatePartnerSecret,
  setPartnerStatus,
} from '../partners/partner.service.ts';
import { createResource, describeResource, updateResource } from '../resources/resource.service.ts';
import { createUser, disableUser, listAllUsers, resetTotp, unlockUser, type AccountDeps } from '../accounts/user.service.ts';
import { listResources } from '../resources/resource.store.ts';
import { openStorage, rewrapAll } from '../storage.ts';
import { commandUsage, usage, type CommandName } from './usage.ts';

type Io = { stdout(text: string): void; stderr(text: string): void; stdin?: () => Promise<string> };
type Storage = { db: Db; keyring: Keyring; config: Config; stdin(): Promise<string> };
type Command = (args: string[], storage: Storage) => Promise<unknown>;

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new UsageError('--password-stdin reads the password from standard input: pipe it in');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const accounts = ({ db, keyring }: Storage): AccountDeps => ({ db, keyring, now: Date.now });

class UsageError extends Error {}

/**
 * Our options are all long (`--name`); an argument with a single leading dash is a value, such as
 * a key id (a base64url thumbprint may start with `-`), never a cluster of short options.
 */
const DASHED_VALUE = /^-[^-]/;

function options<T extends Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>>(args: string[], spec: T, positionals = 0) {
  try {
    const dashed = new Map<string, string>();
    const masked = args.map((arg, i) => {
      if (!DASHED_VALUE.test(arg)) return arg;
      const placeholder = `\u0000${i}`;
      dashed.set(placeholder, arg);
      return placeholder;
    });
    const unmask = (value: unknown): unknown =>
      typeof value === 'string' ? (dashed.get(value) ?? value) : Array.isArray(value) ? value.map(unmask) : value;
    const parsed = parseArgs({ args: masked, options: spec, allowPositionals: positionals > 0, strict: true });
    parsed.positionals = parsed.positionals.map((value) => dashed.get(value) ?? value);
    for (const name of Object.keys(parsed.values))
      (parsed.values as Record<string, unknown>)[name] = unmask((parsed.values as Record<string, unknown>)[name]);
    if (parsed.positionals.length !== positionals)
      throw new UsageError(`expected ${positionals} argument(s), got ${parsed.positionals.length}`);
    return parsed;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError((error as Error).message.split('\n')[0]);
  }
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value.trim() === '') throw new UsageError(`${flag} is required`);
  return value;
}

const words = (text: string | undefined) => (text ?? '').split(/\s+/).filter(Boolean);

function seconds(value: string | undefined): number | undefined {
  const ttl = value === undefined ? undefined : Number(value);
  if (ttl !== undefined && !Number.isInteger(ttl)) throw new UsageError('--ttl takes whole seconds');
  return ttl;
}

const RESOURCE_FLAGS = {
  uri: { type: 'string' },
  scope: { type: 'string' },
  ttl: { type: 'string' },
  format: { type: 'string' },
  introspector: { type: 'string' },
  default: { type: 'boolean' },
  describe: { type: 'string', multiple: true },
} as const;

/** One handler for each command of the table in usage.ts, no more, no fewer. */
const COMMANDS: Record<CommandName, Command> = {
  migrate(args) {
    options(args, {}); // no options; the migration itself ran when storage was opened
    return Promise.resolve({ migrated: true });
  },
  async 'resource create'(args, { db }) {
    const { values } = options(args, RESOURCE_FLAGS);
    return createResource(db, {
      uri: required(values.uri, '--uri'),
      scopes: words(required(values.scope, '--scope')),
      ttl: seconds(values.ttl),
      format: values.format,
      introspector: values.introspector,
      isDefault: values.default ?? false,
      describe: values.describe ?? [],
    });
  },
  async 'resource update'(args, { db }) {
    const { values } = options(args, { ...RESOURCE_FLAGS, 'no-introspector': { type: 'boolean' } });
    if (values.introspector !== undefined && values['no-introspector'])
      throw new UsageError('--introspector and --no-introspector exclude each other');
    return updateResource(db, {
      uri: required(values.uri, '--uri'),
      scopes: values.scope === undefined ? undefined : words(values.scope),
      ttl: seconds(values.ttl),
      format: values.format,
      introspector: values['no-introspector'] ? null : values.introspector,
      isDefault: values.default ?? false,
      describe: values.describe ?? [],
    });
  },
  async 'resource list'(args, { db }) {
    options(args, {});
    return (await listResources(db)).map(describeResource);
  },
  async 'partner create'(args, { db }) {
    const { values } = options(args, {
      name: { type: 'string' },
      scope: { type: 'string' },
      grant: { type: 'string', multiple: true },
      'redirect-uri': { type: 'string', multiple: true },
      public: { type: 'boolean' },
    });
    const created = await createPartner(db, {
      name: required(values.name, '--name'),
      scopes: words(required(values.scope, '--scope')),
      grantTypes: values.grant ?? [],
      redirectUris: values['redirect-uri'] ?? [],
      isPublic: values.public ?? false,
    });
    const { client_id: clientId, ...partner } = created.partner;
    return created.client_secret === null
      ? { client_id: clientId, ...partner }
      : { client_id: clientId, client_secret: created.client_secret, ...partner };
  },
  async 'partner list'(args, { db }) {
    options(args, {});
    return (await listPartners(db)).map(describePartner);
  },
  async 'partner show'(args, { db }) {
    const { positionals } = options(args, {}, 1);
    return describePartner(await getPartner(db, positionals[0]));
  },
  async 'partner suspend'(args, { db }) {
    const { positionals } = options(args, {}, 1);
    return setPartnerStatus(db, positionals[0], 'suspended');
  },
  async 'partner resume'(args, { db }) {
    const { positionals } = options(args, {}, 1);
    return setPartnerStatus(db, positionals[0], 'active');
  },
  async 'partner rotate-secret'(args, { db }) {
    const { positionals } = options(args, {}, 1);
    return rotatePartnerSecret(db, positionals[0]);
  },
  async 'keys list'(args, { db }) {
    options(args, {});
    return describeKeys(await listKeys(db), Date.now());
  },
  async 'keys rotate'(args, { db, keyring, config }) {
    const { values } = options(args, { now: { type: 'boolean' } });
    return rotateKeys(db, keyring, rotationPolicy(config.keys), { immediately: values.now ?? false });
  },
  async 'keys revoke'(args, { db, keyring, config }) {
    const { positionals } = options(args, {}, 1);
    return revokeKey(db, keyring, rotationPolicy(config.keys), positionals[0]);
  },
  async 'keys rewrap'(args, { db, keyring }) {
    options(args, {});
    return rewrapAll(db, keyring);
  },
  async 'keys rotate-cookie-keys'(args, { db, keyring }) {
    options(args, {});
    return rotateCookieKeys(db, keyring);
  },
  async 'user create'(args, storage) {
    const { values } = options(args, {
      username: { type: 'string' },
      'password-stdin': { type: 'boolean' },
      admin: { type: 'boolean' },
      'with-totp': { type: 'boolean' },
    });
    const username = required(values.username, '--username');
    if (!values['password-stdin']) throw new UsageError('--password-stdin is required (passwords never go on the command line)');
    const password = (await storage.stdin()).replace(/\r?\n$/, '');
    if (!password) throw new UsageError('no password on standard input (pipe it in: printf %s "$PASSWORD" | portcullis user create …)');
    return createUser(accounts(storage), { username, password, isAdmin: values.admin ?? false, withTotp: values['with-totp'] ?? false });
  },
  async 'user list'(args, storage) {
    options(args, {});
    return listAllUsers(accounts(storage));
  },
  async 'user unlock'(args, storage) {
    const { positionals } = options(args, {}, 1);
    return unlockUser(accounts(storage), positionals[0]);
  },
  async 'user reset-totp'(args, storage) {
    const { positionals } = options(args, {}, 1);
    return resetTotp(accounts(storage), positionals[0]);
  },
  async 'user disable'(args, storage) {
    const { positionals } = options(args, {}, 1);
    return disableUser(accounts(storage), positionals[0]);
  },
};

const HELP = ['help', '--help', '-h'];

const isCommand = (candidate: string): candidate is CommandName => Object.hasOwn(COMMANDS, candidate);

/**
 * Runs one command: JSON on stdout, one line on stderr and exit code 1 (2 for usage) on error.
 * `env` defaults to the process's environment, which only config/ reads.
 */
export async function runCli(argv: string[], io: Io, env?: Record<string, string | undefined>): Promise<number> {
  if (argv.length === 0 || HELP.includes(argv[0])) {
    io.stdout(`${usage()}\n`);
    return argv.length === 0 ? 2 : 0;
  }
  const name = [`${argv[0]} ${argv[1] ?? ''}`, argv[0]].find(isCommand);
  if (!name) {
    io.stderr(`portcullis: unknown command "${argv.slice(0, 2).join(' ')}" (run portcullis --help)\n`);
    return 2;
  }
  const rest = argv.slice(name.split(' ').length);
  if (rest.includes('--help')) {
    io.stdout(`${commandUsage(name)}\n`);
    return 0;
  }
  let storage: Storage | undefined;
  try {
    const config = loadConfig(env);
    storage = { ...(await openStorage(config)), config, stdin: io.stdin ?? readStdin };
    const result = await COMMANDS[name](rest, storage);
    io.stdout(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  } catch (error) {
    const message = error instanceof AppError || error instanceof UsageError ? error.message : safeError(error).message;
    io.stderr(`portcullis ${name}: ${message.split('\n')[0]}\n`);
    return error instanceof UsageError ? 2 : 1;
  } finally {
    await storage?.db.destroy();
  }
}
