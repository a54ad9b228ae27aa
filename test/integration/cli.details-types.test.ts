import fs from 'node:fs';
import path from 'node:path';
import { BY_CLI } from '../../src/audit/audit.service.ts';
import { createDb } from '../../src/db/knex.ts';
import { updateResource } from '../../src/resources/resource.service.ts';
import { cli, freshDatabaseUrl, instanceEnv, tempDir, TEST_PG_URL } from '../support/harness.ts';

// `resource create|update --details-type TYPE [--details-schema FILE]`: the authorization_details
// types (RFC 9396) an API accepts, each with its JSON Schema, and the one-line refusals.

const dir = tempDir();
const env = instanceEnv(dir, freshDatabaseUrl(dir));
const PAYMENTS = 'https://api.bank.test/payments';
const ACCOUNTS = 'https://api.bank.test/accounts';

const SCHEMA = { type: 'object', required: ['type', 'accounts'], properties: { accounts: { type: 'array', items: { format: 'iban' } } } };

function file(name: string, content: string): string {
  const at = path.join(dir, name);
  fs.writeFileSync(at, content);
  return at;
}

/** A refusal: exit code `code`, nothing on stdout, one line on stderr matching `message`. */
function refused(result: { code: number; stdout: string; stderr: string }, code: number, message: RegExp) {
  expect(result.code).toBe(code);
  expect(result.stdout).toBe('');
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(result.stderr).not.toMatch(/\n\s+at /);
  expect(result.stderr).toMatch(message);
}

const create = (uri: string, scope: string, ...rest: string[]) => cli(env, 'resource', 'create', '--uri', uri, '--scope', scope, ...rest);
const update = (uri: string, ...rest: string[]) => cli(env, 'resource', 'update', '--uri', uri, ...rest);

beforeAll(async () => {
  const made = await create(PAYMENTS, 'payments:write', '--details-type', 'payment_initiation');
  expect(made.stderr).toBe('');
  expect(made.json.authorization_details_types).toEqual([{ type: 'payment_initiation', schema: 'built-in' }]);
  const accounts = await create(
    ACCOUNTS,
    'accounts:read',
    '--details-type',
    'account_access',
    '--details-schema',
    file('ok.json', JSON.stringify(SCHEMA)),
  );
  expect(accounts.stderr).toBe('');
}, 60_000);

test('resource list shows each API’s types with their schemas', async () => {
  const listed = await cli(env, 'resource', 'list');
  expect(listed.code).toBe(0);
  const byUri = Object.fromEntries(
    (listed.json as Array<{ uri: string; built_in: boolean; authorization_details_types: unknown }>)
      .filter((r) => !r.built_in) // the admin API
      .map((r) => [r.uri, r.authorization_details_types]),
  );
  expect(byUri).toEqual({
    [PAYMENTS]: [{ type: 'payment_initiation', schema: 'built-in' }],
    [ACCOUNTS]: [{ type: 'account_access', schema: SCHEMA }],
  });
});

describe('a bad schema file is one line', () => {
  test.each([
    ['missing', path.join(dir, 'nowhere.json'), 2, /--details-schema .*nowhere\.json: cannot read the file \(ENOENT\)/],
    ['not JSON', 'bad.json:{"type": ', 1, /--details-schema .*bad\.json is not JSON/],
    ['not an object', 'list.json:[1, 2]', 1, /is not a JSON Schema \(a JSON object\)/],
    [
      'an unknown keyword',
      'typo.json:{"type":"object","requird":["x"]}',
      1,
      /is not a valid JSON Schema: strict mode: unknown keyword: "requird"/,
    ],
    ['an unknown format', 'format.json:{"type":"string","format":"postcode"}', 1, /is not a valid JSON Schema: unknown format "postcode"/],
    ['a wrong type of keyword', 'wrong.json:{"type":"object","required":"x"}', 1, /is not a valid JSON Schema: schema is invalid/],
    ['asynchronous', 'async.json:{"$async":true,"type":"object"}', 1, /asynchronous schema/],
    ['too large', `large.json:${JSON.stringify({ description: 'x'.repeat(70_000) })}`, 1, /larger than 64 KiB/],
  ] as const)('%s', async (_name, spec, code, message) => {
    const at = spec.startsWith('/') ? spec : file(spec.slice(0, spec.indexOf(':')), spec.slice(spec.indexOf(':') + 1));
    refused(
      await create('https://api.bank.test/other', 'other:read', '--details-type', 'other_type', '--details-schema', at),
      code,
      message,
    );
    // nothing was written: the API is not registered
    expect((await cli(env, 'resource', 'list')).json.map((r: { uri: string }) => r.uri)).not.toContain('https://api.bank.test/other');
  });
});

