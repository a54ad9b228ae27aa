import type Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import QRCode from 'qrcode';
import {
  confirmReplacementAuthenticator,
  offerReplacementAuthenticator,
  offeredAuthenticator,
  renewRecoveryCodes,
  type OfferedAuthenticator,
} from '../accounts/own-account.service.ts';
import { consoleSessionOf } from '../http/console-session.ts';
import { formOf, recordRefusal, refusalWords, showAccountPage, type AccountPagesDeps } from './account-page.ts';

type Alert = { text: string; kind: 'alert' | 'notice' };

const NO_CODE = 'Enter the code your authenticator app shows now.';
const WRONG_CODE = 'That code is not right. Enter the code your authenticator app shows now.';
const DONE: Partial<Record<string, string>> = {
  replaced: 'Done: your new authenticator is the one to use from now on. The old one no longer works.',
};

function showAuthenticator(ctx: Context, alert?: Alert, status = 200) {
  showAccountPage(ctx, 'Your authenticator', 'authenticator', { alert }, status);
}

/** The new secret as a QR code and as text (as at enrolment), with the form that confirms it. */
async function showOffer(ctx: Context, offer: OfferedAuthenticator, alert?: Alert, status = 200) {
  const qr = await QRCode.toDataURL(offer.uri, { errorCorrectionLevel: 'M', margin: 2, width: 200 });
  const secret = (offer.secret.match(/.{1,4}/g) ?? []).join(' ');
  showAccountPage(ctx, 'Connect your new authenticator', 'authenticator-new', { qr, secret, pending: offer.sealed, alert }, status);
}

/**
 * `/account/authenticator`: replace the authenticator (a current code, then the new one's QR
 * code, confirmed by a code of the new one: one atomic swap) and make new recovery codes (a
 * current code; shown once). Code posts run behind the sign-in's limits per address and account;
 * a wrong current code counts toward the lockout and is audited as a failed sign-in.
 */
export function authenticatorPages(router: Router, deps: AccountPagesDeps, get: Middleware[], post: Middleware[]): void {
  const codePost = [...post, deps.attempts.perAddress, deps.attempts.secondFactor((ctx) => consoleSessionOf(ctx).user.id)];
  router.get('/account/authenticator', ...get, (ctx) => {
    const done = typeof ctx.query.done === 'string' ? DONE[ctx.query.done] : undefined;
    showAuthenticator(ctx, done ? { text: done, kind: 'notice' } : undefined);
  });

  router.post('/account/authenticator/replace', ...codePost, async (ctx) => {
    const session = consoleSessionOf(ctx);
    const code = formOf(ctx).code ?? '';
    if (!code.trim()) {
      showAuthenticator(ctx, { text: NO_CODE, kind: 'alert' }, 400);
      return;
    }
    const outcome = await offerReplacementAuthenticator(deps.accounts, session.user.id, code, session.csrf);
    if (!outcome.ok) {
      await recordRefusal(deps, ctx, 'account_totp', outcome);
      showAuthenticator(ctx, { text: refusalWords(outcome, WRONG_CODE), kind: 'alert' }, 401);
      return;
    }
    await showOffer(ctx, outcome);
  });

  router.post('/account/authenticator/confirm', ...post, async (ctx) => {
    const session = consoleSessionOf(ctx);
    const form = formOf(ctx);
    const input = { sealed: form.pending ?? '', code: form.code ?? '', binding: session.csrf };
    const result = await confirmReplacementAuthenticator(deps.accounts, session.user.id, input, session.by);
    if (result.ok) {
      ctx.status = 303;
      ctx.redirect('/account/authenticator?done=replaced');
      return;
    }
    const offer =
      result.reason === 'code' ? await offeredAuthenticator(deps.accounts, session.user.id, input.sealed, input.binding) : undefined;
    if (offer) {
      await showOffer(
        ctx,
        offer,
        { text: 'That code is not right. Enter the code your new authenticator app shows now.', kind: 'alert' },
        400,
      );
      return;
    }
    const text = 'This new authenticator was offered too long ago (or in another sign-in): start again. Your current one still works.';
    showAuthenticator(ctx, { text, kind: 'alert' }, 400);
  });

  router.post('/account/recovery-codes', ...codePost, async (ctx) => {
    const session = consoleSessionOf(ctx);
    const code = formOf(ctx).code ?? '';
    if (!code.trim()) {
      showAuthenticator(ctx, { text: NO_CODE, kind: 'alert' }, 400);
      return;
    }
    const outcome = await renewRecoveryCodes(deps.accounts, session.user.id, code, session.by);
    if (!outcome.ok) {
      await recordRefusal(deps, ctx, 'account_totp', outcome);
      showAuthenticator(ctx, { text: refusalWords(outcome, WRONG_CODE), kind: 'alert' }, 401);
      return;
    }
    showAccountPage(ctx, 'Your new recovery codes', 'recovery-codes', { codes: outcome.codes });
  });
}
