import Router, { type RouterMiddleware } from '@koa/router';
import type { Middleware } from 'koa';
import { normaliseUsername } from '../accounts/user.service.ts';
import { decideConsent } from './consent.step.ts';
import { showStep } from './current-step.ts';
import { acceptEnrolmentCode } from './enrolment-code.step.ts';
import { confirmAuthenticator, continueAfterEnrolment } from './enrolment-confirm.step.ts';
import {
  bindBrowser,
  checkForm,
  loadInteraction,
  loadLoginState,
  pageErrors,
  requirePrompt,
  requireStage,
} from './interaction.middleware.ts';
import type { Ctx, Flow, LoginRouteDeps } from './login.flow.ts';
import { showRecovery, verifyRecovery, verifySecondFactor } from './second-factor.step.ts';
import { verifyPassword } from './sign-in.step.ts';

/**
 * The pages of a login: password → second factor (or enrolment: enrolment code, then the new
 * authenticator's code) → consent. Each code-taking step allows LOGIN_STEP_ATTEMPTS codes.
 */
export function loginRoutes(deps: LoginRouteDeps): Middleware {
  const router = new Router<{ flow: Flow }>();
  const errors = pageErrors(deps.log);
  const view = [errors, loadInteraction, bindBrowser(deps.binding), loadLoginState(deps)];
  const post = [errors, loadInteraction, checkForm(deps.binding), loadLoginState(deps)];
  const loginPost = [...post, requirePrompt('login')];
  // password and code posts count per address before any work, then per username or account;
  // the password step runs in its turn of the bounded hash queue (src/limits/)
  const attempt = [errors, deps.attempts.perAddress, ...loginPost.slice(1)] as Array<RouterMiddleware<{ flow: Flow }>>;
  const password = deps.attempts.password((ctx) => normaliseUsername((ctx as Ctx).state.flow.form.username ?? '')) as RouterMiddleware<{
    flow: Flow;
  }>;
  const code = deps.attempts.secondFactor((ctx) => (ctx as Ctx).state.flow.login?.userId) as RouterMiddleware<{ flow: Flow }>;

  router.get('/interaction/:uid', ...view, showStep(deps));
  router.get('/interaction/:uid/recovery', ...view, requirePrompt('login'), requireStage('second_factor'), (ctx: Ctx) =>
    showRecovery(deps, ctx),
  );
  router.post('/interaction/:uid/login', ...attempt, password, verifyPassword(deps));
  router.post('/interaction/:uid/otp', ...attempt, requireStage('second_factor'), code, verifySecondFactor(deps));
  router.post('/interaction/:uid/recovery', ...attempt, requireStage('second_factor'), code, verifyRecovery(deps));
  router.post('/interaction/:uid/enrol-code', ...attempt, requireStage('enrol'), code, acceptEnrolmentCode(deps));
  router.post('/interaction/:uid/enrol', ...attempt, requireStage('enrol_confirm'), code, confirmAuthenticator(deps));
  router.post('/interaction/:uid/continue', ...loginPost, requireStage('enrolled'), continueAfterEnrolment(deps));
  router.post('/interaction/:uid/consent', ...post, requirePrompt('consent'), decideConsent(deps));
  return router.routes() as unknown as Middleware;
}
