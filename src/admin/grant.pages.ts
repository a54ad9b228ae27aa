import type { Context } from 'koa';
import { userNamed } from '../accounts/user.service.ts';
import type { Db } from '../db/knex.ts';
import { grantPage, revokeGrantById } from '../grants/grant.service.ts';
import { consoleSessionOf } from '../http/console-session.ts';
import { scopeWords } from '../interactions/consent.service.ts';
import { detailWords } from '../interactions/details-words.ts';
import { getPartner } from '../partners/partner.service.ts';
import { AppError, notFound } from '../shared/errors.ts';
import { consolePath, consoleProblems, formField, queryField, withQuery, type ConsolePagesDeps } from './console-page.ts';

type GrantItem = Awaited<ReturnType<typeof grantPage>>['items'][number];

/** An ISO 8601 instant as the console writes it: `2026-11-29 17:04 UTC` (the machine value goes in `datetime`). */
export function whenText(iso: string | null): string {
  return iso === null ? '' : `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

/**
 * Grants as the console lists them: the person and partner by name, each scope in the words
 * the consent page used, each approved payment in words, granted and last used.
 */
export async function grantRows(db: Db, items: readonly GrantItem[]) {
  const scopes = [...new Set(items.flatMap((grant) => grant.scope.split(' ').filter(Boolean)))];
  const words = new Map((await scopeWords(db, scopes)).map((entry) => [entry.scope, entry.words]));
  return items.map((grant) => ({
    id: grant.id,
    person: grant.account_id === null ? null : { id: grant.account_id, username: grant.user ?? grant.account_id },
    partner: { name: grant.partner ?? grant.client_id ?? 'a deleted partner', clientId: grant.client_id },
    scopes: grant.scope
      .split(' ')
      .filter(Boolean)
      .map((scope) => ({ scope, words: words.get(scope) ?? scope })),
    details: detailWords(grant.authorization_details, grant.partner ?? 'the partner'),
    grantedAt: grant.granted_at,
    grantedText: whenText(grant.granted_at),
    lastUsedAt: grant.last_used_at,
    lastUsedText: whenText(grant.last_used_at),
    liveTokens: grant.live_tokens,
  }));
}

/**
 * `/admin/grants`: the consents people gave partners, a page at a time, filtered by person
 * (username) or partner (client_id); each can be revoked (a recent sign-in required). Revoking
 * deletes the grant and every token and code issued from it: the partner's refresh fails at once.
 */
export function grantPages({ router, signIn, accounts, show }: ConsolePagesDeps): void {
  const { db } = accounts;
  const problems = consoleProblems(show);

  /** Whose grants the filter asks for; an unknown person or partner is said so on the page (404). */
  async function filterOf(person: string | undefined, partner: string | undefined) {
    try {
      return {
        accountId: person === undefined ? undefined : (await userNamed(db, person.slice(0, 200))).id,
        clientId: partner === undefined ? undefined : (await getPartner(db, partner.slice(0, 200))).clientId,
      };
    } catch (error) {
      if (error instanceof AppError && error.code === 'not_found') return { message: error.message };
      throw error;
    }
  }

  async function list(ctx: Context) {
    const person = queryField(ctx, 'person');
    const partner = queryField(ctx, 'partner');
    const view = {
      person: person ?? '',
      partner: partner ?? '',
      filtered: person !== undefined || partner !== undefined,
      done: queryField(ctx, 'done') === 'revoked' ? 'The grant was revoked: its refresh and opaque access tokens no longer work.' : null,
      back: ctx.originalUrl,
      grants: [] as unknown[],
      next: null as string | null,
    };
    const filter = await filterOf(person, partner);
    if ('message' in filter) {
      ctx.status = 404;
      show(ctx, 'Grants', 'admin/grants', { ...view, message: filter.message });
      return;
    }
    const page = await grantPage(db, { ...filter, cursor: queryField(ctx, 'cursor') });
    show(ctx, 'Grants', 'admin/grants', {
      ...view,
      grants: await grantRows(db, page.items),
      next: page.next === null ? null : withQuery(ctx, { cursor: page.next, done: undefined }),
    });
  }

  const backOf = (ctx: Context) => consolePath(formField(ctx, 'back'), '/admin/grants');

  async function revoke(ctx: Context) {
    const id = (ctx.params as Record<string, string>).id;
    try {
      await revokeGrantById(db, id, consoleSessionOf(ctx).by);
    } catch (error) {
      // revoked a moment ago (another tab, another admin), expired, or never there
      if (error instanceof AppError && error.code === 'not_found')
        throw notFound('This grant no longer exists: it was revoked or has expired.');
      throw error;
    }
    const back = new URL(backOf(ctx), 'http://console.invalid');
    back.searchParams.delete('cursor');
    back.searchParams.set('done', 'revoked');
    ctx.status = 303;
    ctx.redirect(`${back.pathname}${back.search}`);
  }

  router.get('/admin/grants', problems, signIn.session, list);
  router.post('/admin/grants/:id/revoke', problems, signIn.session, signIn.form, signIn.recentSignIn(backOf), revoke);
}
