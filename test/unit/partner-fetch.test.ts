import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { JWKS_URI_MAX_AGE_SECONDS, partnerFetch } from '../../src/oidc/partner-fetch.ts';

// How long oidc-provider keeps a partner's keys is what our fetch tells it (issue 11): as the
// partner's Cache-Control or Expires say, never longer than 5 minutes.

let headers: Record<string, string> = {};
let server: http.Server;
let url: string;

beforeAll(async () => {
  server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', ...headers });
    res.end('{"keys":[]}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const now = Date.parse('2026-11-29T12:00:00Z');

test.each([
  [{ 'cache-control': 'public, max-age=86400' }, `max-age=${JWKS_URI_MAX_AGE_SECONDS}`],
  [{ 'cache-control': 'max-age=120' }, 'max-age=120'],
  [{ expires: new Date(now + 90_000).toUTCString() }, 'max-age=90'],
  [{ expires: new Date(now + 86_400_000).toUTCString() }, `max-age=${JWKS_URI_MAX_AGE_SECONDS}`],
  [{}, null],
])('%j → %s (and no Expires)', async (sent, kept) => {
  headers = sent;
  const response = await partnerFetch(url, { dispatcher: 'removed for loopback' } as RequestInit & { dispatcher?: unknown }, now);
  expect(response.status).toBe(200);
  expect(response.headers.get('cache-control')).toBe(kept);
  expect(response.headers.get('expires')).toBeNull();
  expect(await response.json()).toEqual({ keys: [] });
});
