import { advanceLoginState } from '../accounts/login-state.store.ts';
import { checkEnrolmentCode, offerTotpSecret } from '../accounts/user.service.ts';
import { AppError } from '../shared/errors.ts';
import { refuseCode, takeAttempt } from './code-attempts.ts';
import { currentLogin, STEP_USED, type Ctx, type LoginRouteDeps } from './login.flow.ts';
import { logRefusal } from './login.outcome.ts';
import { csrf, page } from './login.pages.ts';

const GENERIC_ENROLMENT_ERROR = 'That enrolment code is not valid or has expired. Check it, or ask for a new one.';

export function showEnrolmentCode(deps: LoginRouteDeps, ctx: Ctx, error?: string, status = 200) {
  page(ctx, 'Set up your authenticator', 'enrol', { uid: ctx.state.flow.interaction.uid, csrf: csrf(deps, ctx), alert: error }, status);
}

/** Enrolment, first step: the operator's one-time code. Only then is a secret made and shown. */
export function acceptEnrolmentCode(deps: LoginRouteDeps) {
  return async function acceptEnrolmentCode(ctx: Ctx) {
    const { interaction, form } = ctx.state.flow;
    const code = form.enrolment_code ?? '';
    if (!code.trim()) {
      showEnrolmentCode(deps, ctx, 'Enter the enrolment code you were given.', 400);
      return;
    }
    if (!(await takeAttempt(deps, ctx))) return undefined;
    const result = await checkEnrolmentCode(deps.accounts, currentLogin(ctx).userId, code);
    if (!result.ok) {
      await logRefusal(deps, ctx, 'enrolment_code', result);
      return refuseCode(deps, ctx, () => showEnrolmentCode(deps, ctx, GENERIC_ENROLMENT_ERROR, 401));
    }
    const offered = offerTotpSecret(deps.accounts, interaction.uid);
    if (
      !(await advanceLoginState(deps.accounts.db, interaction.uid, 'enrol', {
        stage: 'enrol_confirm',
        pendingSecret: offered.sealed,
        enrolmentCodeHash: result.codeHash,
      }))
    ) {
      throw new AppError('invalid_request', STEP_USED, { status: 409 });
    }
    ctx.status = 303;
    ctx.redirect(`/interaction/${interaction.uid}`);
    return undefined;
  };
}
