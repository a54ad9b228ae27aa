import type { RouterContext } from '@koa/router';
import type Provider from 'oidc-provider';
import type { Interaction } from 'oidc-provider';
import type { AccountDeps } from '../accounts/user.service.ts';
import type { LoginState } from '../accounts/login-state.store.ts';
import type { Form } from '../http/form-body.ts';
import type { LoginMetrics } from '../http/metrics.registry.ts';
import type { AttemptThrottles } from '../limits/throttle.middleware.ts';
import type { Logger } from '../log/logger.ts';
import { AppError } from '../shared/errors.ts';
import type { BrowserBinding } from './browser.binding.ts';

export type LoginRouteDeps = Readonly<{
  accounts: AccountDeps;
  binding: BrowserBinding;
  log: Logger;
  metrics?: LoginMetrics;
  attempts: AttemptThrottles;
  /** TRUST_PROXY: the client address in login logs is the one our proxy saw. */
  trustProxy: boolean;
}>;

/** What the guards (interaction.middleware.ts) found out, for the step that answers. */
export type Flow = {
  provider: Provider;
  interaction: Interaction;
  clientName: string;
  browser: string;
  form: Form;
  login?: LoginState;
};
export type Ctx = RouterContext<{ flow: Flow }>;

/** The login state a step acts on: `requireStage` lets a request reach the step only with one. */
export function currentLogin(ctx: Ctx): LoginState {
  const { login } = ctx.state.flow;
  if (!login) throw new AppError('invalid_request', STEP_USED, { status: 409 });
  return login;
}

/** Messages more than one step shows. */
export const EXPIRED = 'This sign-in page has expired or is no longer valid. Go back to the application and start again.';
export const STEP_USED = 'This form was already used or belongs to another step. Go back to the application and start again.';
export const GENERIC_CODE_ERROR = 'That code is not valid. Check your authenticator app and try again.';
