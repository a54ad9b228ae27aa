import type Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import { grantPage, revokeGrantById } from '../grants/grant.service.ts';
import { CONSOLE_CLIENT_ID, consoleSessionOf } from '../http/console-session.ts';
import { scopeWords } from '../interactions/consent.service.ts';
import { detailWords } from '../interactions/details-words.ts';
import { AppError } from '../shared/errors.ts';
import { formOf, showAccountPage, type AccountPagesDeps } from './account-page.ts';
import { timeWords } from './time-words.ts';

/** Alerts the home page shows after a redirect (PRG), by the `done` query value. */
const DONE: Partial<Record<string, string>> = {
  revoked: 'Done: that partner’s permission is withdrawn.',
};

async function showPartners(deps: AccountPagesDeps, ctx: Context, alert?: { text: string; kind: 'alert' | 'notice' }, status = 200) {
  const { user } = consoleSessionOf(ctx);
  const cursor = typeof ctx.query.after === 'string' ? ctx.query.after : undefined;
  const page = await grantPage(deps.accounts.db, { accountId: user.id, notClientId: CONSOLE_CLIENT_ID, cursor }, deps.accounts.now());
  const grants = await Promise.all(
    page.items.map(async (grant) => {
      const partner = grant.partner ?? `${grant.client_id ?? 'A partner'} (no longer registered)`;
      return {
        id: grant.id,
        partner,
        scopes: await scopeWords(deps.accounts.db, grant.scope.split(' ').filter(Boolean)),
        details: detailWords(grant.authorization_details, partner),
        granted: timeWords(grant.granted_at),
        lastUsed: timeWords(grant.last_used_at),
      };
    }),
  );
  const done = typeof ctx.query.done === 'string' ? DONE[ctx.query.done] : undefined;
  showAccountPage(
    ctx,
    'Your account',
    'home',
    {
      grants,
      next: page.next === null ? null : `/account?${new URLSearchParams({ after: page.next }).toString()}`,
      alert: alert ?? (done ? { text: done, kind: 'notice' } : undefined),
    },
    status,
  );
}

/**
 * `/account`: the partners holding a grant of this person (scopes in words, payments approved,
 * given and last used), each with a form that withdraws it (`POST /account/grants/revoke`):
 * `grant revoke`'s service, limited to the person's own grants, audited with the session's `by`.
 */
export function partnerPages(router: Router, deps: AccountPagesDeps, get: Middleware[], post: Middleware[]): void {
  router.get('/account', ...get, (ctx) => showPartners(deps, ctx));
  router.post('/account/grants/revoke', ...post, async (ctx) => {
    const session = consoleSessionOf(ctx);
    try {
      await revokeGrantById(deps.accounts.db, formOf(ctx).grant ?? '', session.by, { accountId: session.user.id });
    } catch (error) {
      if (!(error instanceof AppError) || error.status !== 404) throw error;
      const text = 'That permission was already withdrawn, or is not one of yours: nothing was changed.';
      await showPartners(deps, ctx, { text, kind: 'alert' }, 404);
      return;
    }
    ctx.status = 303;
    ctx.redirect('/account?done=revoked');
  });
}
