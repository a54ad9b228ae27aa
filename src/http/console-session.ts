import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import Router from '@koa/router';
import { decodeJwt, EncryptJWT, jwtDecrypt, type JWTPayload } from 'jose';
import type { Context, Middleware, Next } from 'koa';
import { inject } from 'light-my-request';
import type { AdapterPayload, Grant, KoaContextWithOIDC } from 'oidc-provider';
import type { AuditBy } from '../audit/audit.service.ts';
import type { User } from '../accounts/user.store.ts';
import { clientAddress } from '../limits/source-address.ts';
import type { Logger } from '../log/logger.ts';
import { AMR } from '../shared/auth-context.ts';
import { constantTimeEqual } from '../shared/constant-time.ts';
import { AppError } from '../shared/errors.ts';
import { renderPage } from '../shared/views.ts';
import { readForm, type Form } from './form-body.ts';
import { requestIdOf } from './request-log.middleware.ts';

/**
 * The client_id of Portcullis's own consoles (`/admin`, `/account`): a public client (PKCE, no
 * secret, as Keycloak's own consoles are) whose redirect URIs are this issuer's callbacks only.
 * Not a partner: it has no row, cannot be suspended or deleted, and never gets a refresh token.
 */
export const CONSOLE_CLIENT_ID = 'portcullis-console';

/** The two surfaces that sign people in through the authorization-code flow. */
const CONSOLE_BASES = ['/admin', '/account'] as const;
type Base = (typeof CONSOLE_BASES)[number];

/** What oidc-provider's Client model gets for the console (the adapter's `find` for `Client`). */
export function consoleClientMetadata(issuer: string, brandName: string): AdapterPayload {
  return {
    client_id: CONSOLE_CLIENT_ID,
    client_name: `${brandName} console`,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: CONSOLE_BASES.map((base) => `${issuer}${base}/callback`),
    post_logout_redirect_uris: CONSOLE_BASES.map((base) => `${issuer}${base}/signed-out`),
    token_endpoint_auth_method: 'none',
    partner_scopes: {},
    partner_profile: 'baseline',
  };
}

/**
 * The console is first party: the person is never asked to consent to it. Its grant (the
 * `openid` scope) is made or extended here, as oidc-provider's documented "skip consent" recipe
 * does; every other client's grant is what `load` (the person's remembered consent) says.
 */
export function withConsoleGrant(load: (ctx: KoaContextWithOIDC) => Promise<Grant | undefined>) {
  return async function loadExistingGrant(ctx: KoaContextWithOIDC): Promise<Grant | undefined> {
    const existing = await load(ctx);
    const { client, session, provider } = ctx.oidc;
    if (client?.clientId !== CONSOLE_CLIENT_ID || !session?.accountId) return existing;
    const grant = existing ?? new provider.Grant({ clientId: CONSOLE_CLIENT_ID, accountId: session.accountId });
    grant.addOIDCScope('openid');
    await grant.save();
    return grant;
  };
}

/** Who is signed in to a console, on `ctx.state.console` for the pages behind `session`. */
export type ConsoleSession = Readonly<{
  user: User;
  /** when the password and second factor were given, epoch seconds */
  authTime: number;
  /** the CSRF token every form of this session carries (field `csrf`) */
  csrf: string;
  /** what audited changes made from this session are attributed to */
  by: AuditBy;
}>;

type SessionClaims = JWTPayload & { sub: string; auth_time: number; csrf: string };
type SignInClaims = JWTPayload & { state: string; nonce: string; verifier: string; return_to: string };

export type ConsoleSignInDeps = Readonly<{
  issuer: string;
  /** CONSOLE_SESSION_TTL, ADMIN_AUTH_MAX_AGE */
  sessionTtlSeconds: number;
  adminAuthMaxAgeSeconds: number;
  /** 32-byte key (base64url) sealing the session and sign-in cookies, one per KEK, the first KEK's first */
  keys: readonly string[];
  secure: boolean;
  trustProxy: boolean;
  log: Logger;
  /** The account a session names, if it may still be used. */
  findActiveUser(id: string): Promise<User | undefined>;
  /** Hands a request to the current Provider (the code exchange goes through the token endpoint itself). */
  dispatch(req: IncomingMessage, res: ServerResponse): void;
  now?: () => number;
}>;

const SIGN_IN_SECONDS = 600;
const cookieName = (base: Base, kind: 'session' | 'sign-in') => `portcullis${base.replace('/', '.')}.${kind}`;
const pkceChallenge = (verifier: string) => createHash('sha256').update(verifier).digest('base64url');

