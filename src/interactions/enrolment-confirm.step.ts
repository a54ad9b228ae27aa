import { advanceLoginState } from '../accounts/login-state.store.ts';
import { confirmEnrolment, continuingUser, enrolmentUri, findActiveUser } from '../accounts/user.service.ts';
import { AppError } from '../shared/errors.ts';
import { refuseCode, takeAttempt } from './code-attempts.ts';
import { currentLogin, EXPIRED, GENERIC_CODE_ERROR, type Ctx, type LoginRouteDeps } from './login.flow.ts';
import { finishLogin, logRefusal } from './login.outcome.ts';
import { csrf, page } from './login.pages.ts';

/** The new secret, as a QR code and as text: shown only once the enrolment code checked out. */
export async function showEnrol(deps: LoginRouteDeps, ctx: Ctx, error?: string, status = 200) {
  const login = currentLogin(ctx);
  const user = await findActiveUser(deps.accounts.db, login.userId);
  if (!user || !login.pendingSecret) throw new AppError('invalid_request', EXPIRED);
  const { secret, uri } = enrolmentUri(
    deps.accounts,
    { sealedSecret: login.pendingSecret, interactionUid: login.interactionUid },
    user.username,
  );
  // qrcode (and its PNG encoder) is loaded on the first enrolment, not by every server at start
  const { default: QRCode } = await import('qrcode');
  const qr = await QRCode.toDataURL(uri, { errorCorrectionLevel: 'M', margin: 2, width: 200 });
  page(
    ctx,
    'Connect your authenticator',
    'enrol-authenticator',
    {
      uid: ctx.state.flow.interaction.uid,
      csrf: csrf(deps, ctx),
      alert: error,
      qr,
      secret: (secret.match(/.{1,4}/g) ?? []).join(' '),
    },
    status,
  );
}

/** After the recovery codes were shown: a button that continues the login. */
export function showEnrolled(deps: LoginRouteDeps, ctx: Ctx) {
  page(ctx, 'Authenticator set up', 'enrolled', { uid: ctx.state.flow.interaction.uid, csrf: csrf(deps, ctx) });
}

/** Enrolment, second step: a current code from the new authenticator binds it and spends the enrolment code. */
export function confirmAuthenticator(deps: LoginRouteDeps) {
  return async function confirmAuthenticator(ctx: Ctx) {
    const { interaction, form } = ctx.state.flow;
    const login = currentLogin(ctx);
    const code = form.code ?? '';
    if (!code.trim()) return showEnrol(deps, ctx, 'Enter the code your authenticator app shows.', 400);
    if (!login.pendingSecret || !login.enrolmentCodeHash) throw new AppError('invalid_request', EXPIRED);
    if (!(await takeAttempt(deps, ctx))) return undefined;
    const result = await confirmEnrolment(
      deps.accounts,
      login.userId,
      { sealedSecret: login.pendingSecret, interactionUid: interaction.uid, enrolmentCodeHash: login.enrolmentCodeHash },
      code,
    );
    await logRefusal(deps, ctx, 'enrolment', result.ok ? { ok: true, user: result.user } : result);
    if (!result.ok) return refuseCode(deps, ctx, () => showEnrol(deps, ctx, GENERIC_CODE_ERROR, 401));
    if (
      !(await advanceLoginState(deps.accounts.db, interaction.uid, 'enrol_confirm', {
        stage: 'enrolled',
        pendingSecret: null,
        enrolmentCodeHash: null,
      }))
    ) {
      throw new AppError('invalid_request', 'This form was already used. Go back to the application and start again.', { status: 409 });
    }
    page(ctx, 'Save your recovery codes', 'recovery-codes', { uid: interaction.uid, csrf: csrf(deps, ctx), codes: result.recoveryCodes });
  };
}

/** POST /interaction/:uid/continue: the recovery codes are saved; the login ends here. */
export function continueAfterEnrolment(deps: LoginRouteDeps) {
  const done = finishLogin(deps);
  return async function continueAfterEnrolment(ctx: Ctx) {
    const user = await continuingUser(deps.accounts, currentLogin(ctx).userId);
    if (!user || !(await done(ctx, { ok: true, user }))) throw new AppError('invalid_request', EXPIRED);
  };
}
