import { spawn } from 'node:child_process';
import path from 'node:path';
import { freePort, ROOT, tempDir } from '../support/harness.ts';
import { logWatch } from '../support/logs.ts';
import { startInstance } from '../support/process.ts';

// The process is the subject: what a first start prints, at a terminal and to a log collector.

const quote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;

test('at a terminal, the first start prints one short block: what it made, the URL, the next command', async () => {
  const dir = tempDir();
  const port = await freePort();
  const env = {
    DATABASE_URL: `sqlite:${path.join(dir, 'data', 'portcullis.sqlite')}`,
    KEYS_DIR: path.join(dir, 'keys'),
    PORT: String(port),
  };
  // script(1) runs the server on a pseudo-terminal: stdout.isTTY is true, as in a shell
  const child = spawn('script', ['-qec', `${quote(process.execPath)} ${quote(path.join(ROOT, 'src/main.ts'))}`, '/dev/null'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true, // its own process group: the server under script(1) is stopped with it
  });
  const output = logWatch();
  child.stdout.on('data', (d: Buffer) => output.write(d.toString().replace(/\r\n/g, '\n')));
  child.stderr.on('data', (d: Buffer) => output.write(d.toString()));
  try {
    await output.until(() => output.text().includes('partner create'));
    const text = output.text();
    const from = text.indexOf('Portcullis is running at');
    // one write: the JSON `listening` line may come before or after it, never inside
    const block = text.slice(from, text.indexOf('\n', text.indexOf('partner create', from)) + 1);
    expect(block).toContain(`Portcullis is running at http://localhost:${port}\n`);
    expect(block).toContain(`  database created: ${path.join(dir, 'data', 'portcullis.sqlite')}\n`);
    expect(block).toContain(`  key-encryption key created: ${path.join(dir, 'keys', 'kek')} (back it up apart from the database`);
    expect(block).toMatch(/ {2}signing key created: [\w-]+ \(ES256/);
    expect(block).toContain(`  discovery: http://localhost:${port}/.well-known/openid-configuration\n`);
    expect(block).toContain(
      '  npx portcullis resource create --uri https://api.example.com/payments --scope "payments:read payments:write" --default\n',
    );
    // the block is text, not JSON; the other lines stay JSON
    expect(block.split('\n').filter((line) => line.startsWith('{'))).toEqual([]);
  } finally {
    if (child.pid) process.kill(-child.pid, 'SIGTERM');
    await new Promise((resolve) => child.once('close', resolve));
  }
});

test('to a pipe, the same facts are JSON lines; a second start made nothing; GET / and the favicon answer', async () => {
  const dir = tempDir();
  const env = { DATABASE_URL: `sqlite:${path.join(dir, 'portcullis.sqlite')}`, KEYS_DIR: path.join(dir, 'keys') };
  const first = await startInstance(env);
  try {
    await first.log.until(() => first.logs().includes('no API registered yet'));
    const lines = first.log.lines();
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ level: 'info', msg: 'database created', database: path.join(dir, 'portcullis.sqlite') }),
        expect.objectContaining({
          level: 'warn',
          msg: expect.stringContaining('back it up apart from the database'),
          path: path.join(dir, 'keys', 'kek'),
        }),
        expect.objectContaining({ level: 'info', msg: 'signing key created', kid: expect.any(String) }),
        expect.objectContaining({
          msg: expect.stringContaining('no API registered yet'),
          next: expect.arrayContaining([expect.stringContaining('npx portcullis resource create')]),
        }),
      ]),
    );
    expect(
      first
        .logs()
        .split('\n')
        .filter((line) => line.trim() && !line.startsWith('{')),
    ).toEqual([]);

    const home = await fetch(`${first.local}/`);
    expect(home.status).toBe(200);
    expect(home.headers.get('content-type')).toMatch(/^text\/html/);
    expect(home.headers.get('content-security-policy')).toContain("default-src 'none'");
    const page = await home.text();
    expect(page).toContain('href="/.well-known/openid-configuration"');
    expect(page).toContain('href="/jwks"');
    expect(page).toContain('href="/account"');
    expect(page).toContain('href="/admin"');

    const icon = await fetch(`${first.local}/favicon.ico`);
    expect(icon.status).toBe(200);
    expect(icon.headers.get('content-type')).toBe('image/x-icon');
    expect(icon.headers.get('cache-control')).toMatch(/max-age=\d+/);
    expect([...new Uint8Array(await icon.arrayBuffer()).slice(0, 4)]).toEqual([0, 0, 1, 0]); // ICO header
  } finally {
    await first.stop();
  }

  const second = await startInstance(env);
  try {
    await second.log.until(() => second.logs().includes('"msg":"listening"'));
    expect(second.logs()).not.toMatch(/created/);
  } finally {
    await second.stop();
  }
});
