import type { Context, Middleware, Next } from 'koa';
import { appendAudit } from '../audit/audit.service.ts';
import type { AccountDeps, Refusal } from '../accounts/user.service.ts';
import { isDatabaseUnavailable, isUnavailableAnswer } from '../db/availability.ts';
import { consoleSessionOf, type ConsoleSignIn } from '../http/console-session.ts';
import type { AttemptThrottles } from '../limits/throttle.middleware.ts';
import type { Logger } from '../log/logger.ts';
import { AppError } from '../shared/errors.ts';
import { renderPage } from '../shared/views.ts';

export type AccountPagesDeps = Readonly<{
  signIn: ConsoleSignIn;
  /** the account rules' database, KEK keyring and clock */
  accounts: AccountDeps;
  /** the sign-in's limits, for the posts that take a password or a code (src/limits/) */
  attempts: AttemptThrottles;
  log: Logger;
}>;

/** The page's sections, in the navigation's order. */
const ACCOUNT_SECTIONS = [
  { href: '/account', label: 'Partners' },
  { href: '/account/password', label: 'Password' },
  { href: '/account/authenticator', label: 'Authenticator' },
  { href: '/account/sign-ins', label: 'Recent sign-ins' },
] as const;

/** A page of /account: `view` in views/account/, with the session (CSRF token) and the navigation. */
export function showAccountPage(ctx: Context, title: string, view: string, data: Record<string, unknown> = {}, status = 200): void {
  const session = consoleSessionOf(ctx);
  ctx.status = status;
  ctx.type = 'html';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = renderPage(ctx, title, `account/${view}`, {
    ...data,
    console: { username: session.user.username, csrf: session.csrf, path: ctx.path },
    links: ACCOUNT_SECTIONS,
  });
}

/** The fields of the form posted (after the console's `form` step). */
export function formOf(ctx: Context): Partial<Record<string, string>> {
  return ctx.state.form as Partial<Record<string, string>>;
}

/** A sentence for a person from a rule's message (`the password must…` → `The password must….`). */
export function sentence(message: string): string {
  const text = message.charAt(0).toUpperCase() + message.slice(1);
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

/**
 * Every failure of an /account request is a readable page, never a stack trace: an exposed
 * AppError (a body too large or not a form, a cursor not ours) with its status and message,
 * anything else a 500 page (logged). A database outage goes on to src/http/outage.middleware.ts.
 */
export function accountErrors(log: Logger): Middleware {
  return async function accountErrors(ctx: Context, next: Next) {
    try {
      await next();
    } catch (error) {
      if (isUnavailableAnswer(error) || isDatabaseUnavailable(error)) throw error;
      const known = error instanceof AppError && error.expose;
      if (!known) log.error('account page failed', { err: error, path: ctx.path });
      ctx.status = known ? error.status : 500;
      ctx.type = 'html';
      ctx.set('Cache-Control', 'no-store');
      ctx.body = renderPage(ctx, 'Something went wrong', 'error', {
        message: known ? sentence(error.message) : 'The request could not be completed. Please try again later.',
        code: known ? error.code : 'server_error',
      });
    }
  };
}

/**
 * A wrong current password or code given on /account: logged, and audited as a failed sign-in
 * (`signin.locked` when it locked the account), as the sign-in pages do, so the person's recent
 * sign-ins and the audit log show it. The refusal stands if the row cannot be written.
 */
export async function recordRefusal(deps: AccountPagesDeps, ctx: Context, step: string, refusal: Refusal): Promise<void> {
  const { by } = consoleSessionOf(ctx);
  const fields = { request_id: by.requestId, client_ip: by.sourceIp, step, account: refusal.accountId, locked: refusal.locked === true };
  deps.log.info('account page: proof refused', fields);
  if (refusal.lockedNow) deps.log.warn('account locked', fields);
  const event = {
    action: refusal.lockedNow ? 'signin.locked' : 'signin.failure',
    target: refusal.accountId ?? null,
    details: { step, locked: fields.locked, page: '/account' },
  };
  await appendAudit(deps.accounts.db, by, event, deps.accounts.now()).catch((error: unknown) => {
    deps.log.error('audit log: a refused proof on /account was not recorded', { ...fields, err: error });
  });
}

/** What a refused proof says: the lock when there is one (the person is signed in: it is their own account). */
export function refusalWords(refusal: Refusal, wrong: string): string {
  return refusal.locked
    ? 'Your account is locked after too many wrong attempts. Try again later (a lock lasts 30 minutes or more), or ask an administrator to unlock it.'
    : wrong;
}
