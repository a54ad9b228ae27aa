import type { Context, Next } from 'koa';
import {
  createUser,
  describeUserById,
  disableUser,
  enableUser,
  resetTotp,
  unlockUser,
  userById,
  userPage,
} from '../accounts/user.service.ts';
import { grantPage } from '../grants/grant.service.ts';
import { consoleSessionOf } from '../http/console-session.ts';
import { AppError } from '../shared/errors.ts';
import { consoleProblems, formField, queryField, showProblem, withQuery, type ConsolePagesDeps } from './console-page.ts';
import { grantRows, whenText } from './grant.pages.ts';

/** What a finished action says on the person's page (`?done=`), by action. */
const DONE: Partial<Record<string, string>> = {
  unlocked: 'Unlocked: the person may sign in again.',
  disabled: 'Disabled: the person is signed out everywhere and their grants and tokens are revoked.',
  enabled: 'Enabled: the person may sign in again (grants revoked at disabling do not come back).',
};

/** A domain message written for the CLI (`--username takes …`) as the form says it. */
const formWords = (message: string) => message.replace(/^--(\w+)/, 'The $1');

/**
 * `/admin/people`: people a page at a time (search by username), create one (the enrolment code
 * for their authenticator shown once), a person's page (status, lock, enrolment, their grants),
 * unlock, enable, and — after a confirmation page and a recent sign-in — reset the second factor
 * (a new enrolment code, shown once) or disable. An admin cannot disable themselves.
 */
export function peoplePages({ router, signIn, accounts, show }: ConsolePagesDeps): void {
  const problems = consoleProblems(show);
  const personPath = (id: string) => `/admin/people/${encodeURIComponent(id)}`;

  async function list(ctx: Context) {
    const search = queryField(ctx, 'search');
    const page = await userPage(accounts, { search, cursor: queryField(ctx, 'cursor') });
    show(ctx, 'People', 'admin/people', {
      search: search ?? '',
      people: page.items.map((person) => ({ ...person, path: personPath(person.id) })),
      next: page.next === null ? null : withQuery(ctx, { cursor: page.next }),
    });
  }

  function showCreateForm(ctx: Context, values: { username?: string; admin?: boolean; message?: string } = {}) {
    show(ctx, 'New person', 'admin/person-new', { username: values.username ?? '', admin: values.admin ?? false, message: values.message });
  }

  async function create(ctx: Context) {
    const username = formField(ctx, 'username') ?? '';
    const admin = formField(ctx, 'admin') === 'yes';
    const form = ctx.state.form as Partial<Record<string, string>>;
    try {
      const created = await createUser(
        accounts,
        { username, password: form.password ?? '', isAdmin: admin, withTotp: false },
        consoleSessionOf(ctx).by,
      );
      if (!('enrolment_code' in created)) throw new Error('a person created without an authenticator has an enrolment code');
      ctx.status = 201;
      show(ctx, 'Person created', 'admin/enrolment-code', {
        username: created.username,
        path: personPath(created.id),
        code: created.enrolment_code,
        expiresText: whenText(created.enrolment_code_expires_at ?? null),
        created: true,
      });
    } catch (error) {
      if (!(error instanceof AppError) || error.status !== 400) throw error;
      showCreateForm(ctx, { username: username.slice(0, 64), admin, message: formWords(error.message) });
      ctx.status = 400;
    }
  }

  /** The person the path names; loads them onto ctx.state.person. */
  async function person(ctx: Context, next: Next) {
    ctx.state.person = await userById(accounts.db, (ctx.params as Record<string, string>).id);
    await next();
  }
  const personOf = (ctx: Context) => ctx.state.person as Awaited<ReturnType<typeof userById>>;

  async function personPage(ctx: Context) {
    const { id } = personOf(ctx);
    const described = await describeUserById(accounts, id);
    const grants = await grantPage(accounts.db, { accountId: id, cursor: queryField(ctx, 'cursor') });
    const done = queryField(ctx, 'done');
    show(ctx, described.username, 'admin/person', {
      person: { ...described, lockedText: whenText(described.locked_until), createdText: whenText(described.created_at) },
      enrolmentExpiresText: whenText(described.enrolment_code_expires_at),
      self: id === consoleSessionOf(ctx).user.id,
      path: personPath(id),
      grants: await grantRows(accounts.db, grants.items),
      next: grants.next === null ? null : withQuery(ctx, { cursor: grants.next, done: undefined }),
      done: done === undefined ? null : (DONE[done] ?? null),
      back: personPath(id),
    });
  }

  const afterAction = (ctx: Context, done: string) => {
    ctx.status = 303;
    ctx.redirect(`${personPath(personOf(ctx).id)}?done=${done}`);
  };

  async function unlock(ctx: Context) {
    await unlockUser(accounts, personOf(ctx).username, consoleSessionOf(ctx).by);
    afterAction(ctx, 'unlocked');
  }

  async function enable(ctx: Context) {
    await enableUser(accounts, personOf(ctx).username, consoleSessionOf(ctx).by);
    afterAction(ctx, 'enabled');
  }

  /** Disabling yourself would lock you out of the console: refused, on the confirmation page too. */
  async function notSelf(ctx: Context, next: Next) {
    if (personOf(ctx).id === consoleSessionOf(ctx).user.id) {
      showProblem(ctx, show, 409, 'You cannot disable yourself: ask another administrator.', personPath(personOf(ctx).id));
      return;
    }
    await next();
  }

  const confirmPage = (action: 'reset-second-factor' | 'disable') => (ctx: Context) => {
    const { id, username } = personOf(ctx);
    show(ctx, action === 'disable' ? `Disable ${username}?` : `Reset ${username}’s second factor?`, 'admin/person-confirm', {
      action,
      username,
      path: personPath(id),
    });
  };
  const confirmPath = (action: string) => (ctx: Context) => `${personPath(personOf(ctx).id)}/${action}`;

  async function reset(ctx: Context) {
    const reset = await resetTotp(accounts, personOf(ctx).username, consoleSessionOf(ctx).by);
    show(ctx, 'Second factor reset', 'admin/enrolment-code', {
      username: reset.username,
      path: personPath(reset.id),
      code: reset.enrolment_code,
      expiresText: whenText(reset.enrolment_code_expires_at),
      created: false,
    });
  }

  async function disable(ctx: Context) {
    await disableUser(accounts, personOf(ctx).username, consoleSessionOf(ctx).by);
    afterAction(ctx, 'disabled');
  }

  const { session, form, recentSignIn } = signIn;
  router.get('/admin/people', problems, session, list);
  router.get('/admin/people/new', problems, session, (ctx) => {
    showCreateForm(ctx);
  });
  router.post('/admin/people', problems, session, form, create);
  router.get('/admin/people/:id', problems, session, person, personPage);
  router.post('/admin/people/:id/unlock', problems, session, form, person, unlock);
  router.post('/admin/people/:id/enable', problems, session, form, person, enable);
  router.get('/admin/people/:id/reset-second-factor', problems, session, person, confirmPage('reset-second-factor'));
  router.post(
    '/admin/people/:id/reset-second-factor',
    problems,
    session,
    form,
    person,
    recentSignIn(confirmPath('reset-second-factor')),
    reset,
  );
  router.get('/admin/people/:id/disable', problems, session, person, notSelf, confirmPage('disable'));
  router.post('/admin/people/:id/disable', problems, session, form, person, notSelf, recentSignIn(confirmPath('disable')), disable);
}
