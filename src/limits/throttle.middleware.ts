import type { Context, Middleware, Next } from 'koa';
import { renderPage } from '../shared/views.ts';
import { sourceAddress } from './source-address.ts';
import type { Limits, Throttle } from './throttle.service.ts';
import { QueueFullError } from './work-queue.ts';

export type ThrottleOptions = Readonly<{
  /** TRUST_PROXY: count the address our proxy saw (see sourceAddress). */
  trustProxy: boolean;
  /** Called with the limit's name at each refusal (metrics). */
  onRefused?: (limit: string) => void;
}>;

/** The oidc-provider routes limited here (its default paths; Portcullis does not rename them). */
const THROTTLED_PATHS = { authorization: '/auth', token: '/token', introspection: '/token/introspection' } as const;

function inWords(seconds: number): string {
  if (seconds < 60) return seconds === 1 ? '1 second' : `${seconds} seconds`;
  const minutes = Math.ceil(seconds / 60);
  return minutes === 1 ? '1 minute' : `${minutes} minutes`;
}

/** A readable page for a person: 429 (a limit) or 503 (the password queue is full), with Retry-After. */
function refusalPage(ctx: Context, status: 429 | 503, retryAfterSeconds: number, title: string, message: string): void {
  ctx.status = status;
  ctx.set('Retry-After', String(retryAfterSeconds));
  ctx.set('Cache-Control', 'no-store');
  ctx.type = 'html';
  ctx.body = renderPage(ctx, title, 'error', {
    message: `${message} Wait ${inWords(retryAfterSeconds)}, then try again.`,
    code: status === 429 ? 'too_many_requests' : 'temporarily_unavailable',
  });
}

/**
 * An OAuth client over a limit: 429, Retry-After, and RFC 6749 error JSON. `slow_down` is the
 * registered token-endpoint code that says "too often" (RFC 8628 §3.5; a device-flow client that
 * gets it waits longer, which is right). `temporarily_unavailable` is registered for the
 * authorization endpoint and says the server is overloaded, which a per-partner limit is not;
 * `invalid_request` says the request is malformed, and a client would not try again.
 */
function refusalJson(ctx: Context, retryAfterSeconds: number, description: string): void {
  ctx.status = 429;
  ctx.set('Retry-After', String(retryAfterSeconds));
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { error: 'slow_down', error_description: `${description}; retry after ${retryAfterSeconds} s` };
}

/**
 * The client_id of HTTP Basic client authentication (RFC 6749 §2.3.1: form-encoded, then
 * base64), the way every confidential Portcullis partner authenticates. Not verified here: the
 * count is given back when the provider answers 401, so that someone naming a partner they are
 * not cannot use up that partner's allowance (they use up their address's).
 */
export function basicClientId(ctx: Context): string | undefined {
  const [scheme, value] = ctx.get('Authorization').split(' ');
  if (scheme.toLowerCase() !== 'basic' || !value) return undefined;
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  try {
    return decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, '%20'));
  } catch {
    return undefined;
  }
}

/**
 * /auth per address (a page: a browser is on the other end), /token and /token/introspection
 * per address, then per partner (JSON), before oidc-provider does any work for the request
 * (partners that send their secret in the body: after, see below).
 */
