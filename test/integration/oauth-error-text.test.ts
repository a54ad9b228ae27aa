import { loadConfig } from '../../src/config/config.ts';
import { basicCredentialsProblem, cleanErrorDescription } from '../../src/http/oauth-error-text.ts';
import { createLogger } from '../../src/log/logger.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { cli, freshDatabaseUrl, instanceEnv, tempDir } from '../support/harness.ts';

let server: RunningServer;
let env: Record<string, string>;
let partner: { client_id: string; client_secret: string };

beforeAll(async () => {
  const dir = tempDir();
  env = instanceEnv(dir, freshDatabaseUrl(dir), { PORT: '0', LOG_LEVEL: 'silent' });
  server = await startServer(loadConfig(env), createLogger('silent'));
  await cli(env, 'resource', 'create', '--uri', 'https://api.bank.test/payments', '--scope', 'payments:read', '--default');
  partner = (await cli(env, 'partner', 'create', '--name', 'Acme', '--scope', 'payments:read')).json;
});

afterAll(async () => {
  await server?.close();
});

async function token(fields: Record<string, string>) {
  const res = await fetch(`${server.url}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${partner.client_id}:${partner.client_secret}`).toString('base64')}`,
    },
    body: new URLSearchParams(fields),
  });
  return { status: res.status, body: (await res.json()) as { error: string; error_description?: string } };
}

describe('error_description never echoes raw request input', () => {
  test('a resource URI with markup and quotes comes back within the RFC 6749 charset', async () => {
    const { status, body } = await token({
      grant_type: 'client_credentials',
      scope: 'payments:read',
      resource: 'https://evil.test/<script>"x"\\é',
    });
    expect(status).toBe(400);
    expect(body.error).toBe('invalid_target');
    expect(body.error_description).toBeDefined();
    expect(body.error_description).toMatch(/^[\x20\x21\x23-\x3B\x3D\x3F-\x5B\x5D-\x7E]*$/);
    expect(body.error_description).not.toContain('<script>');
  });

  test('the cleaner keeps plain text, replaces the rest, bounds the length', () => {
    expect(cleanErrorDescription('scope "a" is <b>bad</b>\n')).toBe('scope ?a? is ?b?bad?/b??');
    expect(cleanErrorDescription('plain words: fine (ok)')).toBe('plain words: fine (ok)');
    expect(cleanErrorDescription('x'.repeat(1000))).toHaveLength(300);
  });
});

describe('a refused Authorization header says what was wrong with it', () => {
  async function tokenWith(authorization: string) {
    const res = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'payments:read' }),
    });
    return { status: res.status, body: (await res.json()) as { error: string; error_description?: string } };
  }
  const b64 = (text: string) => Buffer.from(text).toString('base64');

  test.each([
    ['an empty header', '', 'invalid_request', 'the Authorization header is not valid Basic credentials: it is empty'],
    ['another scheme', 'Bearer abc', 'invalid_request', 'not valid Basic credentials: expected ?Basic ? followed by base64'],
    ['garbled base64', 'Basic %%%not-base64', 'invalid_request', 'not valid Basic credentials: the part after ?Basic ? is not base64'],
    ['no colon', `Basic ${b64('ptn_abcdef')}`, 'invalid_request', 'not valid Basic credentials: the decoded value has no ?:? between'],
    // curl -u "$CLIENT_ID:$CLIENT_SECRET" with neither variable set
    ['empty credentials', `Basic ${b64(':')}`, 'invalid_request', 'both client_id and client_secret are empty'],
    ['an empty secret', `Basic ${b64('ptn_abcdef:')}`, 'invalid_request', 'the client_secret (after the ?:?) is empty'],
    ['bad percent-encoding', `Basic ${b64('ptn_%zz:x')}`, 'invalid_request', 'not properly form-encoded'],
    ['an unknown client', `Basic ${b64('ptn_nobody:some-secret')}`, 'invalid_client', 'no active partner has this client_id'],
  ])('%s', async (_, header, error, description) => {
    const { status, body } = await tokenWith(header);
    expect(status).toBe(error === 'invalid_client' ? 401 : 400);
    expect(body.error).toBe(error);
    expect(body.error_description).toContain(description);
  });

  test('a wrong secret for a known partner', async () => {
    const { status, body } = await tokenWith(`Basic ${b64(`${partner.client_id}:wrong`)}`);
    expect(status).toBe(401);
    expect(body).toEqual({ error: 'invalid_client', error_description: expect.stringContaining('the client_secret does not match') });
  });

  test('well-formed credentials have no problem', () => {
    expect(basicCredentialsProblem(`Basic ${b64('a%3Ab:c d')}`)).toBeUndefined();
  });
});
