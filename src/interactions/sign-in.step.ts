import { saveLoginState } from '../accounts/login-state.store.ts';
import { authenticatePassword } from '../accounts/user.service.ts';
import type { Ctx, LoginRouteDeps } from './login.flow.ts';
import { logRefusal } from './login.outcome.ts';
import { csrf, page } from './login.pages.ts';

const GENERIC_LOGIN_ERROR = 'Invalid username or password.';

export function showLogin(deps: LoginRouteDeps, ctx: Ctx, error?: string, status = 200, username = '') {
  const { interaction, clientName } = ctx.state.flow;
  page(
    ctx,
    'Sign in',
    'login',
    { uid: interaction.uid, csrf: csrf(deps, ctx), client: clientName, alert: error, username: username.slice(0, 64) },
    status,
  );
}

/** POST /interaction/:uid/login: username and password; then the second factor (or enrolment). */
export function verifyPassword(deps: LoginRouteDeps) {
  return async function verifyPassword(ctx: Ctx) {
    const { interaction, form, browser } = ctx.state.flow;
    const username = form.username ?? '';
    const password = form.password ?? '';
    if (!username.trim() || !password) {
      showLogin(deps, ctx, 'Enter your username and your password.', 400, username);
      return;
    }
    const outcome = await authenticatePassword(deps.accounts, username, password);
    await logRefusal(deps, ctx, 'password', outcome);
    if (!outcome.ok) {
      showLogin(deps, ctx, GENERIC_LOGIN_ERROR, 401, username);
      return;
    }
    const enrolled = outcome.user.totpSecret !== null;
    await saveLoginState(
      deps.accounts.db,
      {
        interactionUid: interaction.uid,
        browserHash: deps.binding.hash(browser),
        userId: outcome.user.id,
        stage: enrolled ? 'second_factor' : 'enrol',
        expiresAt: interaction.exp * 1000,
      },
      deps.accounts.now(),
    );
    ctx.status = 303;
    ctx.redirect(`/interaction/${interaction.uid}`);
    return undefined;
  };
}
