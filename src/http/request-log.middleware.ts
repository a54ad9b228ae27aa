import { randomUUID } from 'node:crypto';
import type { Context, Next } from 'koa';
import type { Logger } from '../log/logger.ts';
import type { Metrics } from './metrics.registry.ts';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Our own routes by path prefix; oidc-provider's are named by the provider (`ctx.oidc.route`). */
const OWN_ROUTES: ReadonlyArray<[string, string]> = [
  ['/healthz', 'healthz'],
  ['/readyz', 'readyz'],
  ['/metrics', 'metrics'],
  ['/interaction/', 'interaction'],
];

/** oidc-provider's routes that a rate limit may answer before the provider names them (src/limits/). */
const THROTTLED_ROUTES: Readonly<Record<string, string>> = {
  '/auth': 'authorization',
  '/token': 'token',
  '/token/introspection': 'introspection',
};

/** A bounded label: never the raw path (ids in it would explode the series count). */
function routeName(ctx: Context): string {
  const oidc = (ctx as unknown as { oidc?: { route?: string } }).oidc;
  if (oidc?.route) return oidc.route;
  if (Object.hasOwn(THROTTLED_ROUTES, ctx.path)) return THROTTLED_ROUTES[ctx.path];
  return OWN_ROUTES.find(([prefix]) => ctx.path === prefix || ctx.path.startsWith(prefix))?.[1] ?? 'other';
}

/** The id `requestLog` gave this request, for other log lines about it. */
export function requestIdOf(ctx: Context): string | undefined {
  return (ctx.state as { requestId?: string }).requestId;
}

/**
 * The outermost middleware: a request id (the caller's `X-Request-Id` when well formed, else a
 * new one; echoed in the response and on `ctx.state.requestId`), one log line per request and
 * the request metrics. The line holds method, path, route, status, duration and client_id:
 * never a query string, header, cookie or body, which is where secrets travel.
 */
export function requestLog(log: Logger, metrics: Metrics) {
  return async function requestLog(ctx: Context, next: Next) {
    const started = process.hrtime.bigint();
    const given = ctx.get('X-Request-Id');
    const requestId = REQUEST_ID.test(given) ? given : randomUUID();
    ctx.state.requestId = requestId;
    ctx.set('X-Request-Id', requestId);
    let failed = false;
    try {
      await next();
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = routeName(ctx);
      const status = failed && ctx.status < 500 ? 500 : ctx.status;
      metrics.httpRequest(route, ctx.method, status, seconds);
      if (route !== 'healthz' && route !== 'readyz' && route !== 'metrics') {
        const clientId = (ctx as unknown as { oidc?: { client?: { clientId?: string } } }).oidc?.client?.clientId;
        log.info('request', {
          request_id: requestId,
          method: ctx.method,
          path: ctx.path,
          route,
          status,
          duration_ms: Math.round(seconds * 1e4) / 10,
          client_id: clientId,
        });
      }
    }
  };
}
