import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import { consoleSessionOf, underBase, type ConsoleSignIn } from '../http/console-session.ts';
import { renderPage } from '../shared/views.ts';
import type { AccountDeps } from '../accounts/user.service.ts';
import type { AdminPages, AdminPagesDeps } from './console-page.ts';
import { apiPages } from './api.pages.ts';
import { auditPages } from './audit.pages.ts';
import { grantPages } from './grant.pages.ts';
import { keyPages } from './key.pages.ts';
import { overviewPage } from './overview.pages.ts';
import { partnerPages } from './partner.pages.ts';
import { peoplePages } from './people.pages.ts';

export type AdminConsoleDeps = Readonly<{ signIn: ConsoleSignIn; accounts: AccountDeps }> & AdminPagesDeps;

/** The console's sections, in the navigation's order (each area's pages live in src/admin/<area>.pages.ts). */
const ADMIN_SECTIONS = [
  { href: '/admin', label: 'Overview' },
  { href: '/admin/partners', label: 'Partners' },
  { href: '/admin/apis', label: 'APIs and scopes' },
  { href: '/admin/people', label: 'People' },
  { href: '/admin/grants', label: 'Grants' },
  { href: '/admin/keys', label: 'Signing keys' },
  { href: '/admin/audit', label: 'Audit log' },
] as const;

/**
 * The admin console's pages (`/admin`): server-rendered, behind the console sign-in (an active
 * person with `--admin`, password and second factor no older than ADMIN_AUTH_MAX_AGE), every
 * form with its session's CSRF token.
 */
export function adminConsole(deps: AdminConsoleDeps): Middleware {
  const { signIn } = deps;
  const router = new Router();
  const show = (ctx: Context, title: string, view: string, data: Record<string, unknown> = {}) => {
    const session = consoleSessionOf(ctx);
    ctx.type = 'html';
    ctx.body = renderPage(ctx, title, view, {
      ...data,
      console: { username: session.user.username, csrf: session.csrf, path: ctx.path },
      links: ADMIN_SECTIONS,
    });
  };
  router.use(signIn.routes);
  const pages: AdminPages = { ...deps, show };
  overviewPage(router, pages);
  partnerPages(router, pages);
  apiPages(router, pages);
  keyPages(router, pages);
  peoplePages({ router, signIn, accounts: deps.accounts, show });
  grantPages({ router, signIn, accounts: deps.accounts, show });
  auditPages({ router, signIn, accounts: deps.accounts, show });
  return underBase('/admin', router.routes() as unknown as Middleware);
}
