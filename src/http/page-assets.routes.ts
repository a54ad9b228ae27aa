import type { Context, Next } from 'koa';
import { attachViews, type Views } from '../shared/views.ts';

/**
 * Before anything that may answer with a page: the app's views travel with the request (see
 * src/shared/views.ts), and `GET /assets/…` answers the stylesheet and the logo (ahead of
 * securityHeaders, so with their own). Their URLs carry a hash of the content, so they are
 * cached for a year and a new brand is fetched at once.
 */
export function pageAssets(views: Views) {
  return async function pageAssets(ctx: Context, next: Next) {
    attachViews(ctx, views);
    const asset = ctx.method === 'GET' || ctx.method === 'HEAD' ? views.assets.get(ctx.path) : undefined;
    if (!asset) {
      await next();
      return;
    }
    ctx.type = asset.type;
    ctx.set('Cache-Control', asset.cacheControl);
    ctx.set('X-Content-Type-Options', 'nosniff');
    // an SVG opened on its own is a document of this origin: no script, request or frame from it
    if (asset.type === 'image/svg+xml')
      ctx.set('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; sandbox");
    ctx.body = asset.body;
  };
}
