import { EncryptJWT, jwtDecrypt, type JWTPayload } from 'jose';
import type { Context } from 'koa';

const COOKIE = 'portcullis.admin.reveal';
const PATH = '/admin/partners';
/** Long enough to follow the redirect; a secret nobody came to see is gone after this. */
const SECONDS = 120;

/**
 * A partner's new client secret, carried from the POST that made it to the one page that shows
 * it (post, redirect, get: a reload never posts again). It waits in an encrypted, HttpOnly
 * cookie scoped to the partner pages and bound to the admin and the partner; the page that shows
 * it clears it, so a reload or the back button finds nothing. Nothing is kept on the server:
 * any instance behind a load balancer can show it, and only this browser can.
 */
export function oneTimeReveal(options: { keys: readonly string[]; issuer: string }) {
  const keys = options.keys.map((key) => Buffer.from(key, 'base64url'));
  const audience = `${options.issuer}${PATH}`;
  const cookie = (maxAge: number) => ({
    path: PATH,
    httpOnly: true,
    sameSite: 'strict' as const,
    secure: options.issuer.startsWith('https:'),
    signed: false,
    overwrite: true,
    maxAge,
  });
  async function open(value: string): Promise<JWTPayload | undefined> {
    for (const key of keys) {
      try {
        const { payload } = await jwtDecrypt(value, key, {
          audience,
          keyManagementAlgorithms: ['dir'],
          contentEncryptionAlgorithms: ['A256GCM'],
        });
        return payload;
      } catch {
        // another KEK's, expired, or not ours
      }
    }
    return undefined;
  }
  return {
    async keep(ctx: Context, holder: { personId: string; clientId: string }, secret: string): Promise<void> {
      const sealed = await new EncryptJWT({ sub: holder.personId, client_id: holder.clientId, secret })
        .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
        .setIssuedAt()
        .setExpirationTime(`${String(SECONDS)}s`)
        .setAudience(audience)
        .encrypt(keys[0]);
      ctx.cookies.set(COOKIE, sealed, cookie(SECONDS * 1000));
    },
    /** The secret kept for this admin and partner, once; undefined when it was shown already. */
    async take(ctx: Context, holder: { personId: string; clientId: string }): Promise<string | undefined> {
      const value = ctx.cookies.get(COOKIE, { signed: false });
      if (!value) return undefined;
      const payload = await open(value);
      const mine = payload?.sub === holder.personId && payload.client_id === holder.clientId && typeof payload.secret === 'string';
      // another partner's secret, still to be shown on its own page, stays
      if (payload && !mine) return undefined;
      ctx.cookies.set(COOKIE, '', { ...cookie(0), maxAge: undefined, expires: new Date(0) });
      return mine ? (payload.secret as string) : undefined;
    },
  };
}
