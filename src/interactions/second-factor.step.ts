import { verifyRecoveryCode, verifyTotp } from '../accounts/user.service.ts';
import { refuseCode, takeAttempt } from './code-attempts.ts';
import { currentLogin, GENERIC_CODE_ERROR, type Ctx, type LoginRouteDeps } from './login.flow.ts';
import { finishLogin, logRefusal } from './login.outcome.ts';
import { csrf, page } from './login.pages.ts';

export function showSecondFactor(deps: LoginRouteDeps, ctx: Ctx, error?: string, status = 200) {
  page(ctx, 'Two-step verification', 'second-factor', { uid: ctx.state.flow.interaction.uid, csrf: csrf(deps, ctx), alert: error }, status);
}

export function showRecovery(deps: LoginRouteDeps, ctx: Ctx, error?: string, status = 200) {
  page(ctx, 'Use a recovery code', 'recovery', { uid: ctx.state.flow.interaction.uid, csrf: csrf(deps, ctx), alert: error }, status);
}

/** POST /interaction/:uid/otp: a code from the authenticator app. */
export function verifySecondFactor(deps: LoginRouteDeps) {
  const done = finishLogin(deps);
  return async function verifySecondFactor(ctx: Ctx) {
    const code = ctx.state.flow.form.code ?? '';
    if (!code.trim()) {
      showSecondFactor(deps, ctx, 'Enter the code from your authenticator app.', 400);
      return;
    }
    if (!(await takeAttempt(deps, ctx))) return undefined;
    const outcome = await verifyTotp(deps.accounts, currentLogin(ctx).userId, code);
    await logRefusal(deps, ctx, 'totp', outcome);
    if (!(await done(ctx, outcome))) await refuseCode(deps, ctx, () => showSecondFactor(deps, ctx, GENERIC_CODE_ERROR, 401));
    return undefined;
  };
}

/** POST /interaction/:uid/recovery: one of the person's recovery codes instead. */
export function verifyRecovery(deps: LoginRouteDeps) {
  const done = finishLogin(deps);
  return async function verifyRecovery(ctx: Ctx) {
    const code = ctx.state.flow.form.recovery_code ?? '';
    if (!code.trim()) {
      showRecovery(deps, ctx, 'Enter one of your recovery codes.', 400);
      return;
    }
    if (!(await takeAttempt(deps, ctx))) return undefined;
    const outcome = await verifyRecoveryCode(deps.accounts, currentLogin(ctx).userId, code);
    await logRefusal(deps, ctx, 'recovery_code', outcome);
    if (!(await done(ctx, outcome))) await refuseCode(deps, ctx, () => showRecovery(deps, ctx, 'That recovery code is not valid.', 401));
    return undefined;
  };
}
