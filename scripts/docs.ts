/**
 * `npm run docs`: writes the README's generated tables from the code — the configuration table
 * from `SETTINGS` (src/config/config.ts) and the command table from `COMMAND_TABLE`
 * (src/cli/usage.ts) — each between its marker comments. test/unit/docs.test.ts fails when
 * README.md differs from what this writes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SETTING_GROUPS, SETTINGS, shownDefault, type Setting } from '../src/config/config.ts';
import { COMMAND_TABLE, synopsis, type CommandName } from '../src/cli/usage.ts';

export const README = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'README.md');

/** A table cell: a `|` would end the cell, even inside backticks. */
const cell = (text: string) => text.replaceAll('|', '\\|');

const code = (text: string) => `\`${text}\``;

/** A default in words ("all interfaces") stays words; a value is code. */
const defaultCell = (entry: Setting<unknown>) => {
  const shown = shownDefault(entry);
  return shown === '—' || shown.includes(' ') ? shown : code(shown);
};

export function settingsTable(): string {
  const entries = Object.entries(SETTINGS) as [string, Setting<unknown>][];
  const sections = Object.entries(SETTING_GROUPS).map(([group, { title, doc }]) => {
    const rows = entries
      .filter(([, entry]) => entry.group === group)
      .map(([name, entry]) => `| ${code(name)} | ${cell(defaultCell(entry))} | ${cell(entry.doc)} |`);
    return [`### ${title}`, '', ...(doc ? [doc, ''] : []), '| variable | default | meaning |', '|---|---|---|', ...rows].join('\n');
  });
  return sections.join('\n\n');
}

export function commandTable(): string {
  const rows = (Object.keys(COMMAND_TABLE) as CommandName[]).map(
    (name) => `| ${cell(code(`portcullis ${synopsis(name)}`))} | ${cell(COMMAND_TABLE[name].doc)} |`,
  );
  return ['| command | what it does |', '|---|---|', ...rows].join('\n');
}

const BLOCKS = [
  { name: 'settings', source: 'src/config/config.ts (SETTINGS)', render: settingsTable },
  { name: 'commands', source: 'src/cli/usage.ts (COMMAND_TABLE)', render: commandTable },
];

/** The README with every generated block rewritten from the code; a missing marker is an error. */
export function withTables(readme: string): string {
  let text = readme;
  for (const block of BLOCKS) {
    const begin = `<!-- ${block.name}:begin -->`;
    const end = `<!-- ${block.name}:end -->`;
    const from = text.indexOf(begin);
    const to = text.indexOf(end);
    if (from < 0 || to < from) throw new Error(`README.md lacks the markers ${begin} … ${end}`);
    const generated = `${begin}\n<!-- made by \`npm run docs\` from ${block.source}: edit there, not here -->\n\n${block.render()}\n\n`;
    text = text.slice(0, from) + generated + text.slice(to);
  }
  return text;
}

if (import.meta.main) {
  const before = fs.readFileSync(README, 'utf8');
  const after = withTables(before);
  if (after === before) {
    console.log('README.md is up to date');
  } else {
    fs.writeFileSync(README, after);
    console.log('README.md: generated tables rewritten');
  }
}
