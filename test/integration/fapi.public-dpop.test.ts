import type { webcrypto } from 'node:crypto';
import * as jose from 'jose';
import { cli, freshDatabaseUrl, instanceEnv, tempDir, TEST_PG_URL } from '../support/harness.ts';
import { startInProcess, type InProcessServer } from '../support/in-process.ts';
import { authorize, REDIRECT, registerApp, type App } from '../support/person-flow.ts';
import { dpopProof, nonceFor, post } from '../support/fapi.ts';

// A public client (an app on a phone, no secret) that uses DPoP: its refresh token is bound to
// the key it first used (issue 11), so a stolen refresh token is useless without the key; its
// access tokens carry cnf.jkt. A baseline partner may use DPoP without being registered for it.

const ENGINE = TEST_PG_URL ? 'postgres' : 'sqlite';

let server: InProcessServer;
let app: App;

beforeAll(async () => {
  const dir = tempDir();
  server = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir), { LOG_LEVEL: 'warn' }));
  await cli(server.env, 'resource', 'create', '--uri', 'https://api.bank.test/payments', '--scope', 'payments:read', '--default');
  app = await registerApp(server.env, { public: true, scope: 'payments:read' });
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

/** A token request with a DPoP proof of `keyPair`, after getting the server's nonce. */
async function withProof(keyPair: webcrypto.CryptoKeyPair, fields: Record<string, string>) {
  const url = `${server.url}/token`;
  const nonce = await nonceFor(url, keyPair, () =>
    Promise.resolve({ ...fields, client_id: app.clientId, grant_type: 'refresh_token', refresh_token: 'probe' }),
  );
  return post(url, { ...fields, client_id: app.clientId }, { dpop: await dpopProof(keyPair, { htm: 'POST', htu: url, nonce }) });
}

test(`a public client's refresh token is bound to its DPoP key (${ENGINE})`, async () => {
  const key = await jose.generateKeyPair('ES256', { extractable: true });
  const other = await jose.generateKeyPair('ES256', { extractable: true });
  const { code, verifier } = await authorize(server.url, server.env, app);
  const tokens = await withProof(key, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier });
  expect(tokens.status).toBe(200);
  expect(tokens.body.token_type).toBe('DPoP');
  const jkt = await jose.calculateJwkThumbprint(await jose.exportJWK(key.publicKey));
  expect(jose.decodeJwt(tokens.body.access_token as string).cnf).toEqual({ jkt });

  const refresh = { grant_type: 'refresh_token', refresh_token: tokens.body.refresh_token as string };
  const stolen = await withProof(other, refresh);
  expect(stolen.status).toBe(400);
  expect(stolen.body.error).toBe('invalid_grant');
  const bare = await post(`${server.url}/token`, { ...refresh, client_id: app.clientId });
  expect(bare.body.error).toBe('invalid_grant');

  const owner = await withProof(key, refresh);
  expect(owner.status).toBe(200);
  expect(jose.decodeJwt(owner.body.access_token as string).cnf).toEqual({ jkt });
});
