import type Router from '@koa/router';
import type { Context } from 'koa';
import { consoleSessionOf } from '../http/console-session.ts';
import {
  createPartner,
  describePartner,
  getPartner,
  partnerPage,
  rotatePartnerSecret,
  setPartnerKeys,
  setPartnerProfile,
  setPartnerStatus,
} from '../partners/partner.service.ts';
import { describeResources } from '../resources/resource.service.ts';
import { type AdminPages, consoleProblems, formField, inWords, param, queryField, shownRefusal, when } from './console-page.ts';
import { oneTimeReveal } from './one-time-reveal.ts';

/** The CLI's options, as the partner forms label them (the services' messages name the options). */
const LABELS: Readonly<Record<string, string>> = {
  name: 'Name',
  scope: 'Scopes',
  grant: 'Grant types',
  'redirect-uri': 'Redirect URIs',
  public: 'Client type: public app',
  profile: 'Profile',
  'auth-method': 'Client type',
  'jwks-file': 'Public keys (JWKS)',
  'jwks-uri': 'JWKS URL',
  'allow-duplicate-name': 'Allow a name another partner has',
};

const GRANTS = [
  { value: 'client_credentials', label: 'Client credentials (a server acting for itself)' },
  { value: 'authorization_code', label: 'Authorization code (acting for a person who signs in; refresh tokens too)' },
] as const;

/** What the create form sent, as the form shows it again after a refusal. */
type CreateForm = {
  name: string;
  type: 'secret' | 'public' | 'keys';
  grants: string[];
  scopes: string[];
  redirectUris: string;
  profile: string;
  jwks: string;
  jwksUri: string;
  allowDuplicateName: boolean;
};

const EMPTY_FORM: CreateForm = {
  name: '',
  type: 'secret',
  grants: ['client_credentials'],
  scopes: [],
  redirectUris: '',
  profile: '',
  jwks: '',
  jwksUri: '',
  allowDuplicateName: false,
};

const lines = (text: string) =>
  text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter(Boolean);

function readCreateForm(ctx: Context): CreateForm {
  const form = (ctx.state.form ?? {}) as Partial<Record<string, string>>;
  const type = formField(ctx, 'type') ?? '';
  return {
    name: formField(ctx, 'name') ?? '',
    type: type === 'public' || type === 'keys' ? type : 'secret',
    grants: GRANTS.filter((grant) => form[`grant.${grant.value}`] !== undefined).map((grant) => grant.value),
    scopes: Object.keys(form)
      .filter((name) => name.startsWith('scope.'))
      .map((name) => name.slice('scope.'.length)),
    redirectUris: formField(ctx, 'redirect_uris') ?? '',
    profile: formField(ctx, 'profile') ?? '',
    jwks: formField(ctx, 'jwks') ?? '',
    jwksUri: formField(ctx, 'jwks_uri') ?? '',
    allowDuplicateName: form.allow_duplicate_name !== undefined,
  };
}

/** Where a partner's page is. */
const partnerPath = (clientId: string, tail = '') => `/admin/partners/${encodeURIComponent(clientId)}${tail}`;

const NOTICES: Readonly<Record<string, string>> = {
  suspended: 'The partner is suspended: its tokens, refresh tokens and grants were revoked, and its token requests are refused.',
  resumed: 'The partner is active again. Its earlier grants and tokens stay revoked.',
  profile: 'The profile is changed. Tokens already issued keep what they carry until they expire.',
  keys: 'The public keys are replaced: assertions signed with a key left out are refused from the next request.',
};

/**
 * `/admin/partners`: the list (search, pages of 50 on the server), create (the client secret
 * shown once), a partner's page, suspend and resume, rotate its secret (shown once), its profile
 * and keys. Every change goes through the partner service with the signed-in admin as `by`, as
 * the CLI's `partner` commands do; suspending and rotating ask for a recent sign-in and a
 * confirmation first.
 */
