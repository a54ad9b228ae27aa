import fs from 'node:fs';
import type { Context, Next } from 'koa';
import { renderPage } from '../shared/views.ts';

const FAVICON = fs.readFileSync(new URL('../../views/favicon.ico', import.meta.url));

/**
 * `GET /`: what this server is, with links to discovery and the JWKS (instead of a bare
 * `Not Found`); `GET /favicon.ico`: the icon browsers ask for on every page.
 */
export function homeRoutes(options: { issuer: string }) {
  return async function home(ctx: Context, next: Next) {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      await next();
      return;
    }
    if (ctx.path === '/') {
      ctx.type = 'html';
      ctx.set('Cache-Control', 'no-cache');
      ctx.body = renderPage(ctx, 'Authorization server', 'home', { issuer: options.issuer });
      return;
    }
    if (ctx.path === '/favicon.ico') {
      ctx.type = 'image/x-icon';
      ctx.set('Cache-Control', 'public, max-age=86400');
      ctx.body = FAVICON;
      return;
    }
    await next();
  };
}
