import fs from 'node:fs';
import Router, { type RouterContext, type RouterMiddleware } from '@koa/router';
import type { Middleware, Next } from 'koa';
import type Provider from 'oidc-provider';
import type { Interaction } from 'oidc-provider';
import QRCode from 'qrcode';
import { LOGIN_STEP_ATTEMPTS } from '../accounts/lockout.service.ts';
import {
  authenticatePassword,
  checkEnrolmentCode,
  confirmEnrolment,
  continuingUser,
  enrolmentUri,
  findActiveUser,
  normaliseUsername,
  offerTotpSecret,
  verifyRecoveryCode,
  verifyTotp,
  type AccountDeps,
  type Outcome,
} from '../accounts/user.service.ts';
import { AppError, escapeHtml } from '../http/errors.ts';
import { readForm } from '../http/form-body.ts';
import { CSP } from '../http/security-headers.ts';
import { renderPage } from '../http/views.ts';
import type { LoginMetrics } from '../http/metrics.service.ts';
import type { AttemptThrottles } from '../limits/throttle.middleware.ts';
import type { Logger } from '../log/logger.ts';
import type { BrowserBinding } from './browser.binding.ts';
import { grantConsent, requestedScopes, scopeListItems } from './consent.service.ts';
import {
  advanceLoginState,
  claimAttempt,
  deleteLoginState,
  endIfExhausted,
  findLoginState,
  saveLoginState,
  type LoginStage,
  type LoginState,
} from './login-state.store.ts';

/** The authentication context class of every Portcullis login: password plus a second factor. */
export const ACR_MFA = 'urn:portcullis:acr:mfa';
const AMR = ['pwd', 'otp'];

export type LoginRouteDeps = Readonly<{ accounts: AccountDeps; binding: BrowserBinding; log: Logger; metrics?: LoginMetrics; attempts: AttemptThrottles }>;

type Flow = {
  provider: Provider;
  interaction: Interaction;
  clientName: string;
  browser: string;
  form: Record<string, string>;
  login?: LoginState;
};
type Ctx = RouterContext<{ flow: Flow }>;

const STYLESHEET = fs.readFileSync(new URL('../../views/portcullis.css', import.meta.url), 'utf8');

const GENERIC_LOGIN_ERROR = 'Invalid username or password.';
const GENERIC_CODE_ERROR = 'That code is not valid. Check your authenticator app and try again.';
const EXPIRED = 'This sign-in page has expired or is no longer valid. Go back to the application and start again.';
const STEP_USED = 'This form was already used or belongs to another step. Go back to the application and start again.';
const TOO_MANY_CODES = 'Too many wrong codes. Sign in again with your username and password.';
const GENERIC_ENROLMENT_ERROR = 'That enrolment code is not valid or has expired. Check it, or ask for a new one.';

function alert(message: string | undefined): string {
  return message ? `<p class="alert" role="alert">${escapeHtml(message)}</p>` : '';
}

function page(ctx: Ctx, title: string, view: string, values: Record<string, string>, status = 200): void {
  ctx.status = status;
  ctx.type = 'html';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = renderPage(title, view, values);
}

function showError(ctx: Ctx, status: number, title: string, message: string): void {
  ctx.status = status;
  ctx.type = 'html';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = renderPage(title, 'error', { message, code: status >= 500 ? 'server_error' : 'invalid_request' });
}

/** Every failure becomes a readable page: never a stack trace, never oidc-provider's JSON. */
function pageErrors(log: Logger) {
  return async function pageErrors(ctx: Ctx, next: Next) {
    try {
      await next();
    } catch (error) {
      if (error instanceof AppError && error.expose) return showError(ctx, error.status, 'Something went wrong', error.message);
      const err = error as Error & { error?: string };
      if (err.name === 'SessionNotFound' || err.error === 'invalid_request' || err.error === 'session_not_found') {
        return showError(ctx, 400, 'Sign-in expired', EXPIRED);
      }
      log.error('interaction failed', { err, path: ctx.path });
      return showError(ctx, 500, 'Something went wrong', 'The request could not be completed. Please try again later.');
    }
    return undefined;
  };
}

