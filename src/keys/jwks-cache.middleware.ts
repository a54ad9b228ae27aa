import type { Context, Next } from 'koa';

/**
 * Tells resource servers how long they may cache the JWKS. It must stay below KEY_PREPUBLISH:
 * a cache fetched just before a key was published then expires before that key signs.
 */
export function jwksCacheControl(path: string, maxAgeSeconds: number) {
  return async function jwksCache(ctx: Context, next: Next) {
    await next();
    if (ctx.path === path && ctx.status === 200 && (ctx.method === 'GET' || ctx.method === 'HEAD')) {
      ctx.set('Cache-Control', `public, max-age=${maxAgeSeconds}`);
    }
  };
}
