import type Provider from 'oidc-provider';
import { deleteLoginState } from '../accounts/login-state.store.ts';
import type { Outcome } from '../accounts/user.service.ts';
import { ACR_MFA, AMR } from '../shared/auth-context.ts';
import type { Ctx, LoginRouteDeps } from './login.flow.ts';

/** Hands the result to oidc-provider and follows it back to /auth. */
export async function finish(ctx: Ctx, result: Parameters<Provider['interactionResult']>[2], merge: boolean) {
  const returnTo = await ctx.state.flow.provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: merge });
  ctx.status = 303;
  ctx.redirect(returnTo);
}

/** Refusals go to the log with the account when known (never the username typed: it may be a password). */
export function logRefusal(deps: LoginRouteDeps, ctx: Ctx, step: string, outcome: Outcome): void {
  if (outcome.ok) return;
  const fields = { step, account: outcome.accountId, client_id: ctx.state.flow.interaction.params.client_id };
  deps.log.info('login refused', fields);
  // not the person's doing: the operator must look at this row (see `keys rewrap`, KEK settings)
  if (outcome.unreadable) deps.log.error('the stored TOTP secret does not open for this account', fields);
  deps.metrics?.failure();
  if (outcome.lockedNow) {
    deps.log.warn('account locked', fields);
    deps.metrics?.lockout();
  }
}

/** A successful last step ends the login: the person is signed in with password and second factor. */
export function finishLogin(deps: LoginRouteDeps) {
  return async function finishLogin(ctx: Ctx, outcome: Outcome) {
    if (!outcome.ok) return false;
    const { interaction } = ctx.state.flow;
    await deleteLoginState(deps.accounts.db, interaction.uid);
    deps.binding.clear(ctx, interaction.uid);
    deps.log.info('login', { account: outcome.user.id, client_id: interaction.params.client_id });
    deps.metrics?.success();
    await finish(ctx, { login: { accountId: outcome.user.id, amr: AMR, acr: ACR_MFA, remember: true } }, false);
    return true;
  };
}
