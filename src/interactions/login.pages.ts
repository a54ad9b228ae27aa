import { renderPage } from '../shared/views.ts';
import type { Ctx, LoginRouteDeps } from './login.flow.ts';

/** A login page: never cached (it carries the form's CSRF token). */
export function page(ctx: Ctx, title: string, view: string, values: Readonly<Record<string, unknown>>, status = 200): void {
  ctx.status = status;
  ctx.type = 'html';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = renderPage(ctx, title, view, values);
}

export function showError(ctx: Ctx, status: number, title: string, message: string): void {
  ctx.status = status;
  ctx.type = 'html';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = renderPage(ctx, title, 'error', { message, code: status >= 500 ? 'server_error' : 'invalid_request' });
}

/** The CSRF token of this interaction in this browser, for the page's form. */
export function csrf(deps: LoginRouteDeps, ctx: Ctx): string {
  return deps.binding.csrfToken(ctx.state.flow.interaction.uid, ctx.state.flow.browser);
}