test('the pairing of --details-type and --details-schema, and the rules of a type name', async () => {
  const schema = file('pair.json', JSON.stringify(SCHEMA));
  refused(
    await update(ACCOUNTS, '--details-schema', schema, '--details-type', 'account_access'),
    2,
    /must come right after the --details-type it describes/,
  );
  refused(
    await update(ACCOUNTS, '--details-type', 'a', '--details-schema', schema, '--details-schema', schema),
    2,
    /must come right after/,
  );
  refused(
    await update(ACCOUNTS, '--details-type', 'brand_new'),
    1,
    /--details-type brand_new needs a JSON Schema: give --details-schema FILE right after it/,
  );
  refused(await update(ACCOUNTS, '--details-type', 'has space', '--details-schema', schema), 1, /is not a valid type/);
  refused(await update(ACCOUNTS, '--details-type', 'account_access', '--details-type', 'account_access'), 1, /given twice/);
  // a type name belongs to one API, like a scope
  refused(
    await update(ACCOUNTS, '--details-type', 'payment_initiation'),
    1,
    /authorization_details type "payment_initiation" already belongs to https:\/\/api\.bank\.test\/payments/,
  );
  refused(await update(ACCOUNTS, '--details-type', 'x', '--details-schema', schema, '--no-details-types'), 2, /exclude each other/);
});

test('update replaces the list; a type listed again keeps its schema; --no-details-types drops them all', async () => {
  const other = file('other.json', JSON.stringify({ type: 'object' }));
  const replaced = await update(
    ACCOUNTS,
    '--details-type',
    'account_access',
    '--details-type',
    'statement_download',
    '--details-schema',
    other,
  );
  expect(replaced.stderr).toBe('');
  expect(replaced.json.authorization_details_types).toEqual([
    { type: 'account_access', schema: SCHEMA },
    { type: 'statement_download', schema: { type: 'object' } },
  ]);
  const dropped = await update(ACCOUNTS, '--no-details-types');
  expect(dropped.json.authorization_details_types).toEqual([]);
  // a dropped name is free for another API
  expect(
    (await update(PAYMENTS, '--details-type', 'payment_initiation', '--details-type', 'statement_download', '--details-schema', other))
      .code,
  ).toBe(0);
});

test('racing updates claiming one type name: exactly one API gets it', async () => {
  // racers on their own connections (SQLite: more than ~3 in-process transactions at once starve libuv)
  const racers = TEST_PG_URL ? 8 : 3;
  const uris = Array.from({ length: racers }, (_, i) => `https://api.bank.test/race${i}`);
  for (const [i, uri] of uris.entries()) expect((await create(uri, `race${i}:read`)).code).toBe(0);
  const dbs = uris.map(() => createDb(env.DATABASE_URL));
  try {
    const outcomes = await Promise.allSettled(
      uris.map((uri, i) =>
        updateResource(
          dbs[i],
          { uri, detailsTypes: [{ type: 'contested', schema: { text: '{"type":"object"}', file: 'race.json' } }] },
          BY_CLI,
        ),
      ),
    );
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1);
    for (const outcome of outcomes.filter((o) => o.status === 'rejected'))
      expect(outcome.reason).toEqual(
        expect.objectContaining({ message: expect.stringMatching(/already belongs to|was just given to another resource/) }),
      );
  } finally {
    await Promise.all(dbs.map((db) => db.destroy()));
  }
  const owners = (await cli(env, 'resource', 'list')).json.filter((r: { authorization_details_types: Array<{ type: string }> }) =>
    r.authorization_details_types.some((t) => t.type === 'contested'),
  );
  expect(owners).toHaveLength(1);
});
