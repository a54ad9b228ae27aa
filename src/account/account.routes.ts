import Router from '@koa/router';
import type { Middleware } from 'koa';
import { consoleSessionOf, type ConsoleSignIn } from '../http/console-session.ts';
import { renderPage } from '../shared/views.ts';

export type AccountPagesDeps = Readonly<{ signIn: ConsoleSignIn }>;

/** A person's own page (`/account`), behind the console sign-in (password and second factor). */
export function accountPages(deps: AccountPagesDeps): Middleware {
  const router = new Router();
  router.use(deps.signIn.routes);
  router.get('/account', deps.signIn.session, (ctx) => {
    const session = consoleSessionOf(ctx);
    ctx.type = 'html';
    ctx.body = renderPage(ctx, 'Your account', 'account/home', { console: { username: session.user.username, csrf: session.csrf } });
  });
  return router.routes() as unknown as Middleware;
}
