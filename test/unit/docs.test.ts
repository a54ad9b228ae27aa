import fs from 'node:fs';
import path from 'node:path';
import { README, commandTable, guideRegions, settingsTable, withGuide, withTables } from '../../scripts/docs.ts';
import { SETTINGS } from '../../src/config/config.ts';
import { COMMAND_TABLE, commandUsage, usage } from '../../src/cli/usage.ts';

/** The first line where two texts part, with its number, to say where to look. */
function firstDifference(actual: string, expected: string): string {
  const a = actual.split('\n');
  const b = expected.split('\n');
  const line = a.findIndex((text, i) => text !== b[i]);
  const at = line < 0 ? a.length : line;
  return `line ${at + 1}:\n  README:    ${a[at] ?? '(end of file)'}\n  generated: ${b[at] ?? '(end of file)'}`;
}

describe('docs made from the code', () => {
  test("README.md's configuration and command tables are what `npm run docs` writes", () => {
    const readme = fs.readFileSync(README, 'utf8');
    const generated = withTables(readme);
    if (readme !== generated) {
      throw new Error(
        `README.md's generated tables differ from the code: run \`npm run docs\` (and commit README.md).\n${firstDifference(readme, generated)}`,
      );
    }
  });

  test('every setting and every command has a row', () => {
    const settings = settingsTable();
    for (const name of Object.keys(SETTINGS)) expect(settings).toContain(`| \`${name}\` |`);
    const commands = commandTable();
    for (const name of Object.keys(COMMAND_TABLE)) expect(commands).toContain(`\`portcullis ${name}`);
  });

  test('a table cell never breaks on a | inside code', () => {
    expect(commandTable()).toContain('[--format jwt\\|opaque]');
    for (const row of commandTable().split('\n').slice(2)) expect(row.split(/(?<!\\)\|/)).toHaveLength(4);
  });

  test('the guide shows every marked region of the example, each once, as the example has it', () => {
    const readme = fs.readFileSync(README, 'utf8');
    const regions = guideRegions();
    expect(regions.length).toBeGreaterThan(5);
    expect(new Set(regions.map((region) => region.name)).size).toBe(regions.length);
    for (const { name, file, code } of regions) {
      expect(readme.split(`<!-- example:${name}:begin -->`)).toHaveLength(2);
      expect(readme).toContain(`// examples/payments-api/src/${file}\n${code}\n`);
    }
    expect(() => withGuide('<!-- example:nowhere:begin -->\n<!-- example:nowhere:end -->')).toThrow(
      /"nowhere", which no guide:begin marks/,
    );
  });

  test('a README without the markers is an error, not a silent no-op', () => {
    expect(() => withTables('# Portcullis\n')).toThrow(/settings:begin/);
  });

  test('the usage text lists every command with its doc, without Markdown', () => {
    const text = usage();
    for (const [name, { doc }] of Object.entries(COMMAND_TABLE)) {
      expect(text).toContain(`  ${name}`);
      expect(text).toContain(doc.replaceAll('`', ''));
    }
    expect(text).not.toContain('`');
    expect(commandUsage('keys rotate')).toMatch(/^usage: portcullis keys rotate \[--now\]\n {2}add a signing key/);
  });

  test('portcullis help, --help and -h print the usage (exit 0); no command prints it and exits 2; an unknown one is a line on stderr', async () => {
    const { runCli } = await import('../../src/cli/cli.ts');
    const run = async (...argv: string[]) => {
      const out = { stdout: '', stderr: '' };
      const code = await runCli(argv, { stdout: (text) => (out.stdout += text), stderr: (text) => (out.stderr += text) }, {});
      return { code, ...out };
    };
    for (const help of ['help', '--help', '-h']) expect(await run(help)).toEqual({ code: 0, stdout: `${usage()}\n`, stderr: '' });
    expect(await run()).toEqual({ code: 2, stdout: `${usage()}\n`, stderr: '' });
    expect(await run('keys', 'rotate', '--help')).toEqual({ code: 0, stdout: `${commandUsage('keys rotate')}\n`, stderr: '' });
    expect(await run('toString')).toEqual({
      code: 2,
      stdout: '',
      stderr: 'portcullis: unknown command "toString" (run portcullis --help)\n',
    });
  });

  test('config.ts is the only reader of process.env in src/', () => {
    const root = path.join(path.dirname(README), 'src');
    const readers = fs
      .readdirSync(root, { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.ts') && fs.readFileSync(path.join(root, file), 'utf8').includes('process.env'));
    expect(readers).toEqual([path.join('config', 'config.ts')]);
  });
});
