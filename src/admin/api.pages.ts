import type Router from '@koa/router';
import type { Context } from 'koa';
import { consoleSessionOf } from '../http/console-session.ts';
import {
  createResource,
  describeResourceAt,
  describeResources,
  updateResource,
  type ResourceUpdate,
} from '../resources/resource.service.ts';
import { type AdminPages, consoleProblems, formField, inWords, queryField, shownRefusal, when } from './console-page.ts';

/** The CLI's options, as the API forms label them (the services' messages name the options). */
const LABELS: Readonly<Record<string, string>> = {
  uri: 'Resource URI',
  scope: 'Scopes',
  ttl: 'Access-token lifetime',
  format: 'Token format',
  introspector: 'Introspector',
  'signed-introspection': 'Signed introspection',
  'no-signed-introspection': 'Signed introspection',
  describe: 'Scope descriptions',
  default: 'Default API',
};

/** The API form's fields, as typed. */
type ApiForm = {
  uri: string;
  scopes: string;
  ttl: string;
  format: string;
  introspector: string;
  signedIntrospection: boolean;
  isDefault: boolean;
  descriptions: string;
};

const EMPTY_FORM: ApiForm = {
  uri: '',
  scopes: '',
  ttl: '600',
  format: 'jwt',
  introspector: '',
  signedIntrospection: false,
  isDefault: false,
  descriptions: '',
};

const words = (text: string) => text.split(/\s+/).filter(Boolean);

function readForm(ctx: Context): ApiForm {
  const form = (ctx.state.form ?? {}) as Partial<Record<string, string>>;
  return {
    uri: formField(ctx, 'uri') ?? '',
    scopes: formField(ctx, 'scopes') ?? '',
    ttl: formField(ctx, 'ttl') ?? '',
    format: formField(ctx, 'format') ?? '',
    introspector: formField(ctx, 'introspector') ?? '',
    signedIntrospection: form.signed_introspection !== undefined,
    isDefault: form.default !== undefined,
    descriptions: formField(ctx, 'descriptions') ?? '',
  };
}

/** "scope = words" lines → the CLI's `scope=words` pairs. */
function describePairs(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => line.replace(/\s*=\s*/, '='));
}

function seconds(text: string): number {
  // not a whole number: the service's own check says what it must be
  return /^\d{1,9}$/.test(text) ? Number(text) : Number.NaN;
}

/** Descriptions as the form shows them: one "scope = words" a line. */
const descriptionLines = (descriptions: Readonly<Record<string, string>>) =>
  Object.entries(descriptions)
    .map(([scope, text]) => `${scope} = ${text}`)
    .join('\n');

const editPath = (uri: string) => `/admin/apis/edit?${new URLSearchParams({ uri }).toString()}`;

/**
 * `/admin/apis`: the registered APIs (resource servers) and their scopes; register one, change
 * one (scopes, token format and lifetime, default, introspector, signed introspection) and say
 * in words what each scope allows (the consent page shows these words), as the CLI's `resource`
 * commands do. The built-in admin API (ISSUER/admin/api/v1) is shown, not changed.
 */
export function apiPages(router: Router, pages: AdminPages): void {
  const { signIn, show, db } = pages;
  const refusals = consoleProblems(show);
  const read = [signIn.session, refusals];
  const write = [signIn.session, refusals, signIn.form];

  router.get('/admin/apis', ...read, async (ctx) => {
    const apis = (await describeResources(db)).map((api) => ({ ...api, edit: editPath(api.uri) }));
    show(ctx, 'APIs and scopes', 'admin/apis', { apis });
  });

  const showForm = (
    ctx: Context,
    form: ApiForm,
    options: Readonly<{ message?: string; editing?: boolean; builtIn?: boolean } & Record<string, unknown>>,
  ) => {
    const title = options.editing ? (options.builtIn ? 'Built-in API' : 'Change an API') : 'New API';
    show(ctx, title, 'admin/api-form', { form, ...options, action: options.editing ? '/admin/apis/edit' : '/admin/apis' });
  };

  router.get('/admin/apis/new', ...read, (ctx) => {
    showForm(ctx, EMPTY_FORM, {});
  });

  router.post('/admin/apis', ...write, async (ctx) => {
    const form = readForm(ctx);
    try {
      await createResource(
        db,
        {
          uri: form.uri,
          scopes: words(form.scopes),
          ttl: seconds(form.ttl || '600'),
          format: form.format || undefined,
          introspector: form.introspector || undefined,
          signedIntrospection: form.signedIntrospection || undefined,
          isDefault: form.isDefault,
          describe: describePairs(form.descriptions),
        },
        consoleSessionOf(ctx).by,
      );
    } catch (error) {
      const refusal = shownRefusal(error);
      if (!refusal) throw error;
      showForm(ctx, form, { message: inWords(refusal.message, LABELS) });
      ctx.status = refusal.status;
      return;
    }
    ctx.status = 303;
    ctx.redirect(`${editPath(form.uri)}&done=created`);
  });

  const current = async (uri: string) => {
    const { resource } = await describeResourceAt(db, uri);
    const form: ApiForm = {
      uri: resource.uri,
      scopes: resource.scope,
      ttl: String(resource.access_token_ttl),
      format: resource.token_format,
      introspector: resource.introspector ?? '',
      signedIntrospection: resource.signed_introspection,
      isDefault: resource.default,
      descriptions: descriptionLines(resource.descriptions),
    };
    return { resource, form };
  };

  router.get('/admin/apis/edit', ...read, async (ctx) => {
    const { resource, form } = await current(queryField(ctx, 'uri') ?? '');
    const done = queryField(ctx, 'done');
    showForm(ctx, form, {
      editing: true,
      builtIn: resource.built_in,
      notice: done === 'created' ? 'The API is registered.' : done === 'changed' ? 'The API is changed.' : undefined,
      details: resource.authorization_details_types.map((entry) => entry.type),
      dates: { created: when(resource.created_at), updated: when(resource.updated_at) },
    });
  });

  router.post('/admin/apis/edit', ...write, async (ctx) => {
    const form = readForm(ctx);
    const { resource, form: before } = await current(form.uri);
    // only what differs from the API as it is: the audit log then names what changed
    const change: ResourceUpdate = { uri: resource.uri };
    if (words(form.scopes).join(' ') !== words(before.scopes).join(' ')) change.scopes = words(form.scopes);
    if (form.ttl !== before.ttl) change.ttl = seconds(form.ttl);
    if (form.format !== before.format) change.format = form.format;
    if (form.introspector !== before.introspector) change.introspector = form.introspector || null;
    if (form.signedIntrospection !== before.signedIntrospection) change.signedIntrospection = form.signedIntrospection;
    if (form.isDefault && !before.isDefault) change.isDefault = true;
    const described = new Set(describePairs(before.descriptions));
    const describe = describePairs(form.descriptions).filter((pair) => !described.has(pair));
    if (describe.length) change.describe = describe;
    if (Object.keys(change).length > 1) {
      try {
        await updateResource(db, change, consoleSessionOf(ctx).by);
      } catch (error) {
        const refusal = shownRefusal(error);
        if (!refusal) throw error;
        showForm(ctx, form, { message: inWords(refusal.message, LABELS), editing: true, builtIn: resource.built_in });
        ctx.status = refusal.status;
        return;
      }
    }
    ctx.status = 303;
    ctx.redirect(`${editPath(resource.uri)}&done=changed`);
  });
}
