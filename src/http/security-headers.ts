import type { Context, Next } from 'koa';
import { CSP } from '../shared/content-security-policy.ts';

/** Headers every response carries; pages get a CSP that allows no inline script. */
export function securityHeaders(options: { https: boolean }) {
  return async function headers(ctx: Context, next: Next) {
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('Content-Security-Policy', CSP);
    if (options.https) ctx.set('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
    await next();
  };
}
