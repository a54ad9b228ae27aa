import type Router from '@koa/router';
import type { Context, Middleware, Next } from 'koa';
import type { AccountDeps } from '../accounts/user.service.ts';
import { isDatabaseUnavailable, isUnavailableAnswer } from '../db/availability.ts';
import type { ConsoleSignIn } from '../http/console-session.ts';
import type { Db } from '../db/knex.ts';
import type { Keyring } from '../keys/kek.ts';
import type { RotationPolicy } from '../keys/signing-key.lifecycle.ts';
import type { PartnerProfileName } from '../partners/partner.store.ts';
import { AppError, invalidInput } from '../shared/errors.ts';
import { renderPage } from '../shared/views.ts';

/** Renders `view` (views/admin/*.eta) in the console's frame: the navigation, the session's CSRF token. */
export type ShowPage = (ctx: Context, title: string, view: string, data?: Record<string, unknown>) => void;

/** What an area's pages get from adminConsole (src/admin/console.routes.ts). */
export type ConsolePagesDeps = Readonly<{ router: Router; signIn: ConsoleSignIn; accounts: AccountDeps; show: ShowPage }>;

/** What the overview, partner, API and key pages need besides the sign-in (built in src/app.ts). */
export type AdminPagesDeps = Readonly<{
  db: Db;
  keyring: Keyring;
  /** KEY_* as the rotation rules read them */
  policy: RotationPolicy;
  /** DEFAULT_PROFILE */
  defaultProfile: PartnerProfileName;
  issuer: string;
  /** Tokens issued and refused login steps over the last hour, counted by this process. */
  lastHour(): { tokensIssued: number; failedLogins: number };
  /** After a key change made here: this instance serves the new key set at once (others at their next poll). */
  keysChanged(): Promise<void>;
  /** 32-byte keys (base64url), the first seals: a secret waiting to be shown once (one-time-reveal.ts). */
  revealKeys: readonly string[];
}>;

/** What the overview, partner, API and key pages get: the sign-in, `show`, and the domain's dependencies. */
export type AdminPages = AdminPagesDeps & Readonly<{ signIn: ConsoleSignIn; show: ShowPage }>;

/** The longest value a filter or search field takes (what the domain accepts, with room for ids and cursors). */
const FIELD_LIMIT = 2048;

/**
 * A refusal of what was asked (an unknown person, a bad date, a form that does not fit) as a
 * console page with its status and message: never a stack or Koa's bare text. A database outage
 * goes on to src/http/outage.middleware.ts (503 + Retry-After); anything else is a server error.
 */
export function consoleProblems(show: ShowPage): Middleware {
  return async (ctx: Context, next: Next) => {
    try {
      await next();
    } catch (error) {
      if (isUnavailableAnswer(error) || isDatabaseUnavailable(error)) throw error;
      if (!(error instanceof AppError) || !error.expose) throw error;
      showProblem(ctx, show, error.status, error.message);
    }
  };
}

/** A refusal page: in the console's frame when signed in, else alone. */
export function showProblem(ctx: Context, show: ShowPage, status: number, message: string, back?: string): void {
  const title = status === 404 ? 'Not found' : status === 409 ? 'Not done' : 'Not accepted';
  if (ctx.state.console) show(ctx, title, 'admin/problem', { message, back: back ?? backFor(ctx.path) });
  else {
    ctx.type = 'html';
    ctx.body = renderPage(ctx, title, 'console-refusal', { message, base: '/admin' });
  }
  ctx.status = status;
}

/** The list a page in an area belongs to: where a refusal page sends the admin back to. */
function backFor(path: string): string {
  const area = /^\/admin\/[a-z-]+/.exec(path)?.[0];
  return area ?? '/admin';
}

/** One query parameter, trimmed; absent or empty is undefined; a repeated or oversized one is refused. */
export function queryField(ctx: Context, name: string): string | undefined {
  const value = ctx.query[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw invalidInput(`${name} is given more than once`);
  if (value.length > FIELD_LIMIT) throw invalidInput(`${name} is longer than ${String(FIELD_LIMIT)} characters`);
  return value.trim() || undefined;
}

/** One field of the posted form (after `signIn.form`), trimmed; absent or empty is undefined. */
export function formField(ctx: Context, name: string): string | undefined {
  const form = ctx.state.form as Partial<Record<string, string>>;
  return form[name]?.trim() || undefined;
}

/** The same page with `changes` to its query (undefined removes a parameter): for "Next page" and filter links. */
export function withQuery(ctx: Context, changes: Readonly<Record<string, string | undefined>>): string {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(ctx.query)) if (typeof value === 'string' && value !== '') query.set(name, value);
  for (const [name, value] of Object.entries(changes)) {
    if (value === undefined) query.delete(name);
    else query.set(name, value);
  }
  const text = query.toString();
  return text ? `${ctx.path}?${text}` : ctx.path;
}

/** A path inside the console to come back to (a form's `back` field), else `fallback`. */
export function consolePath(wanted: string | undefined, fallback: string): string {
  return wanted !== undefined && /^\/admin(\/[\w\-./~%]*)?(\?[\w\-./~%=&+]*)?$/.test(wanted) && !wanted.includes('..') ? wanted : fallback;
}

/** A refusal the person can act on: a 4xx AppError whose message may be shown. */
export function shownRefusal(error: unknown): AppError | undefined {
  return error instanceof AppError && error.expose && error.status >= 400 && error.status < 500 ? error : undefined;
}

/**
 * The services speak the CLI's language (`--redirect-uri … must be https`): on a page, each
 * option becomes the label of the field that holds it.
 */
export function inWords(message: string, labels: Readonly<Record<string, string>>): string {
  return message.replace(/--([a-z][a-z-]*)/g, (flag, name: string) => (labels[name] ? `“${labels[name]}”` : flag));
}

/** An instant as pages show it: `2026-11-29 20:10 UTC`. */
export function when(at: string | number | null | undefined): string {
  if (at === null || at === undefined) return '—';
  const date = new Date(at);
  return Number.isNaN(date.getTime()) ? '—' : `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** A setting's seconds as people read them: `1 day`, `5 seconds`, `90 minutes`. */
export function duration(seconds: number): string {
  const units: Array<[number, string]> = [
    [86_400, 'day'],
    [3600, 'hour'],
    [60, 'minute'],
    [1, 'second'],
  ];
  const [size, unit] = units.find(([size]) => seconds >= size && seconds % size === 0) ?? [1, 'second'];
  const count = seconds / size;
  return `${String(count)} ${unit}${count === 1 ? '' : 's'}`;
}

/** A path parameter of the route (`:id`), decoded; '' when the route has none of that name. */
export function param(ctx: Context, name: string): string {
  return (ctx.params as Record<string, string | undefined> | undefined)?.[name] ?? '';
}
