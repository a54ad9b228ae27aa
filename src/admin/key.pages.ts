import type Router from '@koa/router';
import type { Context } from 'koa';
import { consoleSessionOf } from '../http/console-session.ts';
import { loadKeyTimeline, revokeKey, rotateKeys } from '../keys/signing-key.service.ts';
import { notFound } from '../shared/errors.ts';
import { type AdminPages, consoleProblems, duration, formField, param, queryField, when } from './console-page.ts';
import { keyTimelinePicture } from './key-timeline.picture.ts';

/** A kid is a base64url JWK thumbprint: anything else names no key. */
const KID = /^[\w-]{1,128}$/;

/** The keys as the overview and the keys page show them: the picture, and the table (its text alternative). */
export async function keysOnPage(pages: Pick<AdminPages, 'db' | 'policy'>) {
  const timeline = await loadKeyTimeline(pages.db, pages.policy);
  return {
    signing: timeline.signing,
    picture: keyTimelinePicture(timeline),
    rows: timeline.keys.map((key) => ({
      kid: key.kid,
      state: key.state,
      published: key.published,
      created: when(key.created_at),
      activates: when(key.activates_at),
      signsUntil: when(key.signs_until),
      removed: key.revoked_at ? '—' : when(key.removed_at),
      revoked: when(key.revoked_at),
    })),
  };
}

/**
 * `/admin/keys`: the timeline; rotate (a new key published now, signing after KEY_PREPUBLISH or at
 * once, as `portcullis keys rotate [--now]`); emergency revoke of one key, confirmed by typing its
 * kid (as `portcullis keys revoke KID`). Both need a recent sign-in. This instance serves the new
 * key set as soon as the change is written; every other instance at its next key poll.
 */
export function keyPages(router: Router, pages: AdminPages): void {
  const { signIn, show } = pages;
  const refusals = consoleProblems(show);

  const kidOf = (ctx: Context): string => {
    const kid = param(ctx, 'kid');
    if (!KID.test(kid)) throw notFound(`no signing key ${kid}`);
    return kid;
  };

  router.get('/admin/keys', signIn.session, refusals, async (ctx) => {
    const rotated = queryField(ctx, 'rotated');
    const revoked = queryField(ctx, 'revoked');
    const keys = await keysOnPage(pages);
    const added = rotated === undefined ? undefined : keys.rows.find((key) => key.kid === rotated);
    show(ctx, 'Signing keys', 'admin/keys', {
      keys,
      added,
      revoked: revoked !== undefined && keys.rows.some((key) => key.kid === revoked && key.state === 'revoked') ? revoked : undefined,
      poll: duration(Math.round(pages.policy.graceMs / 1000)),
      prepublish: duration(Math.round(pages.policy.prepublishMs / 1000)),
    });
  });

  router.post(
    '/admin/keys/rotate',
    signIn.session,
    refusals,
    signIn.form,
    signIn.recentSignIn(() => '/admin/keys'),
    async (ctx) => {
      const { by } = consoleSessionOf(ctx);
      const key = await rotateKeys(pages.db, pages.keyring, pages.policy, { immediately: (formField(ctx, 'now') ?? '') === 'yes' }, by);
      await pages.keysChanged();
      ctx.status = 303;
      ctx.redirect(`/admin/keys?rotated=${encodeURIComponent(key?.kid ?? '')}`);
    },
  );

  const confirmRevoke = async (ctx: Context, message?: string) => {
    const kid = kidOf(ctx);
    const key = (await keysOnPage(pages)).rows.find((row) => row.kid === kid);
    if (!key) throw notFound(`no signing key ${kid}`);
    show(ctx, 'Revoke a signing key', 'admin/key-revoke', { key, message, signing: key.state === 'active' });
  };

  const back = (ctx: Context) => `/admin/keys/${encodeURIComponent(param(ctx, 'kid'))}/revoke`;
  router.get('/admin/keys/:kid/revoke', signIn.session, refusals, signIn.recentSignIn(back), async (ctx) => {
    await confirmRevoke(ctx);
  });
  router.post('/admin/keys/:kid/revoke', signIn.session, refusals, signIn.form, signIn.recentSignIn(back), async (ctx) => {
    const kid = kidOf(ctx);
    if ((formField(ctx, 'confirm') ?? '') !== kid) {
      await confirmRevoke(ctx, 'The key ID typed does not match: type it exactly as shown to revoke this key.');
      ctx.status = 400;
      return;
    }
    await revokeKey(pages.db, pages.keyring, pages.policy, kid, consoleSessionOf(ctx).by);
    await pages.keysChanged();
    ctx.status = 303;
    ctx.redirect(`/admin/keys?revoked=${encodeURIComponent(kid)}`);
  });
}
