import { cookieAgent } from './agent.ts';
import { httpLogin } from './http-login.ts';

/**
 * Signs `username` in to a console (`/admin` or `/account`) over HTTP, as a browser would:
 * `GET base` → sign-in → /auth → password → second factor → the console's callback. Returns the
 * browser (its cookie jar holds the session), the pages passed, and the console's page HTML.
 */
export async function consoleSignIn(
  serverUrl: string,
  base: '/admin' | '/account',
  person: { username: string; password: string; code: () => string },
  options: { agent?: ReturnType<typeof cookieAgent>; path?: string } = {},
) {
  const agent = options.agent ?? cookieAgent(() => serverUrl);
  const start = await agent.get(options.path ?? base);
  if (start.res.status !== 302) throw new Error(`${base} answered ${start.res.status}, not a redirect to sign in`);
  const login = await httpLogin({
    authorizationUrl: new URL(start.res.headers.get('location')!, serverUrl),
    redirectUri: `${serverUrl}${base}/callback`,
    ...person,
    agent,
  });
  const callback = await agent.get(`${login.callback.pathname}${login.callback.search}`);
  const landed = callback.res.headers.get('location');
  const page = landed ? await agent.get(landed) : callback;
  return { agent, pages: login.pages, callback, landed, page };
}

/** The CSRF token in a console page's forms. */
export function csrfOf(html: string): string {
  const match = /name="csrf" value="([^"]+)"/.exec(html);
  if (!match) throw new Error('no CSRF token on the page');
  return match[1];
}
