import { LOGIN_STEP_ATTEMPTS } from '../accounts/lockout.policy.ts';
import { claimAttempt, endIfExhausted } from '../accounts/login-state.store.ts';
import { AppError } from '../shared/errors.ts';
import { currentLogin, STEP_USED, type Ctx, type LoginRouteDeps } from './login.flow.ts';
import { loginLogFields } from './login.outcome.ts';
import { showLogin } from './sign-in.step.ts';

const TOO_MANY_CODES = 'Too many wrong codes. Sign in again with your username and password.';

function endedByCap(deps: LoginRouteDeps, ctx: Ctx): void {
  const { interaction, login } = ctx.state.flow;
  deps.log.info('login ended: too many wrong codes', {
    ...loginLogFields(deps, ctx),
    account: login?.userId,
    client_id: interaction.params.client_id,
  });
  showLogin(deps, ctx, TOO_MANY_CODES, 401);
}

/**
 * Takes one of this step's attempts before a code is checked (one SQL statement): when none is
 * left the login state is gone and the password page answers. False when the page is answered.
 */
export async function takeAttempt(deps: LoginRouteDeps, ctx: Ctx): Promise<boolean> {
  const taken = await claimAttempt(deps.accounts.db, currentLogin(ctx), LOGIN_STEP_ATTEMPTS, deps.accounts.now());
  if (taken === 'moved') throw new AppError('invalid_request', STEP_USED, { status: 409 });
  if (taken === 'exhausted') endedByCap(deps, ctx);
  return taken === 'ok';
}

/** A wrong code: the step's page again, or the password page if that was its last attempt. */
export async function refuseCode(deps: LoginRouteDeps, ctx: Ctx, again: () => unknown): Promise<void> {
  if (await endIfExhausted(deps.accounts.db, currentLogin(ctx), LOGIN_STEP_ATTEMPTS)) {
    endedByCap(deps, ctx);
    return;
  }
  await again();
}
