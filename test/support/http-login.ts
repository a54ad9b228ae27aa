import { cookieAgent } from './agent.ts';

/**
 * A person's browser without the browser: follows redirects by hand, keeps cookies, reads each
 * page's one form and posts it. Used where a real browser adds nothing but time (cross-instance
 * tests, the login benchmark); the pages themselves are tested in a real browser (test/e2e).
 * Each hop may go to a different instance (`hosts`): that is how a load balancer behaves.
 */
export type HttpLoginResult = { callback: URL; pages: string[] };

/** The page's one form: where it posts and its hidden fields (the CSRF token among them). */
export function pageForm(html: string): { action: string; fields: Record<string, string> } {
  const match = /<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/.exec(html);
  if (!match) throw new Error(`no form on the page: ${/<h1[^>]*>([\s\S]*?)<\/h1>/.exec(html)?.[1] ?? html.slice(0, 200)}`);
  const fields: Record<string, string> = {};
  for (const input of match[2].matchAll(/<input[^>]*type="hidden"[^>]*>/g)) {
    const name = /name="([^"]+)"/.exec(input[0])?.[1];
    const value = /value="([^"]*)"/.exec(input[0])?.[1] ?? '';
    if (name) fields[name] = value.replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code))).replace(/&amp;/g, '&');
  }
  return { action: match[1].replace(/&amp;/g, '&'), fields };
}

export const pageHeading = (html: string) => /<h1[^>]*>([\s\S]*?)<\/h1>/.exec(html)?.[1]?.trim() ?? '';

/**
 * Opens a login page as a browser arriving from a partner would: `authorizationUrl` (an /auth
 * URL), redirects followed, on `agent` (with `headers` on each request). Returns the sign-in form.
 */
export async function openLoginForm(agent: ReturnType<typeof cookieAgent>, authorizationUrl: URL, headers: Record<string, string> = {}) {
  let url = authorizationUrl;
  for (let hop = 0; hop < 5; hop += 1) {
    const { res, text } = await agent.get(`${url.pathname}${url.search}`, headers);
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      url = new URL(location, url);
      continue;
    }
    if (res.status !== 200) throw new Error(`HTTP ${res.status} at ${url.pathname}: ${pageHeading(text)}`);
    return { ...pageForm(text), uid: url.pathname.split('/').pop()! };
  }
  throw new Error('too many redirects before the sign-in page');
}

/**
 * Signs `username` in at `authorizationUrl` with `password` and the TOTP `code()` (asked for
 * only when the second-factor page shows), allows consent when asked, and returns the
 * redirect back to the partner. `hosts` rotates the instance each request goes to.
 */
export async function httpLogin(options: {
  authorizationUrl: URL;
  redirectUri: string;
  username: string;
  password: string;
  code: () => string;
  hosts?: string[];
  decision?: 'allow' | 'deny';
}): Promise<HttpLoginResult> {
  const pages: string[] = [];
  const hosts = options.hosts ?? [options.authorizationUrl.origin];
  let turn = 0;
  const agent = cookieAgent(() => hosts[turn++ % hosts.length]);

  let next: { url: URL; body?: Record<string, string> } = { url: options.authorizationUrl };
  for (let hop = 0; hop < 20; hop += 1) {
    if (next.url.href.startsWith(options.redirectUri)) return { callback: next.url, pages };
    const path = `${next.url.pathname}${next.url.search}`;
    const { res, text: html } = next.body ? await agent.post(path, next.body) : await agent.get(path);
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      next = { url: new URL(location, next.url) };
      continue;
    }
    const page = pageHeading(html);
    const refusal = /<p class="alert"[^>]*>([\s\S]*?)<\/p>/.exec(html)?.[1];
    if (refusal) throw new Error(`refused at "${page}" (HTTP ${res.status}): ${refusal}`);
    if (res.status !== 200) throw new Error(`HTTP ${res.status} at ${next.url.pathname}: ${page}`);
    pages.push(page);
    const { action, fields } = pageForm(html);
    if (action.endsWith('/login')) Object.assign(fields, { username: options.username, password: options.password });
    else if (action.endsWith('/otp')) fields.code = options.code();
    else if (action.endsWith('/consent')) fields.decision = options.decision ?? 'allow';
    else if (!/\/auth\//.test(action)) throw new Error(`unexpected page "${page}" (form to ${action})`);
    next = { url: new URL(action, next.url), body: fields };
  }
  throw new Error(`too many hops: ${pages.join(' → ')}`);
}
