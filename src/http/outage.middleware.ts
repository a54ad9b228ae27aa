import type { Context, Next } from 'koa';
import { isUnavailableAnswer, RETRY_AFTER_SECONDS, UNAVAILABLE_DESCRIPTION, type Availability } from '../db/availability.ts';
import { renderPage } from '../shared/views.ts';

/**
 * While the database is away, every request that needs it is answered 503 with Retry-After,
 * never 500: oidc-provider's routes answer `temporarily_unavailable` themselves (the adapter
 * and hooks are outage-aware, src/oidc/temporarily-unavailable.ts); an outage that reaches this
 * middleware from elsewhere (our pages, a limit counted in the database) gets the same JSON, or
 * a readable page for a browser. Every 503 carries Retry-After. Real bugs pass through as 500s.
 */
export function answerOutages(availability: Availability) {
  return async function answerOutages(ctx: Context, next: Next) {
    try {
      await next();
    } catch (error) {
      if (!isUnavailableAnswer(error) && !availability.failed(error)) throw error;
      ctx.status = 503;
      ctx.set('Cache-Control', 'no-store');
      if (ctx.accepts('json', 'html') === 'html') {
        ctx.type = 'html';
        ctx.body = renderPage(ctx, 'Temporarily unavailable', 'error', {
          message: `The service is briefly unavailable. Wait ${RETRY_AFTER_SECONDS} seconds, then try again.`,
          code: 'temporarily_unavailable',
        });
      } else {
        ctx.body = { error: 'temporarily_unavailable', error_description: UNAVAILABLE_DESCRIPTION };
      }
    }
    if (ctx.status === 503 && !ctx.response.get('Retry-After')) ctx.set('Retry-After', String(RETRY_AFTER_SECONDS));
  };
}
