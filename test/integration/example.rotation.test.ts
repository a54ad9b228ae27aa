import { spawn, type ChildProcess } from 'node:child_process';
import { freePort, freshDatabaseUrl, instanceEnv, ROOT, seedPartner, tempDir } from '../support/harness.ts';
import type { SeededPartner } from '../support/http.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import { basic, form } from '../support/http.ts';
import { FAST_KEYS, kidOf } from '../support/keys.support.ts';
import { call, connectMqtt, openEvents } from '../support/payments-api.ts';

// The payments example started as a user starts it (`npm run example:payments`, a process),
// verifying a steady stream of tokens over HTTP, WebSocket and MQTT while Portcullis rotates its
// signing keys every 4 seconds: not one valid token may be refused. And a bad setting is one line
// and exit code 1.

let server: InProcessServer;
let partner: SeededPartner;

beforeAll(async () => {
  const dir = tempDir();
  server = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir), { ...FAST_KEYS, LOG_LEVEL: 'warn' }));
  partner = await seedPartner(server.env, { scopes: 'accounts:read payments:read payments:write', allowed: 'accounts:read payments:read' });
});

afterAll(async () => {
  await server?.stop();
});

type Started = { child: ChildProcess; output: () => string; exited: Promise<number | null> };

function npmRun(env: Record<string, string>): Started {
  // its own process group: npm and the node it starts are stopped together
  const child = spawn('npm', ['run', '--silent', 'example:payments'], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout.on('data', (data: Buffer) => (output += data.toString()));
  child.stderr.on('data', (data: Buffer) => (output += data.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

test('a bad setting: one line on stderr, exit code 1', async () => {
  const started = npmRun({ PORTCULLIS_ISSUER: 'http://auth.example.com', API_AUDIENCE: 'https://api.bank.test/payments' });
  expect(await started.exited).toBe(1);
  expect(started.output()).toBe(
    'payments-api: PORTCULLIS_ISSUER must be https (http only for localhost), not "http://auth.example.com/"\n',
  );
  const missing = npmRun({ PORTCULLIS_ISSUER: '', API_AUDIENCE: '' });
  expect(await missing.exited).toBe(1);
  expect(missing.output()).toMatch(/^payments-api: PORTCULLIS_ISSUER is required \(.*\)\n$/);
});

test('keys rotating every 4 s: HTTP, WebSocket and MQTT verify a steady stream of tokens with no false refusal', async () => {
  const [port, mqttPort] = [await freePort(), await freePort()];
  const started = npmRun({ PORT: String(port), MQTT_PORT: String(mqttPort), PORTCULLIS_ISSUER: server.url, API_AUDIENCE: partner.uri });
  try {
    for (let i = 0; i < 300 && !started.output().includes('"msg":"listening"'); i += 1)
      await new Promise((resolve) => setTimeout(resolve, 50));
    expect(started.output()).toContain(`"url":"http://localhost:${port}"`);
    const api = { url: `http://localhost:${port}`, port, mqttPort, close: async () => undefined };

    const counts = { tokens: 0, http: 0, websocket: 0, mqtt: 0, older: 0 };
    const refusals: string[] = [];
    const kids = new Set<string>();
    const recent: Array<{ token: string; at: number }> = [];
    const deadline = Date.now() + 25_000;
    // until three keys have signed (two rotations seen in the tokens themselves), 25 s at most
    while (kids.size < 3 && Date.now() < deadline) {
      const issued = await fetch(`${server.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(partner.clientId, partner.clientSecret) },
        body: form({ grant_type: 'client_credentials', scope: 'accounts:read payments:read' }),
      });
      const token = ((await issued.json()) as { access_token?: string }).access_token;
      if (!token) throw new Error(`token endpoint: ${issued.status}`);
      counts.tokens += 1;
      kids.add(kidOf(token));
      const accounts = await call(api, 'GET', '/accounts', `Bearer ${token}`);
      if (accounts.status === 200) counts.http += 1;
      else refusals.push(`http ${kidOf(token)}: ${JSON.stringify(accounts.body)}`);
      // a token of about a second ago (perhaps of the key just retired) still verifies
      const older = recent.find((item) => Date.now() - item.at >= 1000);
      while (recent.length && Date.now() - recent[0].at >= 1000) recent.shift();
      recent.push({ token, at: Date.now() });
      if (older) {
        const again = await call(api, 'GET', '/accounts', `Bearer ${older.token}`);
        if (again.status === 200) counts.older += 1;
        else refusals.push(`older ${kidOf(older.token)}: ${JSON.stringify(again.body)}`);
      }
      const opened = await openEvents(api, { authorization: `Bearer ${token}` });
      if ('socket' in opened) {
        counts.websocket += 1;
        opened.socket.ws.close();
      } else refusals.push(`websocket ${kidOf(token)}: ${JSON.stringify(opened.refused.body)}`);
      const connected = await connectMqtt(api, partner.clientId, token);
      if ('client' in connected) {
        counts.mqtt += 1;
        await connected.client.endAsync();
      } else refusals.push(`mqtt ${kidOf(token)}: CONNACK ${connected.code}`);
    }
    console.log(`payments example across ${kids.size} signing keys: ${JSON.stringify(counts)}, refused ${refusals.length}`);
    expect(refusals).toEqual([]);
    expect(kids.size).toBe(3);
    expect(counts.tokens).toBeGreaterThan(20);
  } finally {
    process.kill(-started.child.pid!, 'SIGTERM');
    await started.exited;
  }
}, 40_000);
