import type Provider from 'oidc-provider';
import { deleteLoginState } from '../accounts/login-state.store.ts';
import type { Outcome } from '../accounts/user.service.ts';
import { requestIdOf } from '../http/request-log.middleware.ts';
import { clientAddress } from '../limits/source-address.ts';
import { ACR_MFA, AMR } from '../shared/auth-context.ts';
import type { Ctx, LoginRouteDeps } from './login.flow.ts';

/** Hands the result to oidc-provider and follows it back to /auth. */
export async function finish(ctx: Ctx, result: Parameters<Provider['interactionResult']>[2], merge: boolean) {
  const returnTo = await ctx.state.flow.provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: merge });
  ctx.status = 303;
  ctx.redirect(returnTo);
}

/**
 * What every login log line carries besides the account and the partner (client_id): the request
 * id (as in the request's own line) and the client address (the proxy's view with TRUST_PROXY).
 */
export function loginLogFields(deps: LoginRouteDeps, ctx: Ctx) {
  return { request_id: requestIdOf(ctx), client_ip: clientAddress(ctx, deps.trustProxy) };
}

/**
 * Refusals go to the log with the account when known (never the username typed: it may be a
 * password), and `locked: true` when the account is locked (the refusal was a lock, or locked it).
 */
export function logRefusal(deps: LoginRouteDeps, ctx: Ctx, step: string, outcome: Outcome): void {
  if (outcome.ok) return;
  const fields = {
    ...loginLogFields(deps, ctx),
    locked: outcome.locked === true,
    step,
    account: outcome.accountId,
    client_id: ctx.state.flow.interaction.params.client_id,
  };
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
    deps.log.info('login', { ...loginLogFields(deps, ctx), account: outcome.user.id, client_id: interaction.params.client_id });
    deps.metrics?.success();
    await finish(ctx, { login: { accountId: outcome.user.id, amr: AMR, acr: ACR_MFA, remember: true } }, false);
    return true;
  };
}
