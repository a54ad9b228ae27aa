import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, ROOT, tempDir } from '../support/harness.ts';
import { logWatch } from '../support/logs.ts';

// The README as a newcomer follows it: its quick start's shell blocks run with bash, literally,
// in a fresh checkout-like folder; every path of its Endpoints table answers on a running server.

const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');

/** The text of the README section `## title`, up to the next `## `. */
function section(title: string): string {
  const start = README.indexOf(`\n## ${title}\n`);
  if (start === -1) throw new Error(`README has no "## ${title}" section`);
  const end = README.indexOf('\n## ', start + 1);
  return README.slice(start, end === -1 ? undefined : end);
}

/** The fenced ```sh blocks of a section. */
function shellBlocks(text: string): string[] {
  return [...text.matchAll(/```(?:sh|bash|shell)\n([\s\S]*?)```/g)].map((match) => match[1]);
}

/**
 * A folder that looks like a fresh clone after `npm install`: the repository's files linked in,
 * no data/, an empty keys/. Commands run there as in the clone (npx finds the package's bin).
 */
function freshCheckout(): string {
  const dir = tempDir('portcullis-readme-');
  for (const entry of ['package.json', 'package-lock.json', 'node_modules', 'src', 'migrations', 'views', 'tsconfig.json'])
    fs.symlinkSync(path.join(ROOT, entry), path.join(dir, entry));
  fs.mkdirSync(path.join(dir, 'keys'));
  return dir;
}

function bash(script: string, cwd: string, env: Record<string, string>, detached = false): ChildProcess {
  return spawn('bash', ['-euo', 'pipefail', '-c', script], {
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? cwd, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached, // a process group of its own, so the server it starts is stopped with it
  });
}

let dir: string;
let port: number;
let server: ChildProcess | undefined;
const serverOutput = logWatch();

beforeAll(async () => {
  dir = freshCheckout();
  port = await freePort();
});

afterAll(async () => {
  if (server?.pid && server.exitCode === null) {
    const closed = new Promise((resolve) => server!.once('close', resolve));
    process.kill(-server.pid, 'SIGTERM');
    await closed;
  }
});

test('the quick start runs as written and ends with an access token', async () => {
  const [start, client, ...rest] = shellBlocks(section('Quick start'));
  expect(rest).toEqual([]);
  // block 1: `npm install` (this checkout's dependencies are linked in) and `npm start`, left running
  const startCommands = start
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter(Boolean);
  expect(startCommands).toEqual(['npm install', 'npm start']);
  // on a free port instead of 3000, so that tests run side by side
  server = bash('npm start', dir, { PORT: String(port) }, true);
  server.stdout!.on('data', (d: Buffer) => serverOutput.write(d.toString()));
  server.stderr!.on('data', (d: Buffer) => serverOutput.write(d.toString()));
  await serverOutput.until(() => serverOutput.text().includes('"msg":"listening"'), 60_000);
  expect(fs.existsSync(path.join(dir, 'keys', 'kek'))).toBe(true);

  // block 2, in a second terminal: literally, but for the port
  expect(client).toContain('http://localhost:3000/');
  const second = bash(client.replaceAll('http://localhost:3000/', `http://localhost:${port}/`), dir, {});
  let stdout = '';
  let stderr = '';
  second.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  second.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => second.once('close', resolve));
  expect({ code, stderr: code === 0 ? '' : stderr }).toEqual({ code: 0, stderr: '' });
  const answer = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
  expect(answer).toEqual({ access_token: expect.stringMatching(/^eyJ/), expires_in: 600, scope: 'payments:read', token_type: 'Bearer' });
  // the partner file the block wrote holds the secret the curl used
  expect(JSON.parse(fs.readFileSync(path.join(dir, 'partner.json'), 'utf8'))).toEqual(
    expect.objectContaining({ client_id: expect.any(String), client_secret: expect.any(String) }),
  );
}, 120_000);

test('every path of the Endpoints table answers on the running server (none is 404)', async () => {
  const rows = section('Endpoints')
    .split('\n')
    .filter((line) => line.startsWith('| `'));
  const paths = rows.flatMap((row) => [...row.split('|')[1].matchAll(/`(\/[^`\s]*)`/g)].map((match) => match[1]));
  expect(paths).toEqual(expect.arrayContaining(['/.well-known/openid-configuration', '/jwks', '/token', '/userinfo', '/']));
  const answers: Record<string, number> = {};
  for (const endpoint of paths) {
    const url = `http://127.0.0.1:${port}${endpoint}`;
    let res = await fetch(url, { redirect: 'manual' });
    // /token and its friends take POST only (a GET finds no route there)
    if (res.status === 404) res = await fetch(url, { method: 'POST', body: new URLSearchParams(), redirect: 'manual' });
    answers[endpoint] = res.status;
  }
  expect(Object.entries(answers).filter(([, status]) => status === 404)).toEqual([]);

  // and discovery names the same endpoints the table does
  const discovery = (await (await fetch(`http://127.0.0.1:${port}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
  const advertised = Object.entries(discovery)
    .filter(([key, value]) => (key.endsWith('_endpoint') || key === 'jwks_uri' ? typeof value === 'string' : false))
    .map(([, value]) => new URL(value as string).pathname);
  expect(paths).toEqual(expect.arrayContaining(advertised));
});
