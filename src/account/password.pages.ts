import type Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import { changeOwnPassword, passwordStamp } from '../accounts/own-account.service.ts';
import { consoleSessionOf } from '../http/console-session.ts';
import { AppError } from '../shared/errors.ts';
import { formOf, recordRefusal, refusalWords, sentence, showAccountPage, type AccountPagesDeps } from './account-page.ts';

function showPassword(ctx: Context, alert?: { text: string; kind: 'alert' | 'notice' }, status = 200) {
  const { user } = consoleSessionOf(ctx);
  showAccountPage(ctx, 'Change your password', 'password', { stamp: passwordStamp(user), admin: user.isAdmin, alert }, status);
}

/**
 * `/account/password`: the current password and the new one twice. The post runs behind the
 * sign-in's limits (per address, per username) and in its turn of the password-hash queue; a
 * wrong current password counts and is audited as a failed sign-in.
 */
export function passwordPages(router: Router, deps: AccountPagesDeps, get: Middleware[], post: Middleware[]): void {
  router.get('/account/password', ...get, (ctx) => {
    showPassword(ctx, ctx.query.done === 'changed' ? { text: 'Done: your password is changed.', kind: 'notice' } : undefined);
  });
  const username = (ctx: Context) => consoleSessionOf(ctx).user.username;
  router.post('/account/password', ...post, deps.attempts.perAddress, deps.attempts.password(username), async (ctx) => {
    const session = consoleSessionOf(ctx);
    const form = formOf(ctx);
    const input = { stamp: form.stamp ?? '', current: form.current ?? '', next: form.password ?? '', repeat: form.repeat ?? '' };
    let outcome;
    try {
      outcome = await changeOwnPassword(deps.accounts, session.user.id, input, session.by);
    } catch (error) {
      if (!(error instanceof AppError) || (error.status !== 400 && error.status !== 409)) throw error;
      showPassword(ctx, { text: sentence(error.message), kind: 'alert' }, error.status);
      return;
    }
    if (!outcome.ok) {
      await recordRefusal(deps, ctx, 'account_password', outcome);
      showPassword(ctx, { text: refusalWords(outcome, 'Your current password is not right.'), kind: 'alert' }, 401);
      return;
    }
    // a 303 also gives the username's count back (src/limits/throttle.middleware.ts)
    ctx.status = 303;
    ctx.redirect('/account/password?done=changed');
  });
}
