import fs from 'node:fs';
import type { Context } from 'koa';

const STYLESHEET = fs.readFileSync(new URL('../../views/portcullis.css', import.meta.url), 'utf8');

/** GET /assets/portcullis.css: the one stylesheet of every page (the CSP allows 'self' styles only). */
export function stylesheet(ctx: Context): void {
  ctx.type = 'text/css';
  ctx.set('Cache-Control', 'public, max-age=3600');
  ctx.body = STYLESHEET;
}
