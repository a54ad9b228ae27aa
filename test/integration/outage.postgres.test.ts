import { cli, instanceEnv, tempDir, TEST_PG_URL } from '../support/harness.ts';
import { basic, form, type Partner } from '../support/http.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import { postgresBinaries, startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres.ts';
import { introspect } from '../support/scale.ts';

// A PostgreSQL restart (what a failover looks like to a client) under a client-credentials
// loop, for JWT and opaque tokens: while the database is away every answer is 503 +
// Retry-After + `temporarily_unavailable`, never 500; /readyz says 503; the server recovers by
// itself; no acknowledged token is lost; every log line is JSON. The server restarted is a
// private one (initdb into a temp dir): the machine's shared PostgreSQL serves other tests.
// Part of the PostgreSQL suite (PORTCULLIS_TEST_PG, as `.ci/run` sets): its subject is the pg
// driver and pool, and the SQLite suite keeps its time budget.
const BIN = postgresBinaries();
const SKIP = !TEST_PG_URL
  ? 'set PORTCULLIS_TEST_PG to run it (PostgreSQL suite)'
  : !BIN
    ? 'no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)'
    : undefined;
if (SKIP) process.stdout.write(`\noutage.postgres skipped: ${SKIP}\n`);

const JWT_API = 'https://api.bank.test/jwt';
const OPAQUE_API = 'https://api.bank.test/opaque';
const WORKERS = 4;
/** How long PostgreSQL stays away each time: a failover's few seconds. */
const OUTAGE_MS = 3000;

type Answer = { kind: 'jwt' | 'opaque'; at: number; status: number; retryAfter: string | null; error?: string; token?: string };

let pg: PrivatePostgres;
let server: InProcessServer;
let partner: Partner;
const printed: string[] = [];

