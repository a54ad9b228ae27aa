import { createHash, randomBytes } from 'node:crypto';
import { totpCode } from '../../src/accounts/totp.service.ts';
import { cookieAgent } from './agent.ts';

/**
 * A person's browser without the browser: follows redirects by hand, keeps cookies, reads each
 * page's one form and posts it. Used where a real browser adds nothing but time (cross-instance
 * tests, the login benchmark); the pages themselves are tested in a real browser (test/e2e).
 * Each hop may go to a different instance (`hosts`): that is how a load balancer behaves.
 */
export type HttpLoginResult = {
  callback: URL;
  /** the headings of the pages passed, in order */
  pages: string[];
  /** those pages' HTML */
  html: string[];
  secret?: string;
  recoveryCodes?: string[];
};

/** The page's one form: where it posts and its hidden fields (the CSRF token among them). */
function pageForm(html: string): { action: string; fields: Record<string, string> } {
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

const pageHeading = (html: string) => /<h1[^>]*>([\s\S]*?)<\/h1>/.exec(html)?.[1]?.trim() ?? '';

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
 * redirect back to the partner. A person not yet enrolled gives `enrolmentCode`, then the code
 * of the secret the next page shows (returned as `secret`, with the recovery codes).
 * `hosts` rotates the instance each request goes to.
 */
export async function httpLogin(options: {
  authorizationUrl: URL;
  redirectUri: string;
  username: string;
  password: string;
  code: () => string;
  enrolmentCode?: string;
  hosts?: string[];
  decision?: 'allow' | 'deny';
  /** Awaited before the consent is sent (a test lines several logins up to finish at once). */
  beforeConsent?: () => Promise<void>;
  /** The browser's cookie jar, to keep one across logins (a new one by default). */
  agent?: ReturnType<typeof cookieAgent>;
}): Promise<HttpLoginResult> {
  const pages: string[] = [];
  const htmls: string[] = [];
  const hosts = options.hosts ?? [options.authorizationUrl.origin];
  let turn = 0;
  const agent = options.agent ?? cookieAgent(() => hosts[turn++ % hosts.length]);

  let next: { url: URL; body?: Record<string, string> } = { url: options.authorizationUrl };
  let secret: string | undefined;
  let recoveryCodes: string[] | undefined;
  for (let hop = 0; hop < 20; hop += 1) {
    if (next.url.href.startsWith(options.redirectUri)) return { callback: next.url, pages, html: htmls, secret, recoveryCodes };
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
    htmls.push(html);
    const { action, fields } = pageForm(html);
    if (action.endsWith('/login')) Object.assign(fields, { username: options.username, password: options.password });
    else if (action.endsWith('/otp')) fields.code = options.code();
    else if (action.endsWith('/enrol-code')) {
      if (!options.enrolmentCode) throw new Error(`${options.username} must enrol: no enrolmentCode given`);
      fields.enrolment_code = options.enrolmentCode;
    } else if (action.endsWith('/enrol')) {
      secret = /<code id="secret">([^<]+)<\/code>/.exec(html)![1].replace(/\s+/g, '');
      fields.code = totpCode(secret, Date.now());
    } else if (action.endsWith('/continue')) recoveryCodes ??= [...html.matchAll(/<li><code>([^<]+)<\/code><\/li>/g)].map((m) => m[1]);
    else if (action.endsWith('/consent')) {
      fields.decision = options.decision ?? 'allow';
      await options.beforeConsent?.();
    } else if (!/\/auth\//.test(action)) throw new Error(`unexpected page "${page}" (form to ${action})`);
    next = { url: new URL(action, next.url), body: fields };
  }
  throw new Error(`too many hops: ${pages.join(' → ')}`);
}

/**
 * One browser at the start of a login: an authorization request (PKCE) sent, the sign-in page
 * open. `post(step, fields)` sends that page's CSRF token with the fields to
 * `/interaction/<uid>/<step>` (login, otp, recovery, enrol-code, enrol, continue, consent).
 */
export async function openLogin(base: string, clientId: string, redirectUri: string) {
  const browser = cookieAgent(() => base);
  const params = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    redirect_uri: redirectUri,
    scope: 'openid payments:read',
    code_challenge: createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url'),
    code_challenge_method: 'S256',
  });
  const auth = await browser.get(`/auth?${params}`);
  if (auth.res.status !== 303) throw new Error(`/auth answered ${auth.res.status}: ${auth.text.slice(0, 200)}`);
  const location = auth.res.headers.get('location')!;
  const uid = new URL(location, base).pathname.split('/').pop()!;
  const page = await browser.get(`/interaction/${uid}`);
  const csrf = /name="csrf" value="([^"]+)"/.exec(page.text)![1];
  return {
    browser,
    uid,
    csrf,
    page: async () => (await browser.get(`/interaction/${uid}`)).text,
    post: (step: string, fields: Record<string, string>) => browser.post(`/interaction/${uid}/${step}`, { csrf, ...fields }),
  };
}

/**
 * RP-initiated logout in `agent`'s browser: opens /session/end, answers "Yes, sign me out"
 * (the page's form with `logout=yes`) and returns the heading of the page it ends on.
 */
export async function httpLogout(
  agent: ReturnType<typeof cookieAgent>,
  base: string,
  params: Record<string, string> = {},
): Promise<string> {
  const page = await agent.get(`/session/end?${new URLSearchParams(params)}`);
  if (page.res.status !== 200) throw new Error(`/session/end answered ${page.res.status}`);
  const { action, fields } = pageForm(page.text);
  let answer = await agent.post(new URL(action, base).pathname, { ...fields, logout: 'yes' });
  for (let hop = 0; hop < 5 && answer.res.status >= 300 && answer.res.status < 400; hop += 1) {
    answer = await agent.get(new URL(answer.res.headers.get('location')!, base).pathname);
  }
  return pageHeading(answer.text);
}
