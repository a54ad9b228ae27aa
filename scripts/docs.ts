/**
 * `npm run docs`: writes the README's generated parts from the code — the configuration table
 * from `SETTINGS` (src/config/config.ts), the command table from `COMMAND_TABLE`
 * (src/cli/usage.ts), the payments example's variables from `VARIABLES`
 * (examples/payments-api/src/config.ts), and the guide "Protecting an API with Portcullis", whose
 * code blocks are the example's own source: each `// guide:begin NAME` … `// guide:end NAME`
 * region of examples/payments-api/src/ is copied between `<!-- example:NAME:begin -->` and
 * `<!-- example:NAME:end -->`. test/unit/docs.test.ts fails when README.md differs from what
 * this writes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SETTING_GROUPS, SETTINGS, shownDefault, type Setting } from '../src/config/config.ts';
import { COMMAND_TABLE, synopsis, type CommandName } from '../src/cli/usage.ts';
import { VARIABLES } from '../examples/payments-api/src/config.ts';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
export const README = path.join(ROOT, 'README.md');
export const EXAMPLE_SOURCE = path.join(ROOT, 'examples', 'payments-api', 'src');

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

export function exampleVariablesTable(): string {
  const rows = Object.entries(VARIABLES).map(([name, doc]) => `| ${code(name)} | ${cell(doc)} |`);
  return ['| variable | meaning |', '|---|---|', ...rows].join('\n');
}

export type GuideRegion = { name: string; file: string; code: string };

/** The `// guide:begin NAME` … `// guide:end NAME` regions of the example's source, dedented. */
export function guideRegions(dir = EXAMPLE_SOURCE): GuideRegion[] {
  const regions: GuideRegion[] = [];
  for (const file of fs
    .readdirSync(dir)
    .filter((name) => name.endsWith('.ts'))
    .sort()) {
    const text = fs.readFileSync(path.join(dir, file), 'utf8');
    for (const match of text.matchAll(/^[ \t]*\/\/ guide:begin (\S+)\n([\s\S]*?)^[ \t]*\/\/ guide:end (\S+)$/gm)) {
      if (match[1] !== match[3]) throw new Error(`${file}: guide:begin ${match[1]} ends with guide:end ${match[3]}`);
      const lines = match[2].replace(/\n$/, '').split('\n');
      const indent = Math.min(...lines.filter((line) => line.trim()).map((line) => line.length - line.trimStart().length));
      regions.push({ name: match[1], file, code: lines.map((line) => line.slice(indent)).join('\n') });
    }
  }
  return regions;
}

/** Every `<!-- example:NAME:begin -->` … `:end -->` of the README filled with its region. */
export function withGuide(readme: string, regions = guideRegions()): string {
  return readme.replace(
    /(<!-- example:(\S+):begin -->)[\s\S]*?(<!-- example:\2:end -->)/g,
    (_, begin: string, name: string, end: string) => {
      const region = regions.find((item) => item.name === name);
      if (!region) throw new Error(`README.md shows the example region "${name}", which no guide:begin marks in examples/payments-api/src`);
      return `${begin}\n\n\`\`\`ts\n// examples/payments-api/src/${region.file}\n${region.code}\n\`\`\`\n\n${end}`;
    },
  );
}

const BLOCKS = [
  { name: 'settings', source: 'src/config/config.ts (SETTINGS)', render: settingsTable },
  { name: 'commands', source: 'src/cli/usage.ts (COMMAND_TABLE)', render: commandTable },
  { name: 'example-settings', source: 'examples/payments-api/src/config.ts (VARIABLES)', render: exampleVariablesTable },
];

/** The README with every generated block rewritten from the code; a missing marker is an error. */
export function withTables(readme: string): string {
  let text = withGuide(readme);
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
