import fs from 'node:fs';
import path from 'node:path';
import { cli, cliWithInput, freshDatabaseUrl, instanceEnv, tempDir } from '../support/harness.ts';
import { startInProcess, startupRefusal } from '../support/in-process.ts';
import { cliProcess, npxPortcullis } from '../support/process.ts';

const dir = tempDir();
const env = instanceEnv(dir, freshDatabaseUrl(dir));

function oneLine(text: string) {
  expect(text.trim().split('\n')).toHaveLength(1);
  expect(text).not.toMatch(/\n\s+at /); // no stack trace
}

describe('portcullis CLI', () => {
  test('npx portcullis runs the package bin on the pinned Node and prints JSON', async () => {
    const result = await npxPortcullis(env, 'resource', 'list');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    // the one API there is from the start: the admin API, built in
    expect(result.json).toEqual([
      expect.objectContaining({
        uri: `${env.ISSUER ?? 'http://localhost:3000'}/admin/api/v1`,
        scope: 'admin:read admin:write',
        built_in: true,
      }),
    ]);
  });

  test('an authenticator app shows BRAND_NAME beside the account (the otpauth issuer)', async () => {
    const created = await cliWithInput(
      { ...env, BRAND_NAME: 'Acme Pay' },
      'long enough passphrase 93\n',
      'user',
      'create',
      '--username',
      'brandy',
      '--password-stdin',
      '--with-totp',
    );
    expect(created.code).toBe(0);
    const uri = new URL(created.json.totp_uri as string);
    expect(uri.searchParams.get('issuer')).toBe('Acme Pay');
    expect(uri.host).toBe('totp');
    expect(decodeURIComponent(uri.pathname)).toBe('/Acme Pay:brandy');
  });

  test('resource and partner lifecycle', async () => {
    const resource = await cli(
      env,
      'resource',
      'create',
      '--uri',
      'https://api.bank.test/payments',
      '--scope',
      'payments:read payments:write',
      '--ttl',
      '300',
      '--default',
    );
    expect(resource.code).toBe(0);
    expect(resource.json).toEqual(
      expect.objectContaining({
        uri: 'https://api.bank.test/payments',
        scope: 'payments:read payments:write',
        access_token_ttl: 300,
        default: true,
      }),
    );
    expect((await cli(env, 'resource', 'list')).json).toHaveLength(2);

    const created = await cli(env, 'partner', 'create', '--name', 'Acme Bank', '--scope', 'payments:read', '--grant', 'client_credentials');
    expect(created.code).toBe(0);
    expect(created.json.client_id).toMatch(/^ptn_/);
    expect(created.json.client_secret.length).toBeGreaterThanOrEqual(43);

    const shown = await cli(env, 'partner', 'show', created.json.client_id);
    expect(shown.json).toEqual(
      expect.objectContaining({ client_id: created.json.client_id, name: 'Acme Bank', status: 'active', scope: 'payments:read' }),
    );
    expect(shown.json.client_secret).toBeUndefined();
    expect((await cli(env, 'partner', 'list')).json.map((p: { client_id: string }) => p.client_id)).toContain(created.json.client_id);
  });

  test.each([
    [['partner', 'create', '--scope', 'payments:read'], 2, /--name is required/],
    [['partner', 'create', '--name', 'X', '--scope', 'nosuch:scope'], 1, /belongs to no resource/],
    [['partner', 'create', '--name', 'X', '--scope', 'payments:read', '--grant', 'password'], 1, /not supported/],
    [['partner', 'create', '--name', 'X', '--scope', 'payments:read', '--grant', 'authorization_code'], 1, /redirect-uri/],
    [
      [
        'partner',
        'create',
        '--name',
        'X',
        '--scope',
        'payments:read',
        '--grant',
        'authorization_code',
        '--redirect-uri',
        'http://evil.test/cb',
      ],
      1,
      /https/,
    ],
    [['partner', 'create', '--name', 'X', '--scope', 'payments:read', '--bogus'], 2, /bogus/],
    [['partner', 'show', 'ptn_nobody'], 1, /no partner/],
    [['partner', 'suspend'], 2, /argument/],
    [['resource', 'create', '--uri', 'http://api.test/', '--scope', 'a'], 1, /https/],
    [['resource', 'create', '--uri', 'https://api.test/#x', '--scope', 'a'], 1, /fragment/],
    [['resource', 'create', '--uri', 'https://api.test/', '--scope', 'a', '--ttl', 'soon'], 2, /whole seconds/],
    [['resource', 'create', '--uri', 'https://api.test/', '--scope', 'a', '--ttl', '999999'], 1, /--ttl/],
    [['resource', 'create', '--uri', 'https://other.test/', '--scope', 'payments:read'], 1, /already belongs/],
    [['frobnicate'], 2, /unknown command/],
  ])('%j → exit %i with one line', async (argv, code, message) => {
    const result = await cli(env, ...argv);
    expect(result.code).toBe(code);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
    oneLine(result.stderr);
  });

  test('a bad DATABASE_URL is one line from the real command', async () => {
    const result = await cliProcess({ ...env, DATABASE_URL: 'mysql://nope' }, 'partner', 'list');
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/DATABASE_URL/);
    oneLine(result.stderr);
  });
});

