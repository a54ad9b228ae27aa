import type Router from '@koa/router';
import type { Middleware } from 'koa';
import { auditPage } from '../audit/audit.service.ts';
import { consoleSessionOf } from '../http/console-session.ts';
import { showAccountPage, type AccountPagesDeps } from './account-page.ts';
import { timeWords } from './time-words.ts';

const SIGN_INS_PER_PAGE = 20;

/** What a sign-in row of the audit log says, in words (`step` is the one that failed). */
function eventWords(action: string, step: unknown): string {
  if (action === 'signin.success') return 'Signed in';
  const what =
    step === 'password' || step === 'account_password'
      ? 'wrong password'
      : step === 'recovery_code'
        ? 'wrong recovery code'
        : step === 'enrolment_code' || step === 'enrolment'
          ? 'wrong enrolment code'
          : 'wrong authenticator code';
  const where = typeof step === 'string' && step.startsWith('account_') ? ' (on this page)' : '';
  return action === 'signin.locked' ? `Locked: ${what}${where}, too many in a row` : `Refused: ${what}${where}`;
}

/** `/account/sign-ins`: this person's sign-ins, refusals and locks from the audit log, newest first, a page at a time. */
export function signInPages(router: Router, deps: AccountPagesDeps, get: Middleware[]): void {
  router.get('/account/sign-ins', ...get, async (ctx) => {
    const { user } = consoleSessionOf(ctx);
    const cursor = typeof ctx.query.after === 'string' ? ctx.query.after : undefined;
    const page = await auditPage(
      deps.accounts.db,
      { target: user.id, action: 'signin.*', cursor, limit: SIGN_INS_PER_PAGE },
      deps.accounts.now(),
    );
    const rows = page.items.map((row) => {
      const details = (row.details ?? {}) as Record<string, unknown>;
      return {
        at: timeWords(row.at),
        what: eventWords(row.action, details.step),
        failed: row.action !== 'signin.success',
        from: row.source_ip ?? 'unknown',
      };
    });
    const next = page.next === null ? null : `/account/sign-ins?${new URLSearchParams({ after: page.next }).toString()}`;
    showAccountPage(ctx, 'Recent sign-ins', 'sign-ins', { rows, next });
  });
}