export function endpointThrottles(limits: Limits, options: ThrottleOptions): Middleware {
  const taken = async (throttle: Throttle, key: string) => {
    const wait = await throttle.take(key);
    if (wait !== undefined) options.onRefused?.(throttle.name);
    return wait;
  };
  return async function endpointThrottles(ctx: Context, next: Next) {
    const { path, method } = ctx;
    if (path === THROTTLED_PATHS.authorization && (method === 'GET' || method === 'POST')) {
      const wait = await taken(limits.authPerIp, sourceAddress(ctx, options.trustProxy));
      if (wait !== undefined) {
        refusalPage(ctx, 429, wait, 'Too many requests', 'Too many sign-in requests have come from your network.');
        return;
      }
      await next();
      return;
    }
    if (method !== 'POST' || (path !== THROTTLED_PATHS.token && path !== THROTTLED_PATHS.introspection)) {
      await next();
      return;
    }
    const [perIp, perClient] =
      path === THROTTLED_PATHS.token
        ? [limits.tokenPerIp, limits.tokenPerClient]
        : [limits.introspectionPerIp, limits.introspectionPerClient];
    const addressWait = await taken(perIp, sourceAddress(ctx, options.trustProxy));
    if (addressWait !== undefined) {
      refusalJson(ctx, addressWait, 'too many requests from this address');
      return;
    }
    const clientId = basicClientId(ctx);
    if (clientId !== undefined) {
      const clientWait = await taken(perClient, clientId);
      if (clientWait !== undefined) {
        refusalJson(ctx, clientWait, 'too many requests for this client');
        return;
      }
    }
    await next();
    if (clientId !== undefined) {
      if (ctx.status === 401) await perClient.giveBack(clientId);
      return undefined;
    }
    // Credentials in the body (client_secret_post): the partner is known only once the provider
    // has authenticated it. It counts now, and past its limit the answer is withheld where that
    // undoes nothing (a client-credentials token, an introspection), so the limit holds whichever
    // way a partner authenticates. Public clients (one code exchange or refresh per person) count
    // per address only.
    const oidc = (
      ctx as unknown as { oidc?: { client?: { clientId: string; clientAuthMethod?: string }; params?: { grant_type?: unknown } } }
    ).oidc;
    const client = oidc?.client;
    if (!client || client.clientAuthMethod === 'none' || ctx.status === 401) return undefined;
    const wait = await taken(perClient, client.clientId);
    const withholdable = path === THROTTLED_PATHS.introspection || oidc.params?.grant_type === 'client_credentials';
    if (wait !== undefined && withholdable) refusalJson(ctx, wait, 'too many requests for this client');
    return undefined;
  };
}

/** The login posts' limits, as steps for the login routes to place (src/interactions/login.routes.ts). */
export type AttemptThrottles = Readonly<{
  /** First on every password or code post, before any work: one attempt for the address. */
  perAddress: Middleware;
  /**
   * The password step: one attempt for the username `usernameOf` reads (given back when the
   * password was right, i.e. the step redirects onward), then the rest of the step, password
   * hash included, runs in its turn of the bounded queue: 503 + Retry-After when the line is full.
   */
  password(usernameOf: (ctx: Context) => string | undefined): Middleware;
  /** A second-factor step (TOTP, recovery code, enrolment code): one attempt for the account `accountOf` reads. */
  secondFactor(accountOf: (ctx: Context) => string | undefined): Middleware;
}>;

export function attemptThrottles(limits: Limits, options: ThrottleOptions): AttemptThrottles {
  const tooMany = (throttle: Throttle, ctx: Context, wait: number, message: string) => {
    options.onRefused?.(throttle.name);
    refusalPage(ctx, 429, wait, 'Too many attempts', message);
  };
  return {
    async perAddress(ctx: Context, next: Next) {
      const wait = await limits.loginPerIp.take(sourceAddress(ctx, options.trustProxy));
      if (wait !== undefined) {
        tooMany(limits.loginPerIp, ctx, wait, 'Too many sign-in attempts have come from your network.');
        return;
      }
      await next();
    },
    password(usernameOf) {
      return async function passwordAttempt(ctx: Context, next: Next) {
        const username = usernameOf(ctx) || undefined;
        if (username !== undefined) {
          const wait = await limits.loginPerUsername.take(username);
          if (wait !== undefined) {
            tooMany(limits.loginPerUsername, ctx, wait, 'Too many sign-in attempts have been made for this username.');
            return;
          }
        }
        try {
          await limits.passwordQueue.run(() => next());
        } catch (error) {
          if (!(error instanceof QueueFullError)) throw error;
          options.onRefused?.('password_queue');
          if (username !== undefined) await limits.loginPerUsername.giveBack(username); // this attempt was never checked
          refusalPage(ctx, 503, error.retryAfterSeconds, 'Busy', 'Too many people are signing in at this moment.');
          return;
        }
        if (username !== undefined && ctx.status === 303) await limits.loginPerUsername.giveBack(username);
        return undefined;
      };
    },
    secondFactor(accountOf) {
      return async function secondFactorAttempt(ctx: Context, next: Next) {
        const account = accountOf(ctx);
        if (account !== undefined) {
          const wait = await limits.secondFactorPerAccount.take(account);
          if (wait !== undefined) {
            tooMany(limits.secondFactorPerAccount, ctx, wait, 'Too many codes have been tried for this account.');
            return;
          }
        }
        await next();
      };
    },
  };
}
