import net from 'node:net';
import { cli, freshDatabaseUrl, instanceEnv, tempDir } from '../support/harness.ts';
import { basic, form, type Partner } from '../support/http.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import { startInstance } from '../support/process.ts';
import { introspect, issueToken } from '../support/scale.ts';

// Operations on one instance (and one WORKERS=2 cluster): metrics, logs, draining shutdown.
// Runs on SQLite, or on PostgreSQL with PORTCULLIS_TEST_PG. Metrics and logs in process; the
// SIGTERM drain and the cluster as real processes (the process is what they test).

const METRICS_TOKEN = 'metrics-token-for-tests-0123456789';

let env: Record<string, string>;
let partner: Partner;

beforeAll(async () => {
  const dir = tempDir();
  env = instanceEnv(dir, freshDatabaseUrl(dir));
  await cli(
    env,
    'resource',
    'create',
    '--uri',
    'https://api.bank.test/payments',
    '--scope',
    'payments:read',
    '--format',
    'opaque',
    '--default',
  );
  const created = await cli(env, 'partner', 'create', '--name', 'Acme Bank', '--scope', 'payments:read');
  partner = { clientId: created.json.client_id, clientSecret: created.json.client_secret };
}, 60_000);

describe('one instance', () => {
  let server: InProcessServer;
  beforeAll(async () => {
    server = await startInProcess(env);
  });
  afterAll(async () => {
    await server?.stop();
  });

  test('/metrics: requests by route and status, tokens by grant type and partner, key age, pool, event-loop lag', async () => {
    for (let i = 0; i < 3; i++) await issueToken(server.local, partner);
    await fetch(`${server.local}/token`, { method: 'POST', headers: { authorization: basic(partner.clientId, 'wrong') }, body: '' });
    const res = await fetch(`${server.local}/metrics`);
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

  test("every request gets a request id (the caller's when well formed), echoed and in its one log line; no secret reaches the log", async () => {
    const given = await fetch(`${server.local}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: basic(partner.clientId, partner.clientSecret),
        'x-request-id': 'trace-abc.123',
      },
      body: form({ grant_type: 'client_credentials', scope: 'payments:read' }),
    });
    expect(given.headers.get('x-request-id')).toBe('trace-abc.123');
    const token = ((await given.json()) as { access_token: string }).access_token;
    const made = await fetch(`${server.local}/jwks`, { headers: { 'x-request-id': 'no spaces allowed <here>' } });
    expect(made.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);

    await server.log.until(() => server.log.lines().some((line) => line.request_id === made.headers.get('x-request-id')));
    const line = server.log.lines().find((entry) => entry.request_id === 'trace-abc.123');
    expect(line).toEqual(
      expect.objectContaining({
        level: 'info',
        msg: 'request',
        method: 'POST',
        path: '/token',
        route: 'token',
        status: 200,
        client_id: partner.clientId,
      }),
    );
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
  /** resolves once `check` holds, checked as the socket receives data */
  const until = (check: () => boolean, on: net.Socket) =>
    new Promise<void>((resolve) => {
      const test = () => {
        if (!check()) return;
        on.off('data', test);
        resolve();
      };
      on.on('data', test);
      test();
    });
  const body = form({ grant_type: 'client_credentials', scope: 'payments:read' });
  // a client that sends its request body slowly: the request is in flight when SIGTERM comes
  const socket = net.connect(port, '127.0.0.1');
  let response = '';
  socket.on('data', (chunk: Buffer) => {
    response += chunk.toString('utf8');
  });
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write(
    [
      'POST /token HTTP/1.1',
      `Host: 127.0.0.1:${port}`,
      'Content-Type: application/x-www-form-urlencoded',
      `Authorization: ${basic(partner.clientId, partner.clientSecret)}`,
      `Content-Length: ${body.length}`,
      'Expect: 100-continue', // the server's "100 Continue" says it has the request: in flight
      '',
      '',
    ].join('\r\n'),
  );
  socket.write(body.slice(0, 10));
  await until(() => response.startsWith('HTTP/1.1 100 Continue'), socket);

  const since = server.logs().length;
  const exit = server.stop('SIGTERM');
  await server.log.next(/"msg":"shutting down"/, { since }); // logged as it stops listening
  // no longer accepting
  await expect(fetch(`${server.local}/healthz`)).rejects.toThrow();
  expect(server.child.exitCode).toBeNull(); // still draining

  socket.write(body.slice(10));
  await closed; // the server closes the connection after the response
  const answer = response.slice(response.indexOf('\r\n\r\n') + 4); // after the 100 Continue
  expect(answer).toMatch(/^HTTP\/1\.1 200 OK/);
  expect(answer.toLowerCase()).toContain('connection: close');
  const token = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).access_token as string;
  expect(await exit).toBe(0);
  expect(server.logs()).toMatch(/"msg":"stopped"/);

  // the token it issued while draining was stored before the pool closed
  const other = await startInProcess(env);
  try {
    expect(await introspect(other.local, partner, token)).toEqual(expect.objectContaining({ active: true }));
  } finally {
    await other.stop();
  }
}, 60_000);

test('WORKERS=2: two processes share the port, a killed worker is replaced, /metrics adds the workers up, SIGTERM stops all', async () => {
  const cluster = await startInstance({ ...env, WORKERS: '2', METRICS_TOKEN }, { timeoutMs: 40_000 });
  try {
    const listening = () => cluster.log.lines().filter((line) => line.msg === 'listening');
    await cluster.log.until(() => listening().length === 2, 20_000);
    const pids = listening().map((line) => line.pid as number);
    expect(new Set(pids).size).toBe(2);
    expect(pids).not.toContain(cluster.child.pid);

    for (let i = 0; i < 10; i++) await issueToken(cluster.local, partner);

    process.kill(pids[0], 'SIGKILL');
    await cluster.log.until(() => listening().length === 3, 20_000);
    const replacement = listening()[2].pid as number;
    expect(pids).not.toContain(replacement);
    expect(cluster.log.lines().some((line) => line.msg === 'worker died; starting a new one' && line.worker_pid === pids[0])).toBe(true);

    // served throughout by whichever workers are alive
    for (let i = 0; i < 10; i++) await issueToken(cluster.local, partner);

    expect((await fetch(`${cluster.local}/metrics`)).status).toBe(401);
    const text = await (await fetch(`${cluster.local}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
    expect(text).toContain('portcullis_worker_restarts_total 1');
    expect(text).toContain('portcullis_workers 2');
    // the two live workers' counts added up (the killed worker's counts died with it)
    const issued = Number(/portcullis_tokens_issued_total\{[^}]*\} (\d+)/.exec(text)?.[1]);
    expect(issued).toBeGreaterThanOrEqual(10);
    expect(text.match(/^# TYPE portcullis_tokens_issued_total counter$/gm)).toHaveLength(1);
  } finally {
    expect(await cluster.stop('SIGTERM')).toBe(0);
  }
  expect(cluster.log.lines().filter((line) => line.msg === 'stopped')).toHaveLength(2);
}, 90_000);