/** The interaction this browser is in; its uid must be the one in the path. */
async function loadInteraction(ctx: Ctx, next: Next) {
  const provider = ctx.app as unknown as Provider;
  const interaction = await provider.interactionDetails(ctx.req, ctx.res);
  if (interaction.uid !== ctx.params.uid) throw new AppError('invalid_request', EXPIRED);
  const client = await provider.Client.find(String(interaction.params.client_id));
  if (!client) throw new AppError('invalid_request', EXPIRED);
  ctx.state.flow = { provider, interaction, clientName: client.clientName ?? client.clientId, browser: '', form: {} };
  // Chrome applies form-action to the redirects that follow a form post: the last one lands on
  // the partner's redirect URI, so that origin (and only it) joins 'self'.
  const redirect = URL.parse(String(interaction.params.redirect_uri ?? ''));
  if (redirect) ctx.set('Content-Security-Policy', CSP.replace("form-action 'self'", `form-action 'self' ${redirect.origin}`));
  return next();
}

function bindBrowser(binding: BrowserBinding) {
  return async function bindBrowser(ctx: Ctx, next: Next) {
    const { interaction } = ctx.state.flow;
    ctx.state.flow.browser = binding.ensure(ctx, interaction.uid, interaction.exp * 1000);
    return next();
  };
}

/** Posts: the browser must already hold its cookie, and the form its matching CSRF token. */
function checkForm(binding: BrowserBinding) {
  return async function checkForm(ctx: Ctx, next: Next) {
    const browser = binding.read(ctx);
    const form = await readForm(ctx);
    if (!browser || !binding.csrfValid(ctx.state.flow.interaction.uid, browser, form.csrf)) {
      throw new AppError('invalid_request', 'This form is not valid any more (it was sent from another page, or cookies are off). Go back to the application and start again.', { status: 403 });
    }
    ctx.state.flow.browser = browser;
    ctx.state.flow.form = form;
    return next();
  };
}

function requirePrompt(name: 'login' | 'consent') {
  return async function requirePrompt(ctx: Ctx, next: Next) {
    if (ctx.state.flow.interaction.prompt.name !== name) throw new AppError('invalid_request', 'This step is already done. Go back to the application and start again.', { status: 409 });
    return next();
  };
}

function loadLoginState(deps: LoginRouteDeps) {
  return async function loadLoginState(ctx: Ctx, next: Next) {
    const { interaction, browser } = ctx.state.flow;
    ctx.state.flow.login = await findLoginState(deps.accounts.db, interaction.uid, deps.binding.hash(browser), deps.accounts.now());
    return next();
  };
}

function requireStage(stage: LoginStage) {
  return async function requireStage(ctx: Ctx, next: Next) {
    if (ctx.state.flow.login?.stage !== stage) {
      throw new AppError('invalid_request', STEP_USED, { status: 409 });
    }
    return next();
  };
}

function csrf(deps: LoginRouteDeps, ctx: Ctx): string {
  return deps.binding.csrfToken(ctx.state.flow.interaction.uid, ctx.state.flow.browser);
}

function showLogin(deps: LoginRouteDeps, ctx: Ctx, error?: string, status = 200, username = '') {
  const { interaction, clientName } = ctx.state.flow;
  page(ctx, 'Sign in', 'login', { uid: interaction.uid, csrf: csrf(deps, ctx), client: clientName, alert: alert(error), username: username.slice(0, 64) }, status);
}

function showSecondFactor(deps: LoginRouteDeps, ctx: Ctx, error?: string, status = 200) {
  page(ctx, 'Two-step verification', 'second-factor', { uid: ctx.state.flow.interaction.uid, csrf: csrf(deps, ctx), alert: alert(error) }, status);
}

function showRecovery(deps: LoginRouteDeps, ctx: Ctx, error?: string, status = 200) {
  page(ctx, 'Use a recovery code', 'recovery', { uid: ctx.state.flow.interaction.uid, csrf: csrf(deps, ctx), alert: alert(error) }, status);
}

function showEnrolmentCode(deps: LoginRouteDeps, ctx: Ctx, error?: string, status = 200) {
  page(ctx, 'Set up your authenticator', 'enrol', { uid: ctx.state.flow.interaction.uid, csrf: csrf(deps, ctx), alert: alert(error) }, status);
}