export function partnerPages(router: Router, pages: AdminPages): void {
  const { signIn, show, db } = pages;
  const refusals = consoleProblems(show);
  const reveal = oneTimeReveal({ keys: pages.revealKeys, issuer: pages.issuer });
  const read = [signIn.session, refusals];
  const write = [signIn.session, refusals, signIn.form];
  const recent = (tail: string) => signIn.recentSignIn((ctx) => partnerPath(param(ctx, 'id'), tail));
  const personOf = (ctx: Context) => consoleSessionOf(ctx).user.id;

  router.get('/admin/partners', ...read, async (ctx) => {
    const search = queryField(ctx, 'search');
    const after = queryField(ctx, 'after');
    const page = await partnerPage(db, { search, cursor: after });
    const next =
      page.next === null
        ? undefined
        : `/admin/partners?${new URLSearchParams({ ...(search ? { search } : {}), after: page.next }).toString()}`;
    const first = after === undefined ? undefined : `/admin/partners${search ? `?${new URLSearchParams({ search }).toString()}` : ''}`;
    show(ctx, 'Partners', 'admin/partners', { search: search ?? '', partners: page.items, next, first });
  });

  const showCreateForm = async (ctx: Context, form: CreateForm, message?: string) => {
    const apis = (await describeResources(db)).map((api) => ({ uri: api.uri, scopes: api.scope.split(' ').filter(Boolean) }));
    show(ctx, 'New partner', 'admin/partner-new', { form, message, apis, grants: GRANTS, defaultProfile: pages.defaultProfile });
  };

  router.get('/admin/partners/new', ...read, async (ctx) => {
    await showCreateForm(ctx, EMPTY_FORM);
  });

  router.post('/admin/partners', ...write, async (ctx) => {
    const form = readCreateForm(ctx);
    const session = consoleSessionOf(ctx);
    try {
      const created = await createPartner(
        db,
        {
          name: form.name,
          scopes: form.scopes,
          grantTypes: form.grants,
          redirectUris: lines(form.redirectUris),
          isPublic: form.type === 'public',
          allowDuplicateName: form.allowDuplicateName,
          security: {
            profile: form.profile || undefined,
            ...(form.type === 'keys' ? (form.jwksUri ? { jwksUri: form.jwksUri } : { jwksText: form.jwks }) : {}),
          },
        },
        session.by,
        { defaultProfile: pages.defaultProfile },
      );
      if (created.client_secret !== null) {
        await reveal.keep(ctx, { personId: session.user.id, clientId: created.client_id }, created.client_secret);
        ctx.status = 303;
        ctx.redirect(partnerPath(created.client_id, '/secret'));
        return;
      }
      ctx.status = 303;
      ctx.redirect(partnerPath(created.client_id));
    } catch (error) {
      const refusal = shownRefusal(error);
      if (!refusal) throw error;
      await showCreateForm(ctx, form, inWords(refusal.message, LABELS));
      ctx.status = refusal.status;
    }
  });

  const showPartner = async (ctx: Context, message?: string) => {
    const partner = describePartner(await getPartner(db, param(ctx, 'id')));
    const done = queryField(ctx, 'done');
    show(ctx, partner.name, 'admin/partner', {
      partner,
      created: when(partner.created_at),
      updated: when(partner.updated_at),
      allowed: Object.entries(partner.allowed).map(([uri, scopes]) => ({ uri, scopes })),
      notice: done === undefined ? undefined : NOTICES[done],
      message,
      path: partnerPath(partner.client_id),
    });
  };

  router.get('/admin/partners/:id', ...read, async (ctx) => {
    await showPartner(ctx);
  });

  // the secret made by create or rotate, shown this once (one-time-reveal.ts); never again after
  router.get('/admin/partners/:id/secret', ...read, async (ctx) => {
    const partner = describePartner(await getPartner(db, param(ctx, 'id')));
    const secret = await reveal.take(ctx, { personId: personOf(ctx), clientId: partner.client_id });
    show(ctx, `Client secret of ${partner.name}`, 'admin/partner-secret', { partner, secret, path: partnerPath(partner.client_id) });
  });

  /** A destructive action: a confirmation page, then the POST; both ask for a recent sign-in. */
  const confirmed = (
    tail: string,
    confirm: { title: string; text: string; button: string },
    act: (ctx: Context, clientId: string) => Promise<string>,
  ) => {
    router.get(`/admin/partners/:id${tail}`, ...read, recent(tail), async (ctx) => {
      const partner = describePartner(await getPartner(db, param(ctx, 'id')));
      show(ctx, confirm.title, 'admin/confirm', {
        ...confirm,
        subject: partner.name,
        action: partnerPath(partner.client_id, tail),
        back: partnerPath(partner.client_id),
      });
    });
    router.post(`/admin/partners/:id${tail}`, ...write, recent(tail), async (ctx) => {
      const clientId = param(ctx, 'id');
      const location = await act(ctx, clientId);
      ctx.status = 303;
      ctx.redirect(location);
    });
  };

  confirmed(
    '/suspend',
    {
      title: 'Suspend a partner',
      text: 'Suspending revokes every grant, refresh token and opaque access token of this partner at once and refuses its token requests until it is resumed. JWT access tokens already issued live out their short life.',
      button: 'Suspend',
    },
    async (ctx, clientId) => {
      await setPartnerStatus(db, clientId, 'suspended', consoleSessionOf(ctx).by);
      return partnerPath(clientId, '?done=suspended');
    },
  );

  confirmed(
    '/rotate-secret',
    {
      title: 'Rotate a client secret',
      text: 'A new client secret is made and shown once; the current one stops working at once.',
      button: 'Rotate the secret',
    },
    async (ctx, clientId) => {
      const rotated = await rotatePartnerSecret(db, clientId, consoleSessionOf(ctx).by);
      await reveal.keep(ctx, { personId: personOf(ctx), clientId }, rotated.client_secret);
      return partnerPath(clientId, '/secret');
    },
  );

  router.post('/admin/partners/:id/resume', ...write, async (ctx) => {
    const clientId = param(ctx, 'id');
    await setPartnerStatus(db, clientId, 'active', consoleSessionOf(ctx).by);
    ctx.status = 303;
    ctx.redirect(partnerPath(clientId, '?done=resumed'));
  });

  /** A change from a form on the partner's page: done, or that page again with the reason. */
  const change = (tail: string, apply: (ctx: Context, clientId: string) => Promise<unknown>) => async (ctx: Context) => {
    const clientId = param(ctx, 'id');
    try {
      await apply(ctx, clientId);
    } catch (error) {
      const refusal = shownRefusal(error);
      if (!refusal || refusal.status === 404) throw error;
      await showPartner(ctx, inWords(refusal.message, LABELS));
      ctx.status = refusal.status;
      return;
    }
    ctx.status = 303;
    ctx.redirect(partnerPath(clientId, `?done=${tail}`));
  };

  router.post(
    '/admin/partners/:id/profile',
    ...write,
    change('profile', (ctx, clientId) => setPartnerProfile(db, clientId, formField(ctx, 'profile') ?? '', consoleSessionOf(ctx).by)),
  );

  router.post(
    '/admin/partners/:id/keys',
    ...write,
    recent(''),
    change('keys', (ctx, clientId) => {
      const jwksUri = formField(ctx, 'jwks_uri') ?? '';
      const keys = jwksUri ? { jwksUri } : { jwksText: formField(ctx, 'jwks') ?? '' };
      return setPartnerKeys(db, clientId, keys, consoleSessionOf(ctx).by);
    }),
  );
}
