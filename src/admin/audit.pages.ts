import type { Context } from 'koa';
import { auditPage, verifyChain } from '../audit/audit.service.ts';
import { AppError } from '../shared/errors.ts';
import { consoleProblems, queryField, withQuery, type ConsolePagesDeps } from './console-page.ts';
import { whenText } from './grant.pages.ts';

const FILTERS = ['actor', 'action', 'target', 'since', 'until'] as const;
type Filters = Record<(typeof FILTERS)[number], string | undefined>;

/** `details` as lines `name: value` (values that are not text as JSON); the log holds no secrets. */
function detailLines(details: unknown): string[] {
  if (details === null || typeof details !== 'object') return details === undefined ? [] : [JSON.stringify(details)];
  return Object.entries(details).map(([name, value]) => `${name}: ${typeof value === 'string' ? value : JSON.stringify(value)}`);
}

/** The person an actor names (`person:<id>`), for a link to their page. */
const personOfActor = (actor: string) => (actor.startsWith('person:') ? `/admin/people/${encodeURIComponent(actor.slice(7))}` : null);

/**
 * `/admin/audit`: the audit log, newest first, a page at a time, filtered by actor, action (or a
 * family, `partner.*`), target and time (`since` inclusive, `until` exclusive: ISO 8601 or a
 * duration back from now). Whether the hash chain holds is checked on demand (it reads every row).
 */
export function auditPages({ router, signIn, accounts, show }: ConsolePagesDeps): void {
  const { db } = accounts;
  const problems = consoleProblems(show);

  async function list(ctx: Context) {
    const filters = Object.fromEntries(FILTERS.map((name) => [name, queryField(ctx, name)])) as Filters;
    const view = { filters: Object.fromEntries(FILTERS.map((name) => [name, filters[name] ?? ''])), rows: [] as unknown[], next: null };
    let page: Awaited<ReturnType<typeof auditPage>>;
    try {
      page = await auditPage(db, { ...filters, cursor: queryField(ctx, 'cursor') });
    } catch (error) {
      // a bad date or cursor: the form again, with what was wrong
      if (!(error instanceof AppError) || error.status !== 400) throw error;
      ctx.status = 400;
      show(ctx, 'Audit log', 'admin/audit', { ...view, message: error.message });
      return;
    }
    show(ctx, 'Audit log', 'admin/audit', {
      ...view,
      rows: page.items.map((row) => ({
        ...row,
        atText: whenText(row.at),
        actorPath: personOfActor(row.actor),
        detailLines: detailLines(row.details),
      })),
      next: page.next === null ? null : withQuery(ctx, { cursor: page.next }),
    });
  }

  async function verify(ctx: Context) {
    const verdict = await verifyChain(db);
    show(ctx, 'Audit log check', 'admin/audit-verify', { verdict });
  }

  router.get('/admin/audit', problems, signIn.session, list);
  router.post('/admin/audit/verify', problems, signIn.session, signIn.form, verify);
}