/** The new secret, as a QR code and as text: shown only once the enrolment code checked out. */
async function showEnrol(deps: LoginRouteDeps, ctx: Ctx, error?: string, status = 200) {
  const login = ctx.state.flow.login!;
  const user = await findActiveUser(deps.accounts.db, login.userId);
  if (!user || !login.pendingSecret) throw new AppError('invalid_request', EXPIRED);
  const { secret, uri } = enrolmentUri(deps.accounts, { sealedSecret: login.pendingSecret, interactionUid: login.interactionUid }, user.username);
  const qr = await QRCode.toDataURL(uri, { errorCorrectionLevel: 'M', margin: 2, width: 200 });
  page(ctx, 'Connect your authenticator', 'enrol-authenticator', {
    uid: ctx.state.flow.interaction.uid,
    csrf: csrf(deps, ctx),
    alert: alert(error),
    qr,
    secret: secret.match(/.{1,4}/g)!.join(' '),
  }, status);
}

async function showConsent(deps: LoginRouteDeps, ctx: Ctx) {
  const { interaction, clientName } = ctx.state.flow;
  const accountId = interaction.session?.accountId;
  const user = accountId ? await findActiveUser(deps.accounts.db, accountId) : undefined;
  if (!user) throw new AppError('invalid_request', EXPIRED);
  page(ctx, `Allow ${clientName}?`, 'consent', {
    uid: interaction.uid,
    csrf: csrf(deps, ctx),
    client: clientName,
    username: user.username,
    scopes: await scopeListItems(deps.accounts.db, requestedScopes(interaction)),
  });
}

/** Hands the result to oidc-provider and follows it back to /auth. */
async function finish(ctx: Ctx, result: Parameters<Provider['interactionResult']>[2], merge: boolean) {
  const returnTo = await ctx.state.flow.provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: merge });
  ctx.status = 303;
  ctx.redirect(returnTo);
}

