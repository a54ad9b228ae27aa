import type { Context, Next } from 'koa';

export type ReadinessCheck = () => Promise<{ ok: boolean; checks: Record<string, string> }>;

/** `/healthz`: the process answers. `/readyz`: the database answers and a signing key is loaded. */
export function healthRoutes(readiness: ReadinessCheck) {
  return async function health(ctx: Context, next: Next) {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      await next();
      return;
    }
    if (ctx.path === '/healthz') {
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { status: 'ok' };
      return undefined;
    }
    if (ctx.path === '/readyz') {
      const result = await readiness();
      ctx.set('Cache-Control', 'no-store');
      ctx.status = result.ok ? 200 : 503;
      ctx.body = { status: result.ok ? 'ready' : 'not ready', checks: result.checks };
      return undefined;
    }
    await next();
  };
}
