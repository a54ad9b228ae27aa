/** The Content-Security-Policy of every page: no inline script, forms post to us only. */
export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

/**
 * The page's CSP with `origin` allowed as a form target as well. Chrome applies form-action to
 * the redirects that follow a form post: when the last one lands on a partner's URI, that
 * origin (and only it) joins 'self'.
 */
export function cspAllowingFormTarget(origin: string): string {
  return CSP.replace("form-action 'self'", `form-action 'self' ${origin}`);
}
