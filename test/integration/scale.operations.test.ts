import net from 'node:net';
import { cli, freshDatabaseUrl, instanceEnv, startInstance, tempDir, type Instance } from '../support/harness.ts';
import { basic, form, introspect, issueToken, type Partner } from '../support/scale.ts';

// Operations on one instance (and one WORKERS=2 cluster): metrics, logs, draining shutdown.
// Runs on SQLite, or on PostgreSQL with PORTCULLIS_TEST_PG.

const METRICS_TOKEN = 'metrics-token-for-tests-0123456789';

let env: Record<string, string>;
let partner: Partner;

beforeAll(async () => {
  const dir = tempDir();
  env = instanceEnv(dir, freshDatabaseUrl(dir));
  await cli(env, 'resource', 'create', '--uri', 'https://api.bank.test/payments', '--scope', 'payments:read', '--format', 'opaque', '--default');
  const created = await cli(env, 'partner', 'create', '--name', 'Acme Bank', '--scope', 'payments:read');
  partner = { clientId: created.json.client_id, clientSecret: created.json.client_secret };
}, 60_000);

const local = (instance: Instance) => `http://127.0.0.1:${instance.env.PORT}`;

async function waitFor(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return check();
}

function logLines(instance: Instance): Record<string, any>[] {
  return instance.logs().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line));
}

describe('one instance', () => {
  let server: Instance;
  beforeAll(async () => {
    server = await startInstance(env);
  });
  afterAll(async () => {
    await server?.stop();
  });

  test('/metrics: requests by route and status, tokens by grant type and partner, key age, pool, event-loop lag', async () => {
    for (let i = 0; i < 3; i++) await issueToken(local(server), partner);
    await fetch(`${local(server)}/token`, { method: 'POST', headers: { authorization: basic(partner.clientId, 'wrong') }, body: '' });
    const res = await fetch(`${local(server)}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain('portcullis_http_requests_total{route="token",method="POST",status="200"} 3');
    expect(text).toMatch(/portcullis_http_requests_total\{route="token",method="POST",status="4\d\d"\} 1/);
    expect(text).toContain(`portcullis_tokens_issued_total{grant_type="client_credentials",client_id="${partner.clientId}"} 3`);
    expect(text).toMatch(/portcullis_signing_key_age_seconds \d/);
    expect(text).toMatch(/portcullis_db_pool_connections\{state="used"\} \d/);
    expect(text).toMatch(/nodejs_eventloop_lag_seconds \d/);
    expect(text).toContain('# TYPE portcullis_login_lockouts_total counter');
    expect(text).not.toContain(partner.clientSecret);
  });

  test('every request gets a request id (the caller\'s when well formed), echoed and in its one log line; no secret reaches the log', async () => {
    const given = await fetch(`${local(server)}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(partner.clientId, partner.clientSecret), 'x-request-id': 'trace-abc.123' },
      body: form({ grant_type: 'client_credentials', scope: 'payments:read' }),
    });
    expect(given.headers.get('x-request-id')).toBe('trace-abc.123');
    const token = ((await given.json()) as { access_token: string }).access_token;
    const made = await fetch(`${local(server)}/jwks`, { headers: { 'x-request-id': 'no spaces allowed <here>' } });
    expect(made.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);

    expect(await waitFor(() => logLines(server).some((line) => line.request_id === made.headers.get('x-request-id')), 2000)).toBe(true);
    const line = logLines(server).find((entry) => entry.request_id === 'trace-abc.123');
    expect(line).toEqual(expect.objectContaining({ level: 'info', msg: 'request', method: 'POST', path: '/token', route: 'token', status: 200, client_id: partner.clientId }));
    expect(typeof line!.duration_ms).toBe('number');
    expect(typeof line!.time).toBe('string');
    const logs = server.logs();
    expect(logs).not.toContain(partner.clientSecret);
    expect(logs).not.toContain(token);
    expect(logs).not.toMatch(/authorization|cookie/i);
  });
});

test('SIGTERM: stops accepting, finishes the request in flight, closes the pool, exits 0', async () => {
  const server = await startInstance(env);
  const port = Number(server.env.PORT);
  const body = form({ grant_type: 'client_credentials', scope: 'payments:read' });
  // a client that sends its request body slowly: the request is in flight when SIGTERM comes
  const socket = net.connect(port, '127.0.0.1');
  let response = '';
  socket.on('data', (chunk) => { response += chunk; });
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write([
    'POST /token HTTP/1.1',
    `Host: 127.0.0.1:${port}`,
    'Content-Type: application/x-www-form-urlencoded',
    `Authorization: ${basic(partner.clientId, partner.clientSecret)}`,
    `Content-Length: ${body.length}`,
    '', '',
  ].join('\r\n'));
  socket.write(body.slice(0, 10));
  await new Promise((resolve) => setTimeout(resolve, 300));

  const exit = server.stop('SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 300));
  // no longer accepting
  await expect(fetch(`${local(server)}/healthz`)).rejects.toThrow();
  expect(server.child.exitCode).toBeNull(); // still draining

  socket.write(body.slice(10));
  await closed; // the server closes the connection after the response
  expect(response).toMatch(/^HTTP\/1\.1 200 OK/);
  expect(response.toLowerCase()).toContain('connection: close');
  const token = JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4)).access_token as string;
  expect(await exit).toBe(0);
  expect(server.logs()).toMatch(/"msg":"stopped"/);

  // the token it issued while draining was stored before the pool closed
  const other = await startInstance(env);
  try {
    expect(await introspect(local(other), partner, token)).toEqual(expect.objectContaining({ active: true }));
  } finally {
    await other.stop();
  }
}, 60_000);

test('WORKERS=2: two processes share the port, a killed worker is replaced, /metrics adds the workers up, SIGTERM stops all', async () => {
  const cluster = await startInstance({ ...env, WORKERS: '2', METRICS_TOKEN }, { timeoutMs: 40_000 });
  try {
    const listening = () => logLines(cluster).filter((line) => line.msg === 'listening');
    expect(await waitFor(() => listening().length === 2, 20_000)).toBe(true);
    const pids = listening().map((line) => line.pid as number);
    expect(new Set(pids).size).toBe(2);
    expect(pids).not.toContain(cluster.child.pid);

    for (let i = 0; i < 10; i++) await issueToken(local(cluster), partner);

    process.kill(pids[0], 'SIGKILL');
    expect(await waitFor(() => listening().length === 3, 20_000)).toBe(true);
    const replacement = listening()[2].pid as number;
    expect(pids).not.toContain(replacement);
    expect(logLines(cluster).some((line) => line.msg === 'worker died; starting a new one' && line.worker_pid === pids[0])).toBe(true);

    // served throughout by whichever workers are alive
    for (let i = 0; i < 10; i++) await issueToken(local(cluster), partner);

    expect((await fetch(`${local(cluster)}/metrics`)).status).toBe(401);
    const text = await (await fetch(`${local(cluster)}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
    expect(text).toContain('portcullis_worker_restarts_total 1');
    expect(text).toContain('portcullis_workers 2');
    // the two live workers' counts added up (the killed worker's counts died with it)
    const issued = Number(/portcullis_tokens_issued_total\{[^}]*\} (\d+)/.exec(text)?.[1]);
    expect(issued).toBeGreaterThanOrEqual(10);
    expect(text.match(/^# TYPE portcullis_tokens_issued_total counter$/gm)).toHaveLength(1);
  } finally {
    expect(await cluster.stop('SIGTERM')).toBe(0);
  }
  expect(logLines(cluster).filter((line) => line.msg === 'stopped')).toHaveLength(2);
}, 90_000);
