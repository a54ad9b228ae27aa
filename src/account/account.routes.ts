import Router from '@koa/router';
import type { Middleware } from 'koa';
import { underBase } from '../http/console-session.ts';
import { accountErrors, type AccountPagesDeps } from './account-page.ts';
import { authenticatorPages } from './authenticator.pages.ts';
import { partnerPages } from './partners.pages.ts';
import { passwordPages } from './password.pages.ts';
import { signInPages } from './sign-ins.pages.ts';

export type { AccountPagesDeps } from './account-page.ts';

/**
 * A person's own page (`/account`), behind the console sign-in (password and second factor): the
 * partners holding their grants (withdraw one), their password, their authenticator and recovery
 * codes, their recent sign-ins. Every form carries the session's CSRF token (the console's `form`
 * step refuses a post without it); every change goes through a domain service with the session's
 * `by`, so it is audited.
 */
export function accountPages(deps: AccountPagesDeps): Middleware {
  const router = new Router();
  router.use(deps.signIn.routes);
  const errors = accountErrors(deps.log);
  const get = [errors, deps.signIn.session];
  const post = [errors, deps.signIn.session, deps.signIn.form];
  partnerPages(router, deps, get, post);
  passwordPages(router, deps, get, post);
  authenticatorPages(router, deps, get, post);
  signInPages(router, deps, get);
  return underBase('/account', router.routes() as unknown as Middleware);
}
