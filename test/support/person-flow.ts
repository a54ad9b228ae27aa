import { createHash, randomBytes } from 'node:crypto';
import { cli, createCodePartner, freshDatabaseUrl, instanceEnv, tempDir } from './harness.ts';
import { startInProcess } from './in-process.ts';
import { httpLogin } from './http-login.ts';
import { codeFor, createUser, secretOf } from './login.ts';
import { basic, form } from './http.ts';

// A partner app acting for a person: sign-in (password + TOTP + consent) over plain HTTP, then
// the token endpoint. Each call signs in a new person (a TOTP code is accepted once).

export const REDIRECT = 'http://127.0.0.1:9/callback'; // never reached: the login stops at the redirect
export const PASSWORD = 'correct horse battery staple';

/** A partner's credentials; no secret for a public client. */
export type App = Readonly<{ clientId: string; clientSecret?: string }>;

export type TokenAnswer = { status: number; body: Record<string, any> };

export async function registerApp(
  env: Record<string, string>,
  options: { name?: string; scope?: string; public?: boolean } = {},
): Promise<App> {
  return createCodePartner(env, REDIRECT, options);
}

let people = 0;

/** An authorization request for `app` (code flow, PKCE S256): its URL and the PKCE verifier. */
export function codeRequest(base: string, app: App, params: Record<string, string> = {}) {
  const verifier = randomBytes(32).toString('base64url');
  const url = new URL(
    `${base}/auth?${new URLSearchParams({
      client_id: app.clientId,
      response_type: 'code',
      redirect_uri: REDIRECT,
      scope: 'openid payments:read',
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
      ...params,
    })}`,
  );
  return { url, verifier };
}

/** Signs a new person in for `app` at `base`; returns the authorization code, its PKCE verifier and the person. */
export async function authorize(base: string, env: Record<string, string>, app: App, params: Record<string, string> = {}) {
  const username = `person${(people += 1)}-${randomBytes(3).toString('hex')}`;
  const created = await createUser(env, username, PASSWORD, '--with-totp');
  if (created.code !== 0) throw new Error(created.stderr);
  const totp = secretOf(created.json.totp_uri);
  const { code, verifier } = await signInAs(base, app, username, () => codeFor(totp), params);
  return { code, verifier, username, accountId: created.json.id as string };
}

/** Signs `username` in for `app` at `base` (password, then `code()`; consent when asked): the authorization code and its PKCE verifier. */
export async function signInAs(base: string, app: App, username: string, code: () => string, params: Record<string, string> = {}) {
  const { url: authorizationUrl, verifier } = codeRequest(base, app, params);
  const { callback } = await httpLogin({ authorizationUrl, redirectUri: REDIRECT, username, password: PASSWORD, code });
  const authorizationCode = callback.searchParams.get('code');
  if (!authorizationCode) throw new Error(`no code: ${callback.href}`);
  return { code: authorizationCode, verifier };
}

/** POST /token as `app` (client_secret_basic, or client_id alone for a public client). */
export async function tokenCall(base: string, app: App, fields: Record<string, string>): Promise<TokenAnswer> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (app.clientSecret) headers.authorization = basic(app.clientId, app.clientSecret);
  const body = app.clientSecret ? fields : { ...fields, client_id: app.clientId };
  const res = await fetch(`${base}/token`, { method: 'POST', headers, body: form(body) });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

/** Signs a person in and redeems the code: the token response. */
export async function personTokens(base: string, env: Record<string, string>, app: App, params: Record<string, string> = {}) {
  const { code, verifier, username, accountId } = await authorize(base, env, app, params);
  const tokens = await tokenCall(base, app, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier });
  if (tokens.status !== 200) throw new Error(`code exchange: ${tokens.status} ${JSON.stringify(tokens.body)}`);
  return { ...tokens.body, username, accountId } as {
    access_token: string;
    refresh_token: string;
    id_token: string;
    scope: string;
    username: string;
    accountId: string;
  };
}

/** POST /token/introspection as `caller`; the JSON answer (a non-200 throws). */
export async function introspectAs(base: string, caller: App, token: string): Promise<Record<string, unknown>> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (caller.clientSecret) headers.authorization = basic(caller.clientId, caller.clientSecret);
  const res = await fetch(`${base}/token/introspection`, {
    method: 'POST',
    headers,
    body: form(caller.clientSecret ? { token } : { token, client_id: caller.clientId }),
  });
  if (res.status !== 200) throw new Error(`introspection: ${res.status} ${await res.text()}`);
  return (await res.json()) as Record<string, unknown>;
}

/** A confidential partner (client_credentials) with its secret. */
export async function registerService(env: Record<string, string>, name: string, scope = 'payments:read'): Promise<App> {
  const created = await cli(env, 'partner', 'create', '--name', name, '--scope', scope);
  if (created.code !== 0) throw new Error(created.stderr);
  return { clientId: created.json.client_id, clientSecret: created.json.client_secret };
}

/**
 * A server in process with one opaque-token API (the default) introspected by its own credential:
 * where tests watch tokens die (suspend, delete, disable, revoke). Helpers bound to that server.
 */
export async function startWithIntrospectedApi(api: string) {
  const dir = tempDir();
  const server = await startInProcess(instanceEnv(dir, freshDatabaseUrl(dir), { LOG_LEVEL: 'warn' }));
  const { env } = server;
  await cli(env, 'resource', 'create', '--uri', api, '--scope', 'payments:read payments:write', '--format', 'opaque', '--default');
  const introspector = await registerService(env, 'Payments API');
  const assigned = await cli(env, 'resource', 'update', '--uri', api, '--introspector', introspector.clientId);
  if (assigned.code !== 0) throw new Error(assigned.stderr);
  return {
    server,
    env,
    introspector,
    clientCredentials: (partner: App, scope = 'payments:read') =>
      tokenCall(server.url, partner, { grant_type: 'client_credentials', scope }),
    refresh: (app: App, refreshToken: string) => tokenCall(server.url, app, { grant_type: 'refresh_token', refresh_token: refreshToken }),
    /** oidc_payloads rows of a partner or a person */
    rowsOf: async (column: 'client_id' | 'account_id', value: string) =>
      Number((await server.db('oidc_payloads').where(column, value).count({ n: '*' }))[0].n),
  };
}
