import { AppError } from '../shared/errors.ts';
import { showConsent } from './consent.step.ts';
import { showEnrolmentCode } from './enrolment-code.step.ts';
import { showEnrol, showEnrolled } from './enrolment-confirm.step.ts';
import { EXPIRED, type Ctx, type LoginRouteDeps } from './login.flow.ts';
import { showSecondFactor } from './second-factor.step.ts';
import { showLogin } from './sign-in.step.ts';

/** GET /interaction/:uid: whatever this interaction and this browser need next. */
export function showStep(deps: LoginRouteDeps) {
  return async function showStep(ctx: Ctx) {
    const { interaction, login } = ctx.state.flow;
    if (interaction.prompt.name === 'consent') return showConsent(deps, ctx);
    if (interaction.prompt.name !== 'login') throw new AppError('invalid_request', EXPIRED);
    if (login?.stage === 'second_factor') {
      showSecondFactor(deps, ctx);
      return;
    }
    if (login?.stage === 'enrol') {
      showEnrolmentCode(deps, ctx);
      return;
    }
    if (login?.stage === 'enrol_confirm') return showEnrol(deps, ctx);
    if (login?.stage === 'enrolled') {
      showEnrolled(deps, ctx);
      return;
    }
    showLogin(deps, ctx);
  };
}
