import { createHmac, randomBytes } from 'node:crypto';
import type { Context } from 'koa';
import { constantTimeEqual } from '../shared/constant-time.ts';
import { sha256Base64url } from '../shared/hashing.ts';

const BINDING_COOKIE = 'portcullis.login';

/**
 * Ties a login to the browser that started it: a random value in an HttpOnly, SameSite=Strict
 * cookie scoped to the interaction's path. The database keeps only its hash (so a leaked table
 * row cannot be replayed as a cookie), and every form carries an HMAC of interaction + value
 * as its CSRF token: a form is valid only for this interaction in this browser.
 *
 * `keys` are the HMAC keys, one per configured KEK, the first KEK's first: tokens are made with
 * the first and accepted under any, so a form half filled when the KEKs rotate still posts.
 */
export function createBrowserBinding(options: { keys: readonly string[]; secure: boolean }) {
  if (options.keys.length === 0) throw new Error('the browser binding needs at least one key');
  const mac = (key: string, uid: string, value: string) =>
    Buffer.from(createHmac('sha256', key).update(`csrf ${uid} ${value}`).digest('base64url'));
  const cookieOptions = (uid: string, maxAgeMs: number) => ({
    path: `/interaction/${uid}`,
    httpOnly: true,
    sameSite: 'strict' as const,
    secure: options.secure,
    signed: false,
    overwrite: true,
    maxAge: maxAgeMs,
  });

  return {
    /** The browser's value for this interaction, made on first sight. */
    ensure(ctx: Context, uid: string, expiresAtMs: number): string {
      const existing = this.read(ctx);
      if (existing) return existing;
      const value = randomBytes(32).toString('base64url');
      ctx.cookies.set(BINDING_COOKIE, value, cookieOptions(uid, Math.max(1000, expiresAtMs - Date.now())));
      return value;
    },
    read(ctx: Context): string | undefined {
      const value = ctx.cookies.get(BINDING_COOKIE, { signed: false });
      return value && /^[\w-]{43}$/.test(value) ? value : undefined;
    },
    clear(ctx: Context, uid: string): void {
      ctx.cookies.set(BINDING_COOKIE, '', { ...cookieOptions(uid, 0), maxAge: undefined, expires: new Date(0) });
    },
    hash(value: string): string {
      return sha256Base64url(value);
    },
    csrfToken(uid: string, value: string): string {
      return mac(options.keys[0], uid, value).toString();
    },
    csrfValid(uid: string, value: string, token: string | undefined): boolean {
      if (typeof token !== 'string') return false;
      const given = Buffer.from(token);
      // every key is tried (no early exit), so timing does not tell which KEK made the token
      let valid = false;
      for (const key of options.keys) {
        const expected = mac(key, uid, value);
        if (constantTimeEqual(expected, given)) valid = true;
      }
      return valid;
    },
  };
}

export type BrowserBinding = ReturnType<typeof createBrowserBinding>;
