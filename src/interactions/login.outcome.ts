import type Provider from 'oidc-provider';
import { appendAudit, type AuditBy } from '../audit/audit.service.ts';
import { deleteLoginState } from '../accounts/login-state.store.ts';
import type { Outcome } from '../accounts/user.service.ts';
import { requestIdOf } from '../http/request-log.middleware.ts';
import { clientAddress } from '../limits/source-address.ts';
import { ACR_MFA, AMR } from '../shared/auth-context.ts';
import { AppError } from '../shared/errors.ts';
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

/** The audit log's view of a login request: the person if known, the client address, the request id. */
function auditBy(deps: LoginRouteDeps, ctx: Ctx, accountId: string | undefined): AuditBy {
  const { request_id: requestId, client_ip: sourceIp } = loginLogFields(deps, ctx);
  return { actor: accountId ? { type: 'person', id: accountId } : { type: 'anonymous' }, sourceIp, requestId };
}

/**
 * Refusals go to the log with the account when known (never the username typed: it may be a
 * password), and `locked: true` when the account is locked (the refusal was a lock, or locked it).
 * The audit log gets a `signin.failure` row (`signin.locked` for the refusal that locked the
 * account). The refusal stands if that row cannot be written: the failure is logged as an error.
 */
export async function logRefusal(deps: LoginRouteDeps, ctx: Ctx, step: string, outcome: Outcome): Promise<void> {
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
  const event = {
    action: outcome.lockedNow ? 'signin.locked' : 'signin.failure',
    target: outcome.accountId ?? null,
    details: { step, locked: fields.locked, client_id: fields.client_id as string },
  };
  await appendAudit(deps.accounts.db, auditBy(deps, ctx, outcome.accountId), event, deps.accounts.now()).catch((error: unknown) => {
    deps.log.error('audit log: a sign-in refusal was not recorded', { ...fields, err: error });
  });
}

/** A successful last step ends the login: the person is signed in with password and second factor. */
export function finishLogin(deps: LoginRouteDeps) {
  return async function finishLogin(ctx: Ctx, outcome: Outcome) {
    if (!outcome.ok) return false;
    const { interaction } = ctx.state.flow;
    // no sign-in without its audit row: if it cannot be written, this request fails (503) and the
    // login state stays, so the person can try again
    const event = { action: 'signin.success', target: outcome.user.id, details: { client_id: interaction.params.client_id as string } };
    await appendAudit(deps.accounts.db, auditBy(deps, ctx, outcome.user.id), event, deps.accounts.now()).catch((error: unknown) => {
      deps.log.error('audit log: a sign-in was not recorded, so it was refused', { ...loginLogFields(deps, ctx), err: error });
      throw new AppError('temporarily_unavailable', 'Signing in is not possible right now. Try again in a moment.', { status: 503 });
    });
    await deleteLoginState(deps.accounts.db, interaction.uid);
    deps.binding.clear(ctx, interaction.uid);
    deps.log.info('login', { ...loginLogFields(deps, ctx), account: outcome.user.id, client_id: interaction.params.client_id });
    deps.metrics?.success();
    await finish(ctx, { login: { accountId: outcome.user.id, amr: AMR, acr: ACR_MFA, remember: true } }, false);
    return true;
  };
}