async function tokenRequest(kind: 'jwt' | 'opaque'): Promise<Answer> {
  const res = await fetch(`${server.local}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(partner.clientId, partner.clientSecret) },
    body: form({ grant_type: 'client_credentials', resource: kind === 'jwt' ? JWT_API : OPAQUE_API, scope: `${kind}:read` }),
  });
  const body = (await res.json()) as { access_token?: string; error?: string };
  return {
    kind,
    at: Date.now(),
    status: res.status,
    retryAfter: res.headers.get('retry-after'),
    error: body.error,
    token: body.access_token,
  };
}

async function readyz(): Promise<{ at: number; status: number }> {
  const res = await fetch(`${server.local}/readyz`);
  await res.arrayBuffer();
  return { at: Date.now(), status: res.status };
}

/** Requests in a loop until stopped; `until` waits for what the answers so far must show. */
function requestLoop() {
  const answers: Answer[] = [];
  const readiness: Array<{ at: number; status: number }> = [];
  const waiters = new Set<() => void>();
  let running = true;
  const record = <T>(list: T[], item: T) => {
    list.push(item);
    for (const waiter of waiters) waiter();
  };
  const loops = [
    ...Array.from({ length: WORKERS }, async (_, i) => {
      for (let n = i; running; n += 1) record(answers, await tokenRequest(n % 2 ? 'opaque' : 'jwt'));
    }),
    (async () => {
      while (running) record(readiness, await readyz());
    })(),
  ];
  return {
    answers,
    readiness,
    until(check: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
      if (check()) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`not seen within ${timeoutMs} ms: ${what}`));
        }, timeoutMs);
        const waiter = () => {
          if (!check()) return;
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve();
        };
        waiters.add(waiter);
      });
    },
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

(SKIP ? describe.skip : describe)('a PostgreSQL restart under client-credentials load', () => {
  // knex's default logger writes to console.log: anything there is a line outside the JSON log
  const consoleCalls: unknown[][] = [];
  const CONSOLE_METHODS = ['log', 'info', 'warn', 'error', 'debug'] as const;
  const originalConsole = CONSOLE_METHODS.map((method) => console[method].bind(console));

  beforeAll(async () => {
    pg = await startPrivatePostgres(BIN as string);
    // the per-client and per-address token limits off: one partner in a tight loop that ignores
    // Retry-After would otherwise be told 429 (the limits have their own tests)
    const env = instanceEnv(tempDir(), pg.url, { RATE_LIMIT_TOKEN_PER_CLIENT: 'off', RATE_LIMIT_TOKEN_PER_IP: 'off' });
    for (const method of CONSOLE_METHODS) console[method] = (...args: unknown[]) => void consoleCalls.push([method, ...args]);
    server = await startInProcess(env);
    await cli(env, 'resource', 'create', '--uri', JWT_API, '--scope', 'jwt:read', '--format', 'jwt');
    await cli(env, 'resource', 'create', '--uri', OPAQUE_API, '--scope', 'opaque:read', '--format', 'opaque');
    const created = await cli(env, 'partner', 'create', '--name', 'Acme Bank', '--scope', 'jwt:read opaque:read');
    partner = { clientId: created.json.client_id as string, clientSecret: created.json.client_secret as string };
  }, 120_000);

  afterAll(async () => {
    CONSOLE_METHODS.forEach((method, i) => (console[method] = originalConsole[i]));
    await server?.stop();
    await pg?.destroy();
    if (printed.length) process.stderr.write(`\n${printed.join('\n')}\n`);
  });

  test('503 + Retry-After + temporarily_unavailable while it is away, never 500; recovery by itself; no acknowledged token lost; JSON logs only', async () => {
    const loop = requestLoop();
    const okSince = (at: number, kind: Answer['kind']) => () => loop.answers.some((a) => a.at > at && a.kind === kind && a.status === 200);
    const refusedSince = (at: number, kind: Answer['kind']) => () =>
      loop.answers.filter((a) => a.at > at && a.kind === kind && a.status !== 200).length >= 5;
    const readySince = (at: number, status: number) => () => loop.readiness.some((r) => r.at > at && r.status === status);
    const outages: Array<{ mode: string; down: number; up: number; recoveredMs: number }> = [];
    const pages: Array<{ status: number; retryAfter: string | null; type: string | null; html: string }> = [];
    try {
      await loop.until(okSince(0, 'jwt'), 'a JWT token before the restart');
      await loop.until(okSince(0, 'opaque'), 'an opaque token before the restart');
      for (const mode of ['fast', 'immediate'] as const) {
        await pg.stop(mode);
        const down = Date.now();
        await loop.until(refusedSince(down, 'jwt'), `JWT requests refused (${mode} stop)`);
        await loop.until(refusedSince(down, 'opaque'), `opaque requests refused (${mode} stop)`);
        await loop.until(readySince(down, 503), `/readyz 503 (${mode} stop)`);
        // a person's browser arriving at /auth meanwhile gets a readable page, not a 500
        const page = await fetch(`${server.local}/auth?client_id=${partner.clientId}&response_type=code&scope=openid`, {
          headers: { accept: 'text/html' },
        });
        pages.push({
          status: page.status,
          retryAfter: page.headers.get('retry-after'),
          type: page.headers.get('content-type'),
          html: await page.text(),
        });
        await loop.until(() => Date.now() - down >= OUTAGE_MS, `${OUTAGE_MS} ms of outage`);
        await pg.start();
        const up = Date.now();
        await loop.until(() => okSince(up, 'jwt')() && okSince(up, 'opaque')() && readySince(up, 200)(), `recovery (${mode} stop)`);
        const recovered = Math.max(
          ...(['jwt', 'opaque'] as const).map(
            (kind) => loop.answers.find((a) => a.at > up && a.kind === kind && a.status === 200)?.at ?? up,
          ),
        );
        outages.push({ mode, down, up, recoveredMs: recovered - up });
      }
      const after = Date.now();
      await loop.until(() => loop.answers.filter((a) => a.at > after && a.status === 200).length >= 20, 'tokens after recovery');
    } finally {
      await loop.stop();
    }

    const { answers } = loop;
    const count = (check: (a: Answer) => boolean) => answers.filter(check).length;
    printed.push(
      `outage.postgres: ${answers.length} token requests, ${count((a) => a.status === 200)} × 200, ` +
        `${count((a) => a.status === 503)} × 503, ${count((a) => a.status === 500)} × 500, ` +
        `${count((a) => a.status !== 200 && a.status !== 503)} other; ` +
        outages.map((o) => `${o.mode} stop: down ${o.up - o.down} ms, back to 200 ${o.recoveredMs} ms after PostgreSQL was`).join('; '),
    );

    // never a 500; every refusal is the outage's answer
    const refusals = answers.filter((a) => a.status !== 200);
    const wrong = refusals.filter((a) => a.status !== 503 || a.error !== 'temporarily_unavailable' || !/^\d+$/.test(a.retryAfter ?? ''));
    expect(tally(wrong)).toEqual({});
    expect(count((a) => a.status === 503 && a.kind === 'jwt')).toBeGreaterThan(0);
    expect(count((a) => a.status === 503 && a.kind === 'opaque')).toBeGreaterThan(0);

    for (const page of pages) {
      expect(page).toEqual({
        status: 503,
        retryAfter: expect.stringMatching(/^\d+$/),
        type: expect.stringMatching(/^text\/html/),
        html: expect.stringContaining('temporarily_unavailable'),
      });
    }

    // every opaque token acknowledged (200), before, during or after, is still there
    const acknowledged = answers.filter((a) => a.kind === 'opaque' && a.status === 200).map((a) => a.token as string);
    const lost: string[] = [];
    for (const token of acknowledged) {
      if ((await introspect(server.local, partner, token)).active !== true) lost.push(token);
    }
    expect({ acknowledged: acknowledged.length, lost: lost.length }).toEqual({ acknowledged: acknowledged.length, lost: 0 });

    // /readyz: 503 while away, 200 after
    expect((await readyz()).status).toBe(200);

    // every line the server wrote is JSON, knex's and the driver's included; nothing on the console
    const text = server.logs();
    const notJson = text.split('\n').filter((line) => line.trim() && !isJson(line));
    expect(notJson).toEqual([]);
    expect(consoleCalls).toEqual([]);
    const messages = server.log.lines().map((line) => String(line.msg));
    expect(messages).toContain('database unavailable: answering 503 until it is back');
    expect(messages).toContain('database available again');
    expect(server.log.lines().filter((line) => line.level === 'error')).toEqual([]);
  }, 240_000);
});

/** Answers counted by status, error and Retry-After: a failure reads as one line per kind. */
function tally(answers: Answer[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const a of answers) {
    const key = `${a.status} ${a.error ?? '-'} retry-after=${a.retryAfter ?? 'none'}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

function isJson(line: string): boolean {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
}
