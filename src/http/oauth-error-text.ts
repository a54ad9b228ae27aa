import type { Context, Next } from 'koa';

/** RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E; we also drop `<` and `>`. */
const OUTSIDE_CHARSET = /[^\x20\x21\x23-\x3B\x3D\x3F-\x5B\x5D-\x7E]/g;
const MAX_LENGTH = 300;

export function cleanErrorDescription(text: string): string {
  const clean = text.replace(OUTSIDE_CHARSET, '?');
  return clean.slice(0, MAX_LENGTH);
}

/**
 * The net under every OAuth error body (oidc-provider's and ours): an `error_description` that
 * carries a piece of the request (a resource URI, a scope) reaches the client only within the
 * characters RFC 6749 allows, without markup, and bounded in length.
 */
export function oauthErrorText() {
  return async function oauthErrorText(ctx: Context, next: Next) {
    await next();
    const body = ctx.body as { error?: unknown; error_description?: unknown } | undefined;
    if (ctx.status < 400 || !body || typeof body !== 'object' || Buffer.isBuffer(body) || typeof body.error !== 'string') return;
    if (typeof body.error_description === 'string') body.error_description = cleanErrorDescription(body.error_description);
  };
}