/** Refusals go to the log with the account when known (never the username typed: it may be a password). */
function logRefusal(deps: LoginRouteDeps, ctx: Ctx, step: string, outcome: Outcome): void {
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

function finishLogin(deps: LoginRouteDeps) {
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

function endedByCap(deps: LoginRouteDeps, ctx: Ctx): void {
  const { interaction, login } = ctx.state.flow;
  deps.log.info('login ended: too many wrong codes', { account: login?.userId, client_id: interaction.params.client_id });
  showLogin(deps, ctx, TOO_MANY_CODES, 401);
}

/**
 * Takes one of this step's attempts before a code is checked (one SQL statement): when none is
 * left the login state is gone and the password page answers. False when the page is answered.
 */
async function takeAttempt(deps: LoginRouteDeps, ctx: Ctx): Promise<boolean> {
  const taken = await claimAttempt(deps.accounts.db, ctx.state.flow.login!, LOGIN_STEP_ATTEMPTS, deps.accounts.now());
  if (taken === 'moved') throw new AppError('invalid_request', STEP_USED, { status: 409 });
  if (taken === 'exhausted') endedByCap(deps, ctx);
  return taken === 'ok';
}

/** A wrong code: the step's page again, or the password page if that was its last attempt. */
async function refuseCode(deps: LoginRouteDeps, ctx: Ctx, again: () => unknown): Promise<void> {
  if (await endIfExhausted(deps.accounts.db, ctx.state.flow.login!, LOGIN_STEP_ATTEMPTS)) return endedByCap(deps, ctx);
  await again();
}

/** GET /interaction/:uid: whatever this interaction and this browser need next. */
function showStep(deps: LoginRouteDeps) {
  return async function showStep(ctx: Ctx) {
    const { interaction, login } = ctx.state.flow;
    if (interaction.prompt.name === 'consent') return showConsent(deps, ctx);
    if (interaction.prompt.name !== 'login') throw new AppError('invalid_request', EXPIRED);
    if (login?.stage === 'second_factor') return showSecondFactor(deps, ctx);
    if (login?.stage === 'enrol') return showEnrolmentCode(deps, ctx);
    if (login?.stage === 'enrol_confirm') return showEnrol(deps, ctx);
    if (login?.stage === 'enrolled') return page(ctx, 'Authenticator set up', 'enrolled', { uid: interaction.uid, csrf: csrf(deps, ctx) });
    return showLogin(deps, ctx);
  };
}

function verifyPassword(deps: LoginRouteDeps) {
  return async function verifyPassword(ctx: Ctx) {
    const { interaction, form, browser } = ctx.state.flow;
    const username = form.username ?? '';
    const password = form.password ?? '';
    if (!username.trim() || !password) return showLogin(deps, ctx, 'Enter your username and your password.', 400, username);
    const outcome = await authenticatePassword(deps.accounts, username, password);
    logRefusal(deps, ctx, 'password', outcome);
    if (!outcome.ok) return showLogin(deps, ctx, GENERIC_LOGIN_ERROR, 401, username);
    const enrolled = outcome.user.totpSecret !== null;
    await saveLoginState(deps.accounts.db, {
      interactionUid: interaction.uid,
      browserHash: deps.binding.hash(browser),
      userId: outcome.user.id,
      stage: enrolled ? 'second_factor' : 'enrol',
      expiresAt: interaction.exp * 1000,
    }, deps.accounts.now());
    ctx.status = 303;
    ctx.redirect(`/interaction/${interaction.uid}`);
    return undefined;
  };
}

function verifySecondFactor(deps: LoginRouteDeps) {
  const done = finishLogin(deps);
  return async function verifySecondFactor(ctx: Ctx) {
    const code = ctx.state.flow.form.code ?? '';
    if (!code.trim()) return showSecondFactor(deps, ctx, 'Enter the code from your authenticator app.', 400);
    if (!(await takeAttempt(deps, ctx))) return undefined;
    const outcome = await verifyTotp(deps.accounts, ctx.state.flow.login!.userId, code);
    logRefusal(deps, ctx, 'totp', outcome);
    if (!(await done(ctx, outcome))) await refuseCode(deps, ctx, () => showSecondFactor(deps, ctx, GENERIC_CODE_ERROR, 401));
    return undefined;
  };
}

function verifyRecovery(deps: LoginRouteDeps) {
  const done = finishLogin(deps);
  return async function verifyRecovery(ctx: Ctx) {
    const code = ctx.state.flow.form.recovery_code ?? '';
    if (!code.trim()) return showRecovery(deps, ctx, 'Enter one of your recovery codes.', 400);
    if (!(await takeAttempt(deps, ctx))) return undefined;
    const outcome = await verifyRecoveryCode(deps.accounts, ctx.state.flow.login!.userId, code);
    logRefusal(deps, ctx, 'recovery_code', outcome);
    if (!(await done(ctx, outcome))) await refuseCode(deps, ctx, () => showRecovery(deps, ctx, 'That recovery code is not valid.', 401));
    return undefined;
  };
}

/** Enrolment, first step: the operator's one-time code. Only then is a secret made and shown. */
function acceptEnrolmentCode(deps: LoginRouteDeps) {
  return async function acceptEnrolmentCode(ctx: Ctx) {
    const { interaction, form } = ctx.state.flow;
    const code = form.enrolment_code ?? '';
    if (!code.trim()) return showEnrolmentCode(deps, ctx, 'Enter the enrolment code you were given.', 400);
    if (!(await takeAttempt(deps, ctx))) return undefined;
    const result = await checkEnrolmentCode(deps.accounts, ctx.state.flow.login!.userId, code);
    if (!result.ok) {
      logRefusal(deps, ctx, 'enrolment_code', result);
      return refuseCode(deps, ctx, () => showEnrolmentCode(deps, ctx, GENERIC_ENROLMENT_ERROR, 401));
    }
    const offered = offerTotpSecret(deps.accounts, interaction.uid);
    if (!(await advanceLoginState(deps.accounts.db, interaction.uid, 'enrol', { stage: 'enrol_confirm', pendingSecret: offered.sealed, enrolmentCodeHash: result.codeHash }))) {
      throw new AppError('invalid_request', STEP_USED, { status: 409 });
    }
    ctx.status = 303;
    ctx.redirect(`/interaction/${interaction.uid}`);
    return undefined;
  };
}

/** Enrolment, second step: a current code from the new authenticator binds it and spends the enrolment code. */
function confirmAuthenticator(deps: LoginRouteDeps) {
  return async function confirmAuthenticator(ctx: Ctx) {
    const { interaction, form } = ctx.state.flow;
    const login = ctx.state.flow.login!;
    const code = form.code ?? '';
    if (!code.trim()) return showEnrol(deps, ctx, 'Enter the code your authenticator app shows.', 400);
    if (!login.pendingSecret || !login.enrolmentCodeHash) throw new AppError('invalid_request', EXPIRED);
    if (!(await takeAttempt(deps, ctx))) return undefined;
    const result = await confirmEnrolment(deps.accounts, login.userId, { sealedSecret: login.pendingSecret, interactionUid: interaction.uid, enrolmentCodeHash: login.enrolmentCodeHash }, code);
    logRefusal(deps, ctx, 'enrolment', result.ok ? { ok: true, user: result.user } : result);
    if (!result.ok) return refuseCode(deps, ctx, () => showEnrol(deps, ctx, GENERIC_CODE_ERROR, 401));
    if (!(await advanceLoginState(deps.accounts.db, interaction.uid, 'enrol_confirm', { stage: 'enrolled', pendingSecret: null, enrolmentCodeHash: null }))) {
      throw new AppError('invalid_request', 'This form was already used. Go back to the application and start again.', { status: 409 });
    }
    const codes = result.recoveryCodes.map((item) => `<li><code>${escapeHtml(item)}</code></li>`).join('\n');
    return page(ctx, 'Save your recovery codes', 'recovery-codes', { uid: interaction.uid, csrf: csrf(deps, ctx), codes });
  };
}

function continueAfterEnrolment(deps: LoginRouteDeps) {
  const done = finishLogin(deps);
  return async function continueAfterEnrolment(ctx: Ctx) {
    const user = await continuingUser(deps.accounts, ctx.state.flow.login!.userId);
    if (!user || !(await done(ctx, { ok: true, user }))) throw new AppError('invalid_request', EXPIRED);
  };
}

function decideConsent(deps: LoginRouteDeps) {
  return async function decideConsent(ctx: Ctx) {
    const { interaction, provider, form } = ctx.state.flow;
    const accountId = interaction.session?.accountId;
    if (!accountId) throw new AppError('invalid_request', EXPIRED);
    if (form.decision === 'allow') {
      const grantId = await grantConsent(provider, deps.accounts.db, interaction, accountId, deps.accounts.now());
      return finish(ctx, { consent: { grantId } }, true);
    }
    if (form.decision === 'deny') return finish(ctx, { error: 'access_denied', error_description: 'the person declined the request' }, false);
    throw new AppError('invalid_input', 'Choose Allow or Deny.');
  };
}

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
  const password = deps.attempts.password((ctx) => normaliseUsername((ctx as Ctx).state.flow.form.username ?? '')) as RouterMiddleware<{ flow: Flow }>;
  const code = deps.attempts.secondFactor((ctx) => (ctx as Ctx).state.flow.login?.userId) as RouterMiddleware<{ flow: Flow }>;

  router.get('/assets/portcullis.css', (ctx) => {
    ctx.type = 'text/css';
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = STYLESHEET;
  });
  router.get('/interaction/:uid', ...view, showStep(deps));
  router.get('/interaction/:uid/recovery', ...view, requirePrompt('login'), requireStage('second_factor'), (ctx: Ctx) => showRecovery(deps, ctx));
  router.post('/interaction/:uid/login', ...attempt, password, verifyPassword(deps));
  router.post('/interaction/:uid/otp', ...attempt, requireStage('second_factor'), code, verifySecondFactor(deps));
  router.post('/interaction/:uid/recovery', ...attempt, requireStage('second_factor'), code, verifyRecovery(deps));
  router.post('/interaction/:uid/enrol-code', ...attempt, requireStage('enrol'), code, acceptEnrolmentCode(deps));
  router.post('/interaction/:uid/enrol', ...attempt, requireStage('enrol_confirm'), code, confirmAuthenticator(deps));
  router.post('/interaction/:uid/continue', ...loginPost, requireStage('enrolled'), continueAfterEnrolment(deps));
  router.post('/interaction/:uid/consent', ...post, requirePrompt('consent'), decideConsent(deps));
  return router.routes() as unknown as Middleware;
}
