import type { RouterContext } from '@koa/router';
import type Provider from 'oidc-provider';
import type { Interaction } from 'oidc-provider';
import type { AccountDeps } from '../accounts/user.service.ts';
import type { LoginState } from '../accounts/login-state.store.ts';
import type { LoginMetrics } from '../http/metrics.registry.ts';
import type { AttemptThrottles } from '../limits/throttle.middleware.ts';
import type { Logger } from '../log/logger.ts';
import type { BrowserBinding } from './browser.binding.ts';

export type LoginRouteDeps = Readonly<{ accounts: AccountDeps; binding: BrowserBinding; log: Logger; metrics?: LoginMetrics; attempts: AttemptThrottles }>;

/** What the guards (interaction.middleware.ts) found out, for the step that answers. */
export type Flow = {
  provider: Provider;
  interaction: Interaction;
  clientName: string;
  browser: string;
  form: Record<string, string>;
  login?: LoginState;
};
export type Ctx = RouterContext<{ flow: Flow }>;

/** Messages more than one step shows. */
export const EXPIRED = 'This sign-in page has expired or is no longer valid. Go back to the application and start again.';
export const STEP_USED = 'This form was already used or belongs to another step. Go back to the application and start again.';
export const GENERIC_CODE_ERROR = 'That code is not valid. Check your authenticator app and try again.';
