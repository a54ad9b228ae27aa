import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context } from 'koa';

export const BINDING_COOKIE = 'portcullis.login';

/**
 * Ties a login to the browser that started it: a random value in an HttpOnly, SameSite=Strict
 * cookie scoped to the interaction's path. The database keeps only its hash (so a leaked table
 * row cannot be replayed as a cookie), and every form carries an HMAC of interaction + value
 * as its CSRF token: a form is valid only for this interaction in this browser.
 */
export function createBrowserBinding(options: { key: string; secure: boolean }) {
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
      return createHash('sha256').update(value).digest('base64url');
    },
    csrfToken(uid: string, value: string): string {
      return createHmac('sha256', options.key).update(`csrf ${uid} ${value}`).digest('base64url');
    },
    csrfValid(uid: string, value: string, token: string | undefined): boolean {
      if (typeof token !== 'string') return false;
      const expected = Buffer.from(this.csrfToken(uid, value));
      const given = Buffer.from(token);
      return expected.length === given.length && timingSafeEqual(expected, given);
    },
  };
}

export type BrowserBinding = ReturnType<typeof createBrowserBinding>;
