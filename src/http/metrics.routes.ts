import type { Context, Next } from 'koa';
import { constantTimeEqual } from '../shared/constant-time.ts';
import { sha256Base64url } from '../shared/hashing.ts';
import { isLoopbackAddress } from '../shared/loopback-hosts.ts';

/** Hashed first, so the comparison's time does not tell the token's length either. */
function sameSecret(given: string, expected: string): boolean {
  return constantTimeEqual(sha256Base64url(given), sha256Base64url(expected));
}

/**
 * `GET /metrics` in Prometheus text format. With a token configured (METRICS_TOKEN) it takes
 * `Authorization: Bearer <token>`; without one it answers loopback peers only (the socket's
 * address, never X-Forwarded-For). `render` gives the text: this process's registry, or the
 * whole cluster's when WORKERS>1.
 */
export function metricsRoute(options: { token: string | undefined; contentType: string; render: () => Promise<string> }) {
  return async function metrics(ctx: Context, next: Next) {
    if (ctx.path !== '/metrics' || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) {
      await next();
      return;
    }
    ctx.set('Cache-Control', 'no-store');
    const allowed = options.token
      ? sameSecret(ctx.get('Authorization'), `Bearer ${options.token}`)
      : isLoopbackAddress(ctx.req.socket.remoteAddress ?? '');
    if (!allowed) {
      ctx.status = options.token ? 401 : 403;
      if (options.token) ctx.set('WWW-Authenticate', 'Bearer realm="metrics"');
      ctx.body = {
        error: options.token ? 'invalid_token' : 'forbidden',
        error_description: 'metrics need METRICS_TOKEN, or a request from loopback',
      };
      return undefined;
    }
    ctx.type = options.contentType;
    ctx.body = await options.render();
    return undefined;
  };
}