describe('server start-up errors are one line, never a silent new key', () => {
  test('a wrong PORTCULLIS_KEK, or a lost KEK file, stops start-up', async () => {
    const own = tempDir();
    const ownEnv = instanceEnv(own, freshDatabaseUrl(own));
    const first = await startInProcess(ownEnv);
    await first.stop();
    const before = fs.readdirSync(ownEnv.KEYS_DIR);

    // (as a process, exit code and stderr: test/integration/keys.kek.test.ts)
    expect(await startupRefusal({ ...ownEnv, PORTCULLIS_KEK: Buffer.alloc(32, 7).toString('base64url') })).toMatch(
      /^portcullis: .*key-encryption key/,
    );

    fs.renameSync(path.join(ownEnv.KEYS_DIR, 'kek'), path.join(own, 'kek.bak'));
    expect(await startupRefusal(ownEnv)).toMatch(/missing/);
    expect(fs.readdirSync(ownEnv.KEYS_DIR)).toEqual(before.filter((name) => name !== 'kek'));
  });
});

describe('arguments that begin with a dash', () => {
  test('a key id starting with "-" is an argument, not options (base64url thumbprints may)', async () => {
    const env = instanceEnv(tempDir(), freshDatabaseUrl(tempDir()));
    const revoked = await cli(env, 'keys', 'revoke', '-Zx9no_such_kid');
    expect(revoked.code).toBe(1);
    expect(revoked.stderr).toBe('portcullis keys revoke: no signing key -Zx9no_such_kid\n');
    const named = await cli(env, 'resource', 'create', '--uri', 'https://api.bank.test/x', '--scope', '-odd:scope');
    expect(named.code).toBe(0); // a value of an option may begin with a dash too
    expect(named.json.scope).toBe('-odd:scope');
  });
});

describe('help everywhere', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(path.dirname(new URL(import.meta.url).pathname), '../../package.json'), 'utf8')) as {
    version: string;
  };

  test('portcullis partner --help lists the partner commands; portcullis partner alone prints it and exits 2', async () => {
    const help = await cli(env, 'partner', '--help');
    expect(help.code).toBe(0);
    for (const command of ['create', 'update', 'delete', 'list', 'show', 'suspend', 'resume', 'rotate-secret'])
      expect(help.stdout).toContain(`  partner ${command}`);
    expect(help.stdout).not.toContain('user create');
    expect(await cli(env, 'partner', '-h')).toEqual(help);
    expect(await cli(env, 'partner')).toEqual({ ...help, code: 2 });
  });

  test('portcullis partner create --help explains each option and the settings it reads', async () => {
    const help = await cli(env, 'partner', 'create', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: portcullis partner create --name NAME --scope "a b" \[--grant TYPE\]\.\.\./);
    for (const option of ['--name NAME', '--scope "a b"', '--grant TYPE', '--redirect-uri URI', '--public', '--allow-duplicate-name'])
      expect(help.stdout).toMatch(new RegExp(`\\n  ${option.replace(/[[\]".]/g, '\\$&')} +\\S`));
    for (const variable of ['DATABASE_URL', 'KEYS_DIR', 'PORTCULLIS_KEK']) expect(help.stdout).toContain(`  ${variable}`);
    expect(help.stdout).not.toContain('`');
    expect((await cli(env, 'partner', 'create', '-h')).stdout).toBe(help.stdout);
    expect((await cli(env, 'keys', 'rotate', '--help')).stdout).toContain('KEY_PREPUBLISH');
  });

  test('--version prints the version from package.json', async () => {
    expect(await cli(env, '--version')).toEqual(expect.objectContaining({ code: 0, stdout: `portcullis ${pkg.version}\n`, stderr: '' }));
  });

  test.each([
    [['partner', 'craete'], 'portcullis: unknown command "partner craete": did you mean "partner create"? (run portcullis --help)\n'],
    [['partnr', 'list'], 'portcullis: unknown command "partnr list": did you mean "partner list"? (run portcullis --help)\n'],
    [['parnter'], 'portcullis: unknown command "parnter": did you mean "partner"? (run portcullis --help)\n'],
    [['grant', 'revok', 'x'], 'portcullis: unknown command "grant revok": did you mean "grant revoke"? (run portcullis --help)\n'],
    [['partner', 'create', '--nmae', 'X'], 'portcullis partner create: unknown option --nmae (did you mean --name?)\n'],
    [['partner', 'list', 'extra'], /^portcullis partner list: Unexpected argument 'extra' \(this command takes no argument\)\n$/],
  ])('a typo: %j gets one line on stderr and exit 2', async (argv, message) => {
    const result = await cli(env, ...argv);
    expect(result).toEqual(expect.objectContaining({ code: 2, stdout: '' }));
    expect(result.stderr).toMatch(
      typeof message === 'string' ? new RegExp(`^${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) : message,
    );
  });

  test('as a real process: a typo exits 2 with one line, --help exits 0', async () => {
    const typo = await cliProcess(env, 'partner', 'craete');
    expect(typo.code).toBe(2);
    oneLine(typo.stderr);
    expect(typo.stderr).toMatch(/did you mean "partner create"/);
    const help = await cliProcess(env, 'user', 'set-password', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--password-stdin');
  });
});
