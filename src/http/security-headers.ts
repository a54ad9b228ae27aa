import type { Context, Next } from 'koa';
import { CSP, cspAllowingFormTarget } from '../shared/content-security-policy.ts';

/** oidc-provider's form_post response page (response_mode form_post / form_post.jwt): its one form and where it posts. */
const FORM_POST_PAGE = /^<!DOCTYPE html>[\s\S]*<title>Submitting Callback<\/title>[\s\S]*<form method="post" action="([^"]+)">/;

const unescapeAttribute = (value: string) =>
  value
    .replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code)))
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, '&');

/**
 * The origin a response_mode=form_post page posts the code to (the partner's redirect URI), when
 * this response is one: its CSP must allow that form target, or the browser refuses to send it.
 */
function formPostOrigin(ctx: Context): string | undefined {
  if (typeof ctx.body !== 'string' || !ctx.response.is('html')) return undefined;
  const action = FORM_POST_PAGE.exec(ctx.body)?.[1];
  return action === undefined ? undefined : URL.parse(unescapeAttribute(action))?.origin;
}

/**
 * Headers every response carries; pages get a CSP that allows no inline script. oidc-provider adds
 * the hash of its own auto-submit script to it (form_post); the form's target is added here.
 */
export function securityHeaders(options: { https: boolean }) {
  return async function headers(ctx: Context, next: Next) {
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('Content-Security-Policy', CSP);
    if (options.https) ctx.set('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
    await next();
    const origin = formPostOrigin(ctx);
    if (origin && origin !== 'null') {
      const csp = ctx.response.get('Content-Security-Policy');
      const withScriptHash = /script-src ([^;]*)/.exec(csp)?.[1] ?? "'self'";
      ctx.set('Content-Security-Policy', cspAllowingFormTarget(origin).replace("script-src 'self'", `script-src ${withScriptHash}`));
    }
  };
}