/** A path inside `base` to come back to after signing in; anything else is the console's home. */
function returnPath(base: Base, wanted: string | undefined): string {
  if (!wanted || !/^\/[\w\-./~%?=&+]*$/.test(wanted) || wanted.startsWith('//') || wanted.includes('/..')) return base;
  return wanted === base || wanted.startsWith(`${base}/`) || wanted.startsWith(`${base}?`) ? wanted : base;
}

/**
 * Sign-in for one console. `GET base/sign-in` starts an authorization request for the console
 * client (state, nonce, PKCE S256; for /admin `max_age` = ADMIN_AUTH_MAX_AGE, and `prompt=login`
 * when `fresh=1`: a destructive action asks for the password and second factor again);
 * `GET base/callback` redeems the code at this server's own token endpoint and keeps the person's
 * id and auth_time in an encrypted, HttpOnly, SameSite=Lax cookie scoped to the console's path,
 * for CONSOLE_SESSION_TTL. `POST base/sign-out` forgets it and ends the Portcullis session too.
 */
export function consoleSignIn(base: Base, deps: ConsoleSignInDeps) {
  const now = () => Math.floor((deps.now ?? Date.now)() / 1000);
  // auth_time is oidc-provider's, on the real clock: how old a sign-in is is judged on that clock
  const providerNow = () => Math.floor(Date.now() / 1000);
  const keys = deps.keys.map((key) => Buffer.from(key, 'base64url'));
  const admin = base === '/admin';
  const redirectUri = `${deps.issuer}${base}/callback`;
  const cookie = (maxAgeSeconds: number) => ({
    path: base,
    httpOnly: true,
    sameSite: 'lax' as const,
    secure: deps.secure,
    signed: false,
    overwrite: true,
    maxAge: maxAgeSeconds * 1000,
  });
  const clear = (ctx: Context, kind: 'session' | 'sign-in') =>
    ctx.cookies.set(cookieName(base, kind), '', { ...cookie(0), maxAge: undefined, expires: new Date(0) });

  async function seal(claims: JWTPayload, seconds: number): Promise<string> {
    return new EncryptJWT(claims)
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
      .setIssuedAt(now())
      .setExpirationTime(now() + seconds)
      .setAudience(`${deps.issuer}${base}`)
      .encrypt(keys[0]);
  }

  async function open<T extends JWTPayload>(value: string | undefined): Promise<T | undefined> {
    if (!value || value.length > 4096) return undefined;
    for (const key of keys) {
      try {
        const { payload } = await jwtDecrypt(value, key, {
          audience: `${deps.issuer}${base}`,
          currentDate: new Date(now() * 1000),
          keyManagementAlgorithms: ['dir'],
          contentEncryptionAlgorithms: ['A256GCM'],
        });
        return payload as T;
      } catch {
        // another KEK's, expired, or not ours
      }
    }
    return undefined;
  }

  const page = (ctx: Context, status: number, title: string, message: string, extra: Record<string, unknown> = {}) => {
    ctx.status = status;
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    ctx.body = renderPage(ctx, title, 'console-refusal', { message, base, ...extra });
  };

  /** The redirect that starts a sign-in (and comes back to `returnTo`). */
  function signInUrl(returnTo: string, fresh = false): string {
    const query = new URLSearchParams({ return: returnPath(base, returnTo) });
    if (fresh) query.set('fresh', '1');
    return `${base}/sign-in?${query.toString()}`;
  }

  async function startSignIn(ctx: Context) {
    const state = randomBytes(24).toString('base64url');
    const nonce = randomBytes(24).toString('base64url');
    const verifier = randomBytes(48).toString('base64url');
    const returnTo = returnPath(base, typeof ctx.query.return === 'string' ? ctx.query.return : undefined);
    const sealed = await seal({ state, nonce, verifier, return_to: returnTo } satisfies SignInClaims, SIGN_IN_SECONDS);
    ctx.cookies.set(cookieName(base, 'sign-in'), sealed, cookie(SIGN_IN_SECONDS));
    const query = new URLSearchParams({
      client_id: CONSOLE_CLIENT_ID,
      response_type: 'code',
      scope: 'openid',
      redirect_uri: redirectUri,
      state,
      nonce,
      code_challenge: pkceChallenge(verifier),
      code_challenge_method: 'S256',
    });
    if (admin) query.set('max_age', String(deps.adminAuthMaxAgeSeconds));
    if (ctx.query.fresh === '1') query.set('prompt', 'login');
    ctx.set('Cache-Control', 'no-store');
    ctx.redirect(`/auth?${query.toString()}`);
  }

  /** The token endpoint's answer to the code, asked in process (no network, the same checks as any client's). */
  async function redeem(code: string, verifier: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await inject((req, res) => deps.dispatch(req, res), {
      method: 'POST',
      url: '/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded', host: new URL(deps.issuer).host },
      payload: new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: redirectUri,
        client_id: CONSOLE_CLIENT_ID,
        code_verifier: verifier,
      }).toString(),
    });
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(response.body) as Record<string, unknown>;
    } catch {
      // not JSON: the status says enough
    }
    return { status: response.statusCode, body };
  }

  async function finishSignIn(ctx: Context) {
    const pending = await open<SignInClaims>(ctx.cookies.get(cookieName(base, 'sign-in'), { signed: false }));
    clear(ctx, 'sign-in');
    const { state, code, error } = ctx.query;
    if (!pending || typeof state !== 'string' || !constantTimeEqual(Buffer.from(state), Buffer.from(pending.state))) {
      page(ctx, 400, 'Sign-in expired', 'This sign-in was started too long ago or in another browser. Start again.', {
        again: signInUrl(base),
      });
      return;
    }
    if (typeof error === 'string') {
      const text = typeof ctx.query.error_description === 'string' ? ctx.query.error_description : error;
      page(ctx, 400, 'Sign-in did not finish', `Portcullis answered: ${text}`, { again: signInUrl(pending.return_to) });
      return;
    }
    if (typeof code !== 'string' || code.length > 512) {
      page(ctx, 400, 'Sign-in did not finish', 'The answer carried no authorization code.', { again: signInUrl(pending.return_to) });
      return;
    }
    const answer = await redeem(code, pending.verifier);
    const idToken = answer.body.id_token;
    if (answer.status !== 200 || typeof idToken !== 'string') {
      deps.log.warn('console sign-in: code not redeemed', { console: base, status: answer.status, error: answer.body.error });
      page(ctx, 400, 'Sign-in did not finish', 'The sign-in could not be completed. Start again.', { again: signInUrl(pending.return_to) });
      return;
    }
    // the ID token came straight from this server's token endpoint, in process: its claims are ours
    const claims = decodeJwt<{ nonce?: string; auth_time?: number; amr?: string[] }>(idToken);
    const authTime = Number(claims.auth_time);
    const fresh = !admin || providerNow() - authTime <= deps.adminAuthMaxAgeSeconds;
    if (claims.nonce !== pending.nonce || typeof claims.sub !== 'string' || !Number.isFinite(authTime) || !fresh) {
      page(ctx, 400, 'Sign-in did not finish', 'The sign-in could not be completed. Start again.', { again: signInUrl(pending.return_to) });
      return;
    }
    if (!AMR.every((method) => claims.amr?.includes(method))) {
      page(ctx, 403, 'Second factor required', 'This page needs a sign-in with your password and your authenticator code.');
      return;
    }
    const csrf = randomBytes(24).toString('base64url');
    const ttl = deps.sessionTtlSeconds;
    const session = await seal({ sub: claims.sub, auth_time: authTime, csrf } satisfies SessionClaims, ttl);
    ctx.cookies.set(cookieName(base, 'session'), session, cookie(ttl));
    ctx.set('Cache-Control', 'no-store');
    ctx.redirect(pending.return_to);
  }

  /**
   * The pages behind a sign-in: a request without a live session is sent to sign in (a GET comes
   * back to where it was going); a disabled person is signed out; on /admin, a person who is not
   * an admin gets a refusal page. Then `ctx.state.console` holds the session.
   */
  async function session(ctx: Context, next: Next) {
    const claims = await open<SessionClaims>(ctx.cookies.get(cookieName(base, 'session'), { signed: false }));
    const user = claims && typeof claims.sub === 'string' ? await deps.findActiveUser(claims.sub) : undefined;
    if (!claims || !user) {
      if (claims) clear(ctx, 'session');
      if (ctx.method === 'GET' || ctx.method === 'HEAD') {
        ctx.set('Cache-Control', 'no-store');
        ctx.redirect(signInUrl(ctx.originalUrl));
        return;
      }
      page(ctx, 401, 'Signed out', 'Your sign-in has ended. Sign in again, then repeat what you were doing.', { again: signInUrl(base) });
      return;
    }
    const state: ConsoleSession = {
      user,
      authTime: claims.auth_time,
      csrf: claims.csrf,
      by: { actor: { type: 'person', id: user.id }, sourceIp: clientAddress(ctx, deps.trustProxy), requestId: requestIdOf(ctx) },
    };
    ctx.state.console = state;
    ctx.set('Cache-Control', 'no-store');
    if (admin && !user.isAdmin) {
      page(ctx, 403, 'Not an administrator', `You are signed in as ${user.username}, who is not an administrator of this platform.`, {
        csrf: state.csrf,
        signOut: `${base}/sign-out`,
      });
      return;
    }
    await next();
  }

  /**
   * A form post of this session: its CSRF token must match, and a browser that says where the
   * form came from must say this issuer (or `null`, below), and one whose fetch metadata
   * (`Sec-Fetch-Site`) names another site is refused. The form is then on `ctx.state.form`.
   */
  async function form(ctx: Context, next: Next) {
    const current = ctx.state.console as ConsoleSession;
    const origin = ctx.get('Origin');
    const site = ctx.get('Sec-Fetch-Site');
    const fields: Form = await readForm(ctx);
    const token = fields.csrf ?? '';
    // Referrer-Policy: no-referrer (every page) makes Chromium send `Origin: null` with its own
    // forms: null says nothing either way, as a missing header does; the CSRF token decides. A
    // browser whose fetch metadata says the post comes from another site is refused outright.
    const crossSite = site !== '' && site !== 'same-origin';
    const sameOrigin = !crossSite && (origin === '' || origin === 'null' || origin === new URL(deps.issuer).origin);
    if (!sameOrigin || !constantTimeEqual(Buffer.from(token), Buffer.from(current.csrf))) {
      page(
        ctx,
        403,
        'Form refused',
        'This form was not sent from this console in this sign-in (its security token did not match). Reload the page and try again.',
      );
      return;
    }
    ctx.state.form = fields;
    await next();
  }

  /**
   * Before a destructive action on /admin: the password and second factor must be no older than
   * ADMIN_AUTH_MAX_AGE, else the admin signs in again (prompt=login) and comes back to `back`.
   */
  function recentSignIn(back: (ctx: Context) => string): Middleware {
    return async (ctx: Context, next: Next) => {
      const current = ctx.state.console as ConsoleSession;
      if (providerNow() - current.authTime > deps.adminAuthMaxAgeSeconds) {
        ctx.status = 303;
        ctx.redirect(signInUrl(back(ctx), true));
        return;
      }
      await next();
    };
  }

  function signOut(ctx: Context) {
    clear(ctx, 'session');
    const query = new URLSearchParams({ client_id: CONSOLE_CLIENT_ID, post_logout_redirect_uri: `${deps.issuer}${base}/signed-out` });
    ctx.status = 303;
    ctx.redirect(`/session/end?${query.toString()}`);
  }

  const router = new Router();
  router.get(`${base}/sign-in`, startSignIn);
  router.get(`${base}/callback`, finishSignIn);
  router.get(`${base}/signed-out`, (ctx) => {
    page(ctx, 200, 'Signed out', 'You are signed out.', { again: signInUrl(base), againLabel: 'Sign in again' });
  });
  router.post(`${base}/sign-out`, session, form, signOut);

  return {
    /** sign-in, callback, signed-out and sign-out */
    routes: router.routes() as unknown as Middleware,
    session: session as Middleware,
    form: form as Middleware,
    recentSignIn,
    signInUrl,
  };
}

export type ConsoleSignIn = ReturnType<typeof consoleSignIn>;

/**
 * A console's routes, reached only by paths under `base`: every other request (the token
 * endpoint's among them) goes by with one string check instead of a match against each route.
 */
export function underBase(base: Base, routes: Middleware): Middleware {
  return async (ctx: Context, next: Next): Promise<void> => {
    if (ctx.path === base || ctx.path.startsWith(`${base}/`)) await routes(ctx, next);
    else await next();
  };
}

/** The session of a request that went through `consoleSignIn(…).session`. */
export function consoleSessionOf(ctx: Context): ConsoleSession {
  const current = ctx.state.console as ConsoleSession | undefined;
  if (!current) throw new AppError('server_error', 'no console session on this request', { status: 500 });
  return current;
}
