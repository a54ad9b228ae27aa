import type { Next } from 'koa';
import type Provider from 'oidc-provider';
import { findLoginState, type LoginStage } from '../accounts/login-state.store.ts';
import { isDatabaseUnavailable, isUnavailableAnswer } from '../db/availability.ts';
import { readForm } from '../http/form-body.ts';
import type { Logger } from '../log/logger.ts';
import { cspAllowingFormTarget } from '../shared/content-security-policy.ts';
import { AppError } from '../shared/errors.ts';
import type { BrowserBinding } from './browser.binding.ts';
import { EXPIRED, STEP_USED, type Ctx, type LoginRouteDeps } from './login.flow.ts';
import { showError } from './login.pages.ts';

/**
 * Every failure becomes a readable page: never a stack trace, never oidc-provider's JSON. A
 * database outage goes on to src/http/outage.middleware.ts, which answers 503 + Retry-After.
 */
export function pageErrors(log: Logger) {
  return async function pageErrors(ctx: Ctx, next: Next) {
    try {
      await next();
    } catch (error) {
      if (isUnavailableAnswer(error) || isDatabaseUnavailable(error)) throw error;
      if (error instanceof AppError && error.expose) {
        showError(ctx, error.status, 'Something went wrong', error.message);
        return;
      }
      const err = error as Error & { error?: string };
      if (err.name === 'SessionNotFound' || err.error === 'invalid_request' || err.error === 'session_not_found') {
        showError(ctx, 400, 'Sign-in expired', EXPIRED);
        return;
      }
      log.error('interaction failed', { err, path: ctx.path });
      showError(ctx, 500, 'Something went wrong', 'The request could not be completed. Please try again later.');
      return;
    }
    return undefined;
  };
}

/** The interaction this browser is in; its uid must be the one in the path. */
export async function loadInteraction(ctx: Ctx, next: Next) {
  const provider = ctx.app as unknown as Provider;
  const interaction = await provider.interactionDetails(ctx.req, ctx.res);
  if (interaction.uid !== ctx.params.uid) throw new AppError('invalid_request', EXPIRED);
  const client = await provider.Client.find(String(interaction.params.client_id));
  if (!client) throw new AppError('invalid_request', EXPIRED);
  ctx.state.flow = { provider, interaction, clientName: client.clientName ?? client.clientId, browser: '', form: {} };
  const redirectUri = interaction.params.redirect_uri;
  const redirect = URL.parse(typeof redirectUri === 'string' ? redirectUri : '');
  if (redirect) ctx.set('Content-Security-Policy', cspAllowingFormTarget(redirect.origin));
  await next();
}

export function bindBrowser(binding: BrowserBinding) {
  return async function bindBrowser(ctx: Ctx, next: Next) {
    const { interaction } = ctx.state.flow;
    ctx.state.flow.browser = binding.ensure(ctx, interaction.uid, interaction.exp * 1000);
    await next();
  };
}

/** Posts: the browser must already hold its cookie, and the form its matching CSRF token. */
export function checkForm(binding: BrowserBinding) {
  return async function checkForm(ctx: Ctx, next: Next) {
    const browser = binding.read(ctx);
    const form = await readForm(ctx);
    if (!browser || !binding.csrfValid(ctx.state.flow.interaction.uid, browser, form.csrf)) {
      throw new AppError(
        'invalid_request',
        'This form is not valid any more (it was sent from another page, or cookies are off). Go back to the application and start again.',
        { status: 403 },
      );
    }
    ctx.state.flow.browser = browser;
    ctx.state.flow.form = form;
    await next();
  };
}

export function requirePrompt(name: 'login' | 'consent') {
  return async function requirePrompt(ctx: Ctx, next: Next) {
    if (ctx.state.flow.interaction.prompt.name !== name)
      throw new AppError('invalid_request', 'This step is already done. Go back to the application and start again.', { status: 409 });
    await next();
  };
}

export function loadLoginState(deps: LoginRouteDeps) {
  return async function loadLoginState(ctx: Ctx, next: Next) {
    const { interaction, browser } = ctx.state.flow;
    ctx.state.flow.login = await findLoginState(deps.accounts.db, interaction.uid, deps.binding.hash(browser), deps.accounts.now());
    await next();
  };
}

export function requireStage(stage: LoginStage) {
  return async function requireStage(ctx: Ctx, next: Next) {
    if (ctx.state.flow.login?.stage !== stage) {
      throw new AppError('invalid_request', STEP_USED, { status: 409 });
    }
    await next();
  };
}
