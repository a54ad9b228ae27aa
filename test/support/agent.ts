/**
 * A browser without a browser: follows no redirect by itself, keeps cookies by name (dropping
 * cleared ones) and sends them all back. `baseFor` picks the server for each request (one server, or a round robin).
 */
export function cookieAgent(baseFor: () => string) {
  const jar = new Map<string, string>();
  async function request(path: string, init: RequestInit = {}) {
    const res = await fetch(new URL(path, baseFor()), {
      ...init,
      redirect: 'manual',
      headers: { ...(init.headers as Record<string, string>), cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    for (const cookie of res.headers.getSetCookie()) {
      const [pair, ...attributes] = cookie.split(';');
      const at = pair.indexOf('=');
      const name = pair.slice(0, at).trim();
      const value = pair.slice(at + 1).trim();
      // a cookie set empty, or expired, is gone, as in a browser
      const cleared = value === '' || attributes.some((a) => /^\s*max-age=0\s*$/i.test(a) || /^\s*expires=Thu, 01 Jan 1970/i.test(a));
      if (cleared) jar.delete(name);
      else jar.set(name, value);
    }
    return { res, text: await res.text(), cookies: res.headers.getSetCookie() };
  }
  return {
    jar,
    get: (path: string, headers: Record<string, string> = {}) => request(path, { headers }),
    post: (path: string, fields: Record<string, string>, headers: Record<string, string> = {}) =>
      request(path, {
        method: 'POST',
        body: new URLSearchParams(fields).toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      }),
  };
}
